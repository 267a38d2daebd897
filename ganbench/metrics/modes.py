"""Mode coverage, in the units of the literature.

2D mixtures (PacGAN, Lin et al. 2018, sec. 5.1): a sample is *high quality* when it lies within
3 sigma of its nearest mode; a mode is *covered* when at least one high-quality sample is assigned
to it; the reverse KL is KL(generated mode histogram || uniform) over the high-quality samples.
Reference points (PacGAN Table 1): a plain GAN covers ~6.3 of 8 ring modes and ~17.3 of 25 grid modes.

Stacked MNIST (Srivastava et al. 2017; Lin et al. 2018 Table 2): each channel of a sample is
classified by the MNIST domain classifier. Three counts of the 1000 modes:

- ``modes_pacgan``: modes hit by at least one sample (no confidence threshold), PacGAN's and VEEGAN's
  count, kept for comparison with the literature. It counts every classifier error as a mode: real
  stacked digits of 100 triples read as ~330 modes (the classifier errs on 0.6% of held-out digits,
  and 26k samples x 3 channels make ~500 errors, each landing on a triple of its own).
- ``modes_confident``: the same over samples whose three channels are classified with confidence
  >= ``THRESHOLDS["confident"]``; fewer errors, but still ~170 for 100 triples, and no longer a count
  of what the generator covers (uncertain samples are dropped, not assigned).
- ``modes_corrected``: modes whose hits are significantly more than the classifier's confusion of the
  other modes explains. The classifier's per-digit confusion on held-out digits (``domain.held_out_confusion``)
  gives, with independent channels, the chance ``M[s, t] = C[s1, t1] C[s2, t2] C[s3, t3]`` that a sample of
  true mode s is read as t. The true mode counts are estimated by maximum likelihood under
  ``hits ~ Poisson(M^T n)`` with EM (Shepp & Vardi 1982, eq. 2.13); a mode t then counts when its hits
  exceed what the other modes' estimated counts spill onto it, ``lambda_t = sum_{s != t} n_s M[s, t]``:
  a one-sided test with the Poisson noise of the hits and the uncertainty of C (a Dirichlet posterior on
  each row, propagated to lambda_t by the delta method) as a negative binomial of the same mean and
  variance, the 1000 tests combined by Benjamini & Hochberg (1995) at a false-discovery rate of
  ``THRESHOLDS["mode_fdr"]``. Generators built from real held-out MNIST digits covering exactly 10, 100
  and 1000 modes read as exactly 10, 100 and 1000 at 26k samples (tests/test_modes.py; also with the
  confusion measured on MNIST's cleaner first 5k test digits and the generator built from the harder last
  5k, and the other way round). It needs a few hits per mode: at 10k samples of 1000 equally likely
  modes (10 per mode) it read 986-995, at 5k 867-881.
  It assumes the generator's digits are confused like real held-out digits; blurrier digits are confused
  more, and the excess reads as extra modes.

Also reported: KL(mode histogram || uniform over 1000) of the raw histogram (PacGAN's KL) and the share
of confidently classified channels. Reference points (PacGAN Table 2, PacGAN's count): DCGAN
78.9 +- 6.5 modes, KL 4.50; PacDCGAN2 1000 modes, KL 0.06.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import false_discovery_control, nbinom, poisson

from ganbench.core.errors import GanbenchError
from ganbench.core.hooks import materialised
from ganbench.data import DATASETS, get_dataset
from ganbench.extractors.domain import domain_classifier, held_out_confusion
from ganbench.metrics.base import SHARE_HIGHER, MetricResult, metric_name, reads_nothing, register_metric

# Thresholds of the mode counts (one table), each with its source.
THRESHOLDS = {
    "hq_sigmas": 3.0,  # PacGAN's high-quality radius, in standard deviations of the mode (Lin et al. 2018, sec. 5.1)
    "confident": 0.9,  # softmax probability of the predicted digit for a channel to count as confident
    # Dirichlet pseudo-count per cell of a confusion row: Jeffreys' prior for a multinomial (1/2 per cell), so a
    # confusion never seen among ~500 held-out digits is still possible (~1/1000), not impossible.
    "confusion_prior": 0.5,
    # Benjamini-Hochberg false-discovery rate of the 1000 "mode present" tests: on average at most 1% of the
    # counted modes are confusion artefacts (the +-5% the count is held to leaves room for that).
    "mode_fdr": 0.01,
    # EM stops after em_max_iters or when no estimated count moves by more than em_tol samples in a step (counts
    # are tested as whole hits; at 26k samples the count reads the same from 1e-6 to 1e-2, 8x faster at 1e-3)
    "em_max_iters": 500,
    "em_tol": 1e-3,
}
DIGITS = 10
NUM_MODES = DIGITS ** 3


def kl_to_uniform(counts: torch.Tensor) -> float:
    """KL(p || uniform) of a histogram; +inf for an empty histogram (no sample to judge)."""
    total = counts.sum()
    if total == 0:
        return math.inf
    p = counts.double() / total
    nz = p > 0
    return float((p[nz] * (p[nz] * len(counts)).log()).sum())


def mixture_modes(points: torch.Tensor, centers: torch.Tensor, sigma: float) -> dict[str, object]:
    """PacGAN's 2D metrics for float N x 2 samples of a mixture with the given centres and sigma."""
    dist = torch.cdist(points.double(), centers.double())
    nearest_dist, nearest = dist.min(1)
    hq = nearest_dist <= THRESHOLDS["hq_sigmas"] * sigma
    counts = torch.bincount(nearest[hq], minlength=len(centers))
    return {"modes": int((counts > 0).sum()), "hq_share": float(hq.double().mean()),
            "reverse_kl": kl_to_uniform(counts), "histogram": counts}


# ----------------------------------------------------------------------------- stacked MNIST


def mode_of(digits: torch.Tensor) -> torch.Tensor:
    """N x 3 digits (R, G, B) -> mode index 100 R + 10 G + B."""
    return digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]


def confusion_posterior(counts: torch.Tensor) -> torch.Tensor:
    """Dirichlet parameters of each row of the confusion matrix (true digit -> predicted digit) given the
    held-out counts and Jeffreys' prior; the posterior mean is the row normalised."""
    return counts.double() + THRESHOLDS["confusion_prior"]


def triple_confusion(c: torch.Tensor) -> torch.Tensor:
    """1000 x 1000 ``M[s, t] = C[s1, t1] C[s2, t2] C[s3, t3]``: channels are classified independently."""
    return torch.einsum("ax,by,cz->abcxyz", c, c, c).reshape(NUM_MODES, NUM_MODES)


def em_mode_counts(hits: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Maximum-likelihood true mode counts n under ``hits ~ Poisson(M^T n)`` (rows of M sum to 1), by the EM
    of Shepp & Vardi 1982 (eq. 2.13): ``n <- n * M (hits / M^T n)``, from a uniform start. Every step keeps
    sum(n) = sum(hits) and increases the likelihood."""
    hits = hits.double()
    n = torch.full_like(hits, float(hits.sum()) / len(hits))
    for _ in range(THRESHOLDS["em_max_iters"]):
        expected = m.T @ n
        ratio = torch.where(expected > 0, hits / expected.clamp_min(1e-300), torch.zeros_like(hits))
        new = n * (m @ ratio)
        done = float((new - n).abs().max()) < THRESHOLDS["em_tol"]
        n = new
        if done:
            break
    return n


def confusion_explained(n: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hits each mode t receives from the *other* modes' confusion, ``lambda_t = sum_{s != t} n_s M[s, t]``
    with C the posterior mean, and the variance of lambda_t from the uncertainty of C (delta method:
    ``sum_rows g^T Cov(row) g`` with the Dirichlet covariance ``(diag(p) - p p^T) / (alpha_0 + 1)``, g the
    gradient of lambda_t with respect to that row)."""
    a0 = alpha.sum(1)
    c = alpha / a0[:, None]
    counts = n.view(DIGITS, DIGITS, DIGITS)
    m = triple_confusion(c)
    own = n * m.diagonal()
    lam = (m.T @ n - own).clamp_min(0.0)
    # d lambda_t / d C[a, x]: each channel where the source digit is a and t's digit is x contributes the
    # other two channels' confusion; the mode's own term (s = t) is removed.
    eye = torch.eye(DIGITS, dtype=torch.float64)
    grad = (torch.einsum("abc,by,cz,xw->xyzaw", counts, c, c, eye)
            + torch.einsum("abc,ax,cz,yw->xyzbw", counts, c, c, eye)
            + torch.einsum("abc,ax,by,zw->xyzcw", counts, c, c, eye))
    d = c.diagonal()
    i = torch.arange(DIGITS)
    t0, t1, t2 = torch.meshgrid(i, i, i, indexing="ij")
    grad[t0, t1, t2, t0, t0] -= counts * d[t1] * d[t2]
    grad[t0, t1, t2, t1, t1] -= counts * d[t0] * d[t2]
    grad[t0, t1, t2, t2, t2] -= counts * d[t0] * d[t1]
    grad = grad.reshape(NUM_MODES, DIGITS, DIGITS)
    var = ((grad ** 2 * c).sum(2) - (grad * c).sum(2) ** 2) / (a0 + 1)
    return lam, var.sum(1).clamp_min(0.0)


def excess_p_values(hits: torch.Tensor, lam: torch.Tensor, var: torch.Tensor) -> np.ndarray:
    """P(X >= hits) for X the hits confusion alone gives: Poisson(rate) with the rate uncertain (mean lam,
    variance var), i.e. a negative binomial of mean lam and variance lam + var (the Poisson-gamma mixture
    matched in two moments); a plain Poisson where var is negligible."""

    k, lam, var = hits.double().numpy() - 1, lam.numpy(), var.numpy()
    lam = np.maximum(lam, 1e-300)
    p_pois = poisson.sf(k, lam)
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        r = lam ** 2 / var
        over = (var > 1e-9 * lam) & (r > 0) & np.isfinite(r)  # else the rate is as good as known: Poisson
        r, p = np.where(over, r, 1.0), np.where(over, lam / (lam + var), 0.5)
        return np.where(over, nbinom.sf(k, r, p), p_pois)


def corrected_modes(hits: torch.Tensor, confusion: torch.Tensor) -> dict[str, object]:
    """Modes present beyond classifier confusion, from the histogram of predicted modes (1000) and the
    classifier's held-out digit confusion counts (10 x 10, rows = true digit)."""

    alpha = confusion_posterior(confusion)
    n = em_mode_counts(hits, triple_confusion(alpha / alpha.sum(1, keepdim=True)))
    lam, var = confusion_explained(n, alpha)
    p = excess_p_values(hits, lam, var)
    present = torch.from_numpy(false_discovery_control(p, method="bh") < THRESHOLDS["mode_fdr"]) & (hits > 0)
    return {"modes": int(present.sum()), "present": present, "estimated_counts": n}


def mode_statistics(digits: torch.Tensor, confidence: torch.Tensor, confusion: torch.Tensor) -> dict[str, object]:
    """Mode statistics of N x 3 predicted digits with their N x 3 confidences (softmax of the predicted digit)."""
    modes = mode_of(digits)
    hits = torch.bincount(modes, minlength=NUM_MODES)
    sure = confidence >= THRESHOLDS["confident"]
    corrected = corrected_modes(hits, confusion)
    return {"modes_pacgan": int((hits > 0).sum()),
            "modes_confident": int((torch.bincount(modes[sure.all(1)], minlength=NUM_MODES) > 0).sum()),
            "modes_corrected": corrected["modes"], "kl": kl_to_uniform(hits),
            "confident_channel_share": float(sure.double().mean()), "histogram": hits,
            "estimated_histogram": corrected["estimated_counts"]}


@torch.no_grad()
def classify_channels(samples: torch.Tensor, classifier) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted digit and its softmax probability of every channel of uint8 N x 3 x 28 x 28 samples."""
    n = len(samples)
    channels = samples.reshape(n * 3, 1, *samples.shape[2:])
    conf, digit = torch.softmax(classifier.logits(channels).double(), 1).max(1)
    return digit.view(n, 3), conf.view(n, 3)


def stacked_modes(samples: torch.Tensor, classifier, confusion: torch.Tensor | None = None) -> dict[str, object]:
    """Mode statistics of uint8 N x 3 x 28 x 28 stacked-MNIST samples under an MNIST classifier; ``confusion``
    defaults to the classifier's held-out confusion counts."""
    if confusion is None:

        confusion = held_out_confusion(classifier)
    return mode_statistics(*classify_channels(samples, classifier), confusion)


# ----------------------------------------------------------------------------- registered metrics



FLOOR_SEED = 4242  # the real samples of the floor: a fixed draw, the same for every run


def _results(ctx, values: dict[str, tuple[float, bool]], extractor: str, weights: str,
             floors: dict[str, float], floor_reference: str) -> list[MetricResult]:
    """One result per quantity, named by the one rule (no reference split: modes are judged, not compared), each
    with its floor: the same quantity of as many real samples (what a perfect generator scores at this count)."""
    return [MetricResult(metric_name(quantity, ctx.num_samples), float(v), hib, ctx.num_samples, extractor, weights,
                         f"{ctx.dataset} modes", floor=float(floors[quantity]), floor_reference=floor_reference)
            for quantity, (v, hib) in values.items()]


@register_metric("modes2d", higher_is_better=True, reads=reads_nothing,
                 quantities={"modes_hq": True, "hq_share": True, "reverse_kl": False}, kinds={"hq_share": SHARE_HIGHER})
def modes2d(ctx, extractor: str) -> list[MetricResult]:
    """PacGAN's 2D-mixture metrics (needs a ring8/grid25 protocol): ``modes_hq`` (modes hit by a high-quality
    sample), ``hq_share`` and ``reverse_kl``."""

    mix = get_dataset(ctx.dataset).mixture
    if mix is None:
        mixtures = ", ".join(name for name, ds in sorted(DATASETS.items()) if ds.mixture is not None)
        raise GanbenchError(f"metric 'modes2d' needs a 2D-mixture dataset ({mixtures}), not {ctx.dataset!r}")
    m = mixture_modes(ctx.samples, mix.centers, mix.sigma)
    real = mixture_modes(mix.sample(ctx.num_samples, torch.Generator().manual_seed(FLOOR_SEED)).images, mix.centers,
                         mix.sigma)
    ctx.extras["mode_histogram"] = m["histogram"].tolist()
    return _results(ctx, {"modes_hq": (m["modes"], True), "hq_share": (m["hq_share"], True),
                          "reverse_kl": (m["reverse_kl"], False)}, "none", "",
                    {"modes_hq": real["modes"], "hq_share": real["hq_share"], "reverse_kl": real["reverse_kl"]},
                    f"{ctx.num_samples} points of the true {ctx.dataset} mixture (seed {FLOOR_SEED})")


def _stacked_reads(extractor: str, dataset: str) -> tuple[str, ...]:
    """The domain classifier that reads a stacked dataset's channels (none for another dataset: the metric refuses it)."""
    stacked_from = get_dataset(dataset).stacked_from
    return (f"domain:{stacked_from}",) if stacked_from else ()


@register_metric("mode_coverage", higher_is_better=True, reads=_stacked_reads,
                 quantities={"modes_pacgan": True, "modes_confident": True, "modes_corrected": True, "mode_kl": False,
                             "confident_channels": True})
def mode_coverage(ctx, extractor: str) -> list[MetricResult]:
    """Stacked-MNIST modes under the MNIST domain classifier (needs a stacked-mnist protocol): PacGAN's count,
    the confident count, the count corrected for the classifier's confusion, PacGAN's KL, confident channels."""

    ds = get_dataset(ctx.dataset)
    if not ds.stacked_from or ctx.samples.shape[1] != 3:
        raise GanbenchError(f"metric 'mode_coverage' needs stacked-MNIST samples (N x 3 x 28 x 28), not {ctx.dataset!r}")
    clf = domain_classifier(ds.stacked_from, device=ctx.device)
    confusion = held_out_confusion(clf, ctx.data_root)
    m = stacked_modes(ctx.samples, clf, confusion)
    real_images = ds.load(ctx.reference_split, ctx.num_samples, FLOOR_SEED, ctx.data_root).images
    real = stacked_modes(materialised(real_images), clf, confusion)
    ctx.extras["mode_histogram"] = m["histogram"].tolist()
    ctx.extras["mode_histogram_corrected"] = [round(float(v), 3) for v in m["estimated_histogram"]]
    keys = {"modes_pacgan": "modes_pacgan", "modes_confident": "modes_confident", "modes_corrected": "modes_corrected",
            "mode_kl": "kl", "confident_channels": "confident_channel_share"}
    return _results(ctx, {q: (m[k], q != "mode_kl") for q, k in keys.items()}, "domain-mnist",
                    getattr(clf, "weights_sha256", ""), {q: real[k] for q, k in keys.items()},
                    f"{ctx.num_samples} real stacked digits of the {ctx.reference_split} split (seed {FLOOR_SEED})")
