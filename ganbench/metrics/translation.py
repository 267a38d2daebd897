"""Scores of an image translation against the true target, for tasks whose answer is known
(``ganbench.data.translation``): mean L1, PSNR, SSIM, class preservation and cycle-consistency error.

- SSIM: Wang, Bovik, Sheikh & Simoncelli 2004, "Image quality assessment: from error visibility to
  structural similarity", eq. 13 with the local statistics of eq. 14-16 (an 11x11 Gaussian window of
  sigma 1.5, normalised to sum 1, over every position where it fits inside the image) and the mean SSIM
  of eq. 17; K1 = 0.01, K2 = 0.03 (sec. III-C). Computed per image and channel, averaged over channels,
  then over images. Its luminance term reads the local means, so SSIM changes when both images are shifted:
  score uint8 images (data range 255), not the model's [-1, 1] outputs.
- PSNR: 10 log10(R^2 / MSE) per image (R: the data range), averaged over images; an image that equals its
  target scores +inf, and so does the mean.
- Mean L1: the mean absolute difference over all pixels, in the units of the input (grey levels for uint8).
- Class preservation: the share of translations whose predicted class equals the source's class.
- Cycle-consistency error: the mean L1 between x and F(G(x)), the norm of CycleGAN's cycle loss (Zhu et al.
  2017, eq. 2), measured in either direction by passing that direction's images.

Inputs are N x C x H x W torch tensors or numpy arrays (any real dtype; uint8 is usual) with equal shapes.
Arithmetic is in float64 on the input's device. A score of the identity mapping (translation = source) is
the floor a model must beat; call the same functions with the source in place of the translation.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from ganbench.core.errors import GanbenchError
from ganbench.core.hooks import RoundTrip
from ganbench.data import ImageSet, get_dataset, load_data
from ganbench.data.translation import TranslationDataset
from ganbench.extractors.domain import domain_classifier
from ganbench.metrics.base import MetricResult, metric_name, reads_nothing, register_metric, trivial_answer
from ganbench.metrics.fid import frechet_distance
from ganbench.metrics.kid import kernel_inception_distance
from ganbench.metrics.reference import gaussian_statistics
from ganbench.nets.sampling import translate
from ganbench.spec.protocol import DataSpec

SSIM_WINDOW = 11  # Wang et al. 2004, sec. III-C
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
UINT8_RANGE = 255.0

ArrayLike = torch.Tensor | np.ndarray


def _as_float64(x: ArrayLike, what: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "uif":
            raise GanbenchError(f"{what}: expected a numeric array, got dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise GanbenchError(f"{what}: expected a torch tensor or a numpy array of images, got {type(x).__name__}")
    if x.is_complex() or x.dtype == torch.bool:
        raise GanbenchError(f"{what}: expected real-valued images, got dtype {x.dtype}")
    return x.to(torch.float64)


def _pair(x: ArrayLike, y: ArrayLike, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Both inputs as float64 N x C x H x W tensors of one shape on x's device, or a GanbenchError."""
    a, b = _as_float64(x, what), _as_float64(y, what)
    if a.ndim != 4 or a.shape != b.shape:
        raise GanbenchError(f"{what}: expected two N x C x H x W batches of the same shape, "
                            f"got {tuple(a.shape)} and {tuple(b.shape)}")
    if len(a) == 0:
        raise GanbenchError(f"{what}: got no images")
    return a, b.to(a.device)


def mean_l1(x: ArrayLike, y: ArrayLike) -> float:
    """mean |x - y| over every pixel and channel."""
    a, b = _pair(x, y, "mean_l1")
    return float((a - b).abs().mean())


def psnr(x: ArrayLike, y: ArrayLike, data_range: float = UINT8_RANGE) -> float:
    """Mean over images of 10 log10(data_range^2 / MSE_i); +inf when some image equals its target."""
    a, b = _pair(x, y, "psnr")
    mse = (a - b).pow(2).flatten(1).mean(1)
    per_image = 10.0 * torch.log10(data_range ** 2 / mse)  # mse = 0 -> +inf
    return float(per_image.mean())


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """w of Wang et al. eq. 14: the circular-symmetric Gaussian, size x size, float64, sum 1."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r ** 2) / (2 * sigma ** 2))
    w = torch.outer(g, g)
    return w / w.sum()


def _local_mean(t: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """sum_i w_i t_i at every position where the window fits (eq. 14), channel by channel."""
    c = t.shape[1]
    return F.conv2d(t, window.expand(c, 1, -1, -1), groups=c)


def ssim_maps(x: ArrayLike, y: ArrayLike, data_range: float = UINT8_RANGE) -> torch.Tensor:
    """SSIM(x, y) at every position where the window fits (Wang et al. eq. 13-16), N x C x H' x W', float64."""
    a, b = _pair(x, y, "ssim")
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise GanbenchError(f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} (its window), "
                            f"got {a.shape[-2]}x{a.shape[-1]}")
    w = gaussian_window().to(a.device)
    mu_x, mu_y = _local_mean(a, w), _local_mean(b, w)
    var_x = _local_mean(a * a, w) - mu_x ** 2  # eq. 15: sum_i w_i (x_i - mu_x)^2 = sum w x^2 - mu_x^2 as sum w = 1
    var_y = _local_mean(b * b, w) - mu_y ** 2
    cov = _local_mean(a * b, w) - mu_x * mu_y  # eq. 16
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def ssim(x: ArrayLike, y: ArrayLike, data_range: float = UINT8_RANGE) -> float:
    """Mean SSIM (Wang et al. eq. 17) per image and channel, averaged over channels, then over images."""
    return float(ssim_maps(x, y, data_range).mean(dim=(-2, -1)).mean(1).mean())


def class_preservation(pred_translation: ArrayLike, source_labels: ArrayLike) -> float:
    """Share of translations whose predicted class (``pred_translation``, e.g. the domain classifier's argmax
    on the translations) equals the class of their source (``source_labels``)."""
    pred = _as_float64(pred_translation, "class_preservation").flatten()
    true = _as_float64(source_labels, "class_preservation").flatten()
    if len(pred) != len(true) or len(pred) == 0:
        raise GanbenchError(f"class_preservation: expected one predicted class per source label, "
                            f"got {len(pred)} predictions and {len(true)} labels")
    return float((pred == true.to(pred.device)).to(torch.float64).mean())


def cycle_error(x: ArrayLike, reconstruction: ArrayLike) -> float:
    """||F(G(x)) - x||_1 per pixel (Zhu et al. eq. 2), averaged: ``reconstruction`` = F(G(x))."""
    return mean_l1(x, reconstruction)


def translation_scores(translation: ArrayLike, target: ArrayLike, data_range: float = UINT8_RANGE) -> dict[str, float]:
    """The three scores against the truth, by name: ``l1`` (lower is better), ``psnr`` and ``ssim`` (higher)."""
    return {"l1": mean_l1(translation, target), "psnr": psnr(translation, target, data_range),
            "ssim": ssim(translation, target, data_range)}




# --------------------------------------------------------------------------- the registered metrics
# The samples of an image-to-image protocol are the translations of the first n test sources, in order
# (``samples.translation_samples``), and ``ctx.labels`` their sources' classes; the truth is the test split's
# targets. Floors: the identity mapping (the source as its own translation: what a model gets for free) and,
# for L1/PSNR/SSIM, the trivial answer of the mean training target for every source.

TRUTH = {"l1": False, "psnr": True, "ssim": True}
NOT_A_TRANSLATION = "the protocol's dataset is not an image-to-image task (no sources and true targets)"


@functools.lru_cache(maxsize=4)
def task_split(data: DataSpec, split: str, data_root=None) -> ImageSet:
    """A translation task's split (sources in ``inputs``), loaded once per evaluation."""
    return load_data(data, split, data_root)


def translation_samples(G: torch.nn.Module, protocol, num_samples: int | None = None, data_root=None) -> torch.Tensor:
    """The samples an image-to-image protocol scores: uint8 translations of the first n test sources, in order."""
    test = task_split(protocol.data, protocol.eval.reference_split, data_root)
    n = num_samples or protocol.eval.num_samples
    if n > len(test.inputs):
        raise GanbenchError(f"eval.num_samples = {n} but {protocol.data.dataset}/{protocol.eval.reference_split} "
                            f"has {len(test.inputs)} sources")
    return translate(G, test.inputs[:n], seed=protocol.eval.z_seed)


def _task(ctx) -> TranslationDataset | None:
    ds = get_dataset(ctx.dataset)
    return ds if isinstance(ds, TranslationDataset) else None


def _result(ctx, quantity: str, higher: bool, value: float | None, floor: float | None = None, floor_ref: str = "",
            extractor: str = "none", weights: str = "", space: str | None = None,
            unavailable: str | None = None, std: float | None = None) -> MetricResult:
    return MetricResult(metric_name(quantity, ctx.num_samples, ctx.reference_split, space=space), value, higher,
                        ctx.num_samples, extractor, weights, ctx.reference_name, std=std, floor=floor,
                        floor_reference=floor_ref, unavailable=unavailable)


def _truth_and_sources(ctx) -> tuple[torch.Tensor, torch.Tensor]:
    test = task_split(ctx.protocol.data, ctx.reference_split, ctx.data_root)
    return test.images[:ctx.num_samples], test.inputs[:ctx.num_samples]


@register_metric("translation", higher_is_better=False, reads=reads_nothing,
                 quantities={**TRUTH, **{f"{q}_mean_target": h for q, h in TRUTH.items()}},
                 kinds={f"{q}_mean_target": trivial_answer(q, "the mean training target for every source")
                        for q in TRUTH})
def translation(ctx, extractor: str) -> list[MetricResult]:
    """Mean L1, PSNR and SSIM of the translations against the true targets (floor: the identity mapping), and
    of the mean training target as every answer (``<quantity>_mean_target``)."""
    if _task(ctx) is None:
        return [_result(ctx, q, h, None, unavailable=NOT_A_TRANSLATION) for q, h in TRUTH.items()]
    truth, sources = _truth_and_sources(ctx)
    scores, identity = translation_scores(ctx.samples, truth), translation_scores(sources, truth)
    train = task_split(ctx.protocol.data, "train", ctx.data_root).images
    mean = train.double().mean(0, keepdim=True).round().to(torch.uint8).expand_as(truth)
    trivial = translation_scores(mean, truth)
    ident = "identity mapping (each source as its own translation)"
    return ([_result(ctx, q, h, scores[q], identity[q], ident) for q, h in TRUTH.items()]
            + [_result(ctx, f"{q}_mean_target", h, trivial[q]) for q, h in TRUTH.items()])


def _classifier_side(ctx, task: TranslationDataset, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    clf = domain_classifier(task.classifier, device=ctx.device)
    return clf.features_and_logits(task.classifier_view(images))


@register_metric("translation_domain", higher_is_better=False, reads=lambda e, d: translation_reads(d),
                 quantities={"class_kept": True})
def translation_domain(ctx, extractor: str) -> list[MetricResult]:
    """Class preservation (the domain classifier's class of each translation = its source's class; floor: the
    same share for the true targets) and domain FID/KID of the translations against the true targets (floor:
    the target domain's training images against them), in the target domain's classifier space."""
    task = _task(ctx)
    if task is None:
        return [_result(ctx, q, h, None, unavailable=NOT_A_TRANSLATION) for q, h in
                (("class_kept", True), ("fid", False), ("kid", False))]
    clf = domain_classifier(task.classifier, device=ctx.device)
    truth, _ = _truth_and_sources(ctx)
    labels = task_split(ctx.protocol.data, ctx.reference_split, ctx.data_root).labels[:ctx.num_samples]
    f_out, l_out = _classifier_side(ctx, task, ctx.samples)
    f_truth, l_truth = _classifier_side(ctx, task, truth)
    f_train, _ = _classifier_side(ctx, task, task_split(ctx.protocol.data, "train", ctx.data_root).images[:ctx.num_samples])
    where = dict(extractor=clf.name, weights=clf.weights_sha256, space="domain")
    kid, kid_std = kernel_inception_distance(f_out, f_truth)
    kid_floor, _ = kernel_inception_distance(f_train, f_truth)
    real = f"{ctx.dataset}/train targets vs the true targets"
    return [
        _result(ctx, "class_kept", True, class_preservation(l_out.argmax(1), labels),
                class_preservation(l_truth.argmax(1), labels), "the true targets", **where),
        _result(ctx, "fid", False, frechet_distance(gaussian_statistics(f_out), gaussian_statistics(f_truth)),
                frechet_distance(gaussian_statistics(f_train), gaussian_statistics(f_truth)), real, **where),
        _result(ctx, "kid", False, kid, kid_floor, real, std=kid_std, **where),
    ]


def translation_reads(dataset: str) -> tuple[str, ...]:
    task = get_dataset(dataset)
    return (f"domain:{task.classifier}",) if isinstance(task, TranslationDataset) else ()


@register_metric("cycle", higher_is_better=False, reads=reads_nothing, quantities={"cycle_aba": False, "cycle_bab": False})
def cycle(ctx, extractor: str) -> list[MetricResult]:
    """CycleGAN's cycle consistency on the test split, both ways (Zhu et al. eq. 2), mean L1 in grey levels:
    F(G(a)) against the sources a, G(F(b)) against the true targets b. Floor: 0 (a perfect round trip)."""
    G = ctx.generator.G if ctx.generator is not None else None
    if _task(ctx) is None or G is None or not isinstance(G, RoundTrip):
        why = NOT_A_TRANSLATION if _task(ctx) is None else "needs a generator with both directions (CycleGAN)"
        return [_result(ctx, q, False, None, unavailable=why) for q in ("cycle_aba", "cycle_bab")]
    truth, sources = _truth_and_sources(ctx)
    seed = ctx.protocol.eval.z_seed
    aba = cycle_error(sources, translate(G, sources, seed=seed, cycle="a"))
    bab = cycle_error(truth, translate(G, truth, seed=seed, cycle="b"))
    return [_result(ctx, "cycle_aba", False, aba, 0.0, "a perfect round trip"),
            _result(ctx, "cycle_bab", False, bab, 0.0, "a perfect round trip")]
