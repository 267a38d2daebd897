"""Mode coverage, in the units of the literature.

2D mixtures (PacGAN, Lin et al. 2018, sec. 5.1): a sample is *high quality* when it lies within
3 sigma of its nearest mode; a mode is *covered* when at least one high-quality sample is assigned
to it; the reverse KL is KL(generated mode histogram || uniform) over the high-quality samples.
Reference points (PacGAN Table 1): a plain GAN covers ~6.3 of 8 ring modes and ~17.3 of 25 grid modes.

Stacked MNIST (Srivastava et al. 2017; Lin et al. 2018 Table 2): each channel of a sample is
classified by the MNIST domain classifier; the 3-digit mode is counted when at least one sample hits
it (no confidence threshold, as PacGAN counts), beside a count restricted to samples whose three
channels are all classified with confidence >= ``CONFIDENT``, KL(mode histogram || uniform over 1000)
and the share of confidently classified channels. Reference points (PacGAN Table 2): DCGAN
78.9 +- 6.5 modes, KL 4.50; PacDCGAN2 1000 modes, KL 0.06.
"""

from __future__ import annotations

import math

import torch

CONFIDENT = 0.9  # softmax probability of the predicted digit for a channel to count as confident
HQ_SIGMAS = 3.0  # PacGAN's high-quality radius, in standard deviations of the mode


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
    hq = nearest_dist <= HQ_SIGMAS * sigma
    counts = torch.bincount(nearest[hq], minlength=len(centers))
    return {"modes": int((counts > 0).sum()), "hq_share": float(hq.double().mean()),
            "reverse_kl": kl_to_uniform(counts), "histogram": counts}


@torch.no_grad()
def stacked_modes(samples: torch.Tensor, classifier) -> dict[str, object]:
    """Mode statistics of uint8 N x 3 x 28 x 28 stacked-MNIST samples under an MNIST classifier."""
    n = len(samples)
    channels = samples.reshape(n * 3, 1, *samples.shape[2:])
    probs = torch.softmax(classifier.logits(channels).double(), 1)
    conf, digit = probs.max(1)
    digit, conf = digit.view(n, 3), conf.view(n, 3)
    modes = digit[:, 0] * 100 + digit[:, 1] * 10 + digit[:, 2]
    counts = torch.bincount(modes, minlength=1000)
    confident = (conf >= CONFIDENT).all(1)
    return {"modes": int((counts > 0).sum()),
            "modes_confident": int((torch.bincount(modes[confident], minlength=1000) > 0).sum()),
            "kl": kl_to_uniform(counts), "confident_channel_share": float((conf >= CONFIDENT).double().mean()),
            "histogram": counts}


# ----------------------------------------------------------------------------- registered metrics

from ganbench.metrics import MetricResult, count_name, reads_nothing, register_metric  # noqa: E402


def _results(ctx, prefix: str, values: dict[str, tuple[float, bool]], extractor: str, weights: str) -> list[MetricResult]:
    n = count_name(ctx.num_samples)
    return [MetricResult(f"{name}{n}", float(v), hib, ctx.num_samples, extractor, weights, f"{ctx.dataset} modes")
            for name, (v, hib) in values.items()]


@register_metric("modes2d", higher_is_better=True, reads=reads_nothing)
def modes2d(ctx, extractor: str) -> list[MetricResult]:
    """PacGAN's 2D-mixture metrics (needs a ring8/grid25 protocol)."""
    from ganbench.data.synthetic import MIXTURES
    from ganbench.errors import GanbenchError

    if ctx.dataset not in MIXTURES:
        raise GanbenchError(f"metric 'modes2d' needs a 2D-mixture dataset ({', '.join(MIXTURES)}), not {ctx.dataset!r}")
    mix = MIXTURES[ctx.dataset]()
    m = mixture_modes(ctx.samples, mix.centers, mix.sigma)
    ctx.extras["mode_histogram"] = m["histogram"].tolist()
    return _results(ctx, "", {"modes": (m["modes"], True), "hq_share": (m["hq_share"], True),
                              "reverse_kl": (m["reverse_kl"], False)}, "none", "")


@register_metric("mode_coverage", higher_is_better=True, reads=lambda extractor, dataset: ("domain:mnist",))
def mode_coverage(ctx, extractor: str) -> list[MetricResult]:
    """Stacked-MNIST modes under the MNIST domain classifier (needs a stacked-mnist protocol)."""
    from ganbench.errors import GanbenchError
    from ganbench.metrics.domain import domain_classifier

    if ctx.dataset != "stacked-mnist" or ctx.samples.shape[1] != 3:
        raise GanbenchError(f"metric 'mode_coverage' needs stacked-MNIST samples (N x 3 x 28 x 28), not {ctx.dataset!r}")
    clf = domain_classifier("mnist", device=ctx.device)
    m = stacked_modes(ctx.samples, clf)
    ctx.extras["mode_histogram"] = m["histogram"].tolist()
    return _results(ctx, "", {"modes": (m["modes"], True), "modes_confident": (m["modes_confident"], True),
                              "mode_kl": (m["kl"], False), "confident_channels": (m["confident_channel_share"], True)},
                    "domain-mnist", getattr(clf, "weights_sha256", ""))
