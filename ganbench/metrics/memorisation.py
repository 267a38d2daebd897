"""Memorisation: does the generator copy its training images?

- ``nearest_l1``: for each query image the exact nearest training image by L1 pixel distance,
  reported as the mean absolute difference on [-1, 1] pixels (the course's memorisation check).
  Exact and fast: L1 of 2x2 block sums is a lower bound of the pixel L1 (triangle inequality), a
  quarter of the work, and a tight one; after an exact L1 to each query's 32 best candidates by
  that bound, only training images whose bound is below the best exact distance so far can win,
  and those few are checked exactly. Pixel sums are integers < 2^24, so float32 arithmetic is exact.
- The report puts the generated samples' NN distances beside those of held-out test images (what
  a model that does not copy looks like); a "suspected copy" is a sample closer to the training
  set than the 1st percentile of test-to-train distances.
- ``feature_copies``: the same suspected-copy rule with nearest neighbours in the domain classifier's
  feature space (Euclidean): it catches copies whose pixels changed but whose content did not (training
  images at 80% contrast: 73% flagged in feature space, 17% by pixel L1 on a 1k-image training set).
- ``ct_statistic``: the three-sample data-copying test C_T of Meehan, Chaudhuri & Dasgupta 2020
  (AISTATS), sec. 3: the training set is partitioned into k-means cells; in each cell a
  Mann-Whitney U test compares generated-to-train with test-to-train NN distances; C_T is the
  test-mass-weighted mean of the cells' z-scores. C_T << 0: data copying; C_T >> 0: underfitting.
- Floors: each statistic is also computed for real images that copy nothing: half of the held-out images
  play the samples, calibrated on the other half (copies ~1%, C_T ~0, the held-out NN distance).
- ``planted_sensitivity``: plants known shares of training images among the generated samples
  and reports which share each statistic detects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import binomtest, rankdata

from ganbench.core.errors import GanbenchError
from ganbench.core.hooks import materialised
from ganbench.data import load_data
from ganbench.extractors.domain import has_domain_classifier
from ganbench.metrics.base import Kind, MetricResult, metric_name, register_metric

# Detection thresholds (one table). Sources: the copy threshold is the 1st percentile of the
# test-to-train distances by definition, so a non-copying model has ~1% suspected copies; a share
# is "detected" when a one-sided binomial test against that 1% rejects at p < 0.01. C_T: Meehan
# et al. read |C_T| beyond ~2-3 (a z-score) as significant; we flag copying below -3.
THRESHOLDS = {
    "copy_percentile": 1.0,  # percentile of test-to-train NN distances below which a sample is a suspected copy
    "copies_p_value": 0.01,  # binomial test level for "more suspected copies than a non-copying model"
    "ct_copying_z": -3.0,  # C_T below this: data copying detected
    "ct_min_cell_count": 20,  # cells with fewer generated or test samples are skipped (Meehan et al. use tau-thresholds)
}

PIXEL_SCALE = 2.0 / 255.0  # uint8 step -> [-1, 1] step


def _block_sums(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
    return F.avg_pool2d(x, 2, divisor_override=1).flatten(1)


def nearest_l1(queries: torch.Tensor, train: torch.Tensor, chunk: int = 256, k: int = 32,
               device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact nearest training image by L1 for uint8 N x C x H x W queries.

    Returns (distance, index): distance is the mean absolute pixel difference on the [-1, 1] scale;
    ties go to the lowest training index (as ``torch.cdist(...).min(1)``).
    """
    assert queries.dtype == torch.uint8 and train.dtype == torch.uint8 and queries.shape[1:] == train.shape[1:]
    device = torch.device(device) if device else train.device
    t_flat = train.to(device).flatten(1).float()
    t_blocks = _block_sums(train.to(device))
    m, dims = t_flat.shape
    k = min(k, m)
    dists, idxs = [], []
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk].to(device)
        q_flat, n = q.flatten(1).float(), len(q)
        bound = torch.cdist(_block_sums(q), t_blocks, p=1)  # n x m lower bounds
        top = bound.topk(k, dim=1, largest=False).indices
        exact_top = (q_flat[:, None, :] - t_flat[top]).abs().sum(-1)
        best = exact_top.min(1).values
        qi, ti = (bound <= best[:, None]).nonzero(as_tuple=True)  # the only images that can be at least as close
        d = torch.empty(len(qi), device=device)
        for s in range(0, len(qi), 8192):
            d[s:s + 8192] = (q_flat[qi[s:s + 8192]] - t_flat[ti[s:s + 8192]]).abs().sum(1)
        dmin = torch.full((n,), float("inf"), device=device).scatter_reduce(0, qi, d, "amin")
        winner = torch.where(d == dmin[qi], ti, torch.full_like(ti, m))
        imin = torch.full((n,), m, dtype=torch.long, device=device).scatter_reduce(0, qi, winner, "amin")
        dists.append(dmin.cpu() / dims * PIXEL_SCALE)
        idxs.append(imin.cpu())
    return torch.cat(dists), torch.cat(idxs)


def nearest_l1_cdist(queries: torch.Tensor, train: torch.Tensor, chunk: int = 256,
                     device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain chunked ``torch.cdist(p=1)`` route (the reference and the benchmark baseline)."""
    device = torch.device(device) if device else train.device
    t_flat = train.to(device).flatten(1).float()
    dists, idxs = [], []
    for start in range(0, len(queries), chunk):
        d, i = torch.cdist(queries[start:start + chunk].to(device).flatten(1).float(), t_flat, p=1).min(1)
        dists.append(d.cpu() / t_flat.shape[1] * PIXEL_SCALE)
        idxs.append(i.cpu())
    return torch.cat(dists), torch.cat(idxs)


def kmeans(x: torch.Tensor, k: int, iters: int = 20, seed: int = 0) -> torch.Tensor:
    """Lloyd's k-means (L2) with seeded k-means++-lite initialisation (random distinct points); returns centroids."""
    gen = torch.Generator().manual_seed(seed)
    centroids = x[torch.randperm(len(x), generator=gen)[:k]].clone()
    for _ in range(iters):
        assign = torch.cdist(x, centroids).argmin(1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).float()
        keep = counts > 0
        centroids[keep] = sums[keep] / counts[keep, None]
    return centroids


def mann_whitney_z(q: np.ndarray, p: np.ndarray) -> float:
    """z-score of U = #{(i, j): q_j > p_i} (+1/2 per tie) under H0 (no continuity correction)."""
    m, n = len(q), len(p)
    ranks = rankdata(np.concatenate([q, p]))
    u = ranks[:m].sum() - m * (m + 1) / 2
    return float((u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12))


def ct_statistic(gen_dist: torch.Tensor, test_dist: torch.Tensor, gen_cell: torch.Tensor, test_cell: torch.Tensor,
                 num_cells: int) -> tuple[float, int]:
    """C_T of Meehan et al. 2020 (eq. 4) over the cells with enough samples; returns (C_T, cells used)."""
    min_count = THRESHOLDS["ct_min_cell_count"]
    zs, weights = [], []
    for c in range(num_cells):
        q, p = gen_dist[gen_cell == c].numpy(), test_dist[test_cell == c].numpy()
        if len(q) >= min_count and len(p) >= min_count:
            zs.append(mann_whitney_z(q, p))
            weights.append(len(p))
    if not zs:
        return float("nan"), 0
    return float(np.average(zs, weights=weights)), len(zs)


@dataclass
class MemorisationReport:
    gen_dist: torch.Tensor  # NN L1 of each generated sample ([-1, 1] mean absolute difference)
    gen_index: torch.Tensor  # its nearest training image
    test_dist: torch.Tensor  # NN L1 of held-out test images (the non-copying baseline)
    copy_threshold: float
    suspected_copies: float  # share of generated samples below copy_threshold
    test_below_threshold: float  # the same share for the test images (~1% by construction)
    ct: float
    ct_cells: int
    planted: list[dict] = field(default_factory=list)
    floor: dict[str, float] = field(default_factory=dict)  # the same statistics for held-out images (see held_out_halves)

    def summary(self) -> dict[str, float]:
        return {
            "nn_l1_gen_mean": float(self.gen_dist.mean()), "nn_l1_gen_p01": float(self.gen_dist.quantile(0.01)),
            "nn_l1_test_mean": float(self.test_dist.mean()), "copy_threshold": self.copy_threshold,
            "suspected_copies": self.suspected_copies, "ct": self.ct, "ct_cells": float(self.ct_cells),
        }


class Partition:
    """k-means cells of the training set (2x2 block-sum space, cheap and faithful to the L1 geometry)."""
    def __init__(self, train: torch.Tensor, num_cells: int, seed: int, fit_size: int = 10000):
        feats = _block_sums(train)
        gen = torch.Generator().manual_seed(seed)
        fit = feats[torch.randperm(len(feats), generator=gen)[:fit_size]]
        self.num_cells = num_cells
        self.centroids = kmeans(fit, num_cells, seed=seed)

    def cells(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) == 0:  # e.g. a planted share of 0 (the control of the planted check)
            return torch.empty(0, dtype=torch.long)
        return torch.cat([torch.cdist(_block_sums(x[i:i + 4096]), self.centroids).argmin(1) for i in range(0, len(x), 4096)])


def copies_detected(share: float, n: int) -> bool:

    rate = THRESHOLDS["copy_percentile"] / 100
    return binomtest(round(share * n), n, rate, alternative="greater").pvalue < THRESHOLDS["copies_p_value"]


def held_out_halves(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded split of n held-out images into a calibration half and a half that plays the samples: the
    real-vs-real floor of every memorisation statistic (what a model that copies nothing scores)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[: n // 2], order[n // 2:]


def copy_threshold(calibration: torch.Tensor) -> float:
    """The distance below which a sample is a suspected copy: the 1st percentile of held-out distances."""
    return float(np.percentile(calibration.numpy(), THRESHOLDS["copy_percentile"]))


def below_threshold_share(dist: torch.Tensor, calibration: torch.Tensor) -> float:
    """The share of ``dist`` below the copy threshold set by ``calibration`` (held-out distances)."""
    return float((dist < copy_threshold(calibration)).float().mean())


def memorisation_report(samples: torch.Tensor, train: torch.Tensor, test: torch.Tensor, num_cells: int = 20,
                        seed: int = 0, plant_shares: tuple[float, ...] = (0.01, 0.05, 0.10),
                        device: torch.device | str = "cpu") -> MemorisationReport:
    """NN-L1 distances of samples and test images to ``train``, suspected copies, C_T and the planted-copy check."""
    gen_dist, gen_index = nearest_l1(samples, train, device=device)
    test_dist, _ = nearest_l1(test, train, device=device)
    threshold = copy_threshold(test_dist)
    part = Partition(train, num_cells, seed)
    gen_cell, test_cell = part.cells(samples), part.cells(test)
    ct, cells = ct_statistic(gen_dist, test_dist, gen_cell, test_cell, num_cells)
    report = MemorisationReport(gen_dist, gen_index, test_dist, threshold,
                                float((gen_dist < threshold).float().mean()),
                                float((test_dist < threshold).float().mean()), ct, cells)
    calib, as_samples = held_out_halves(len(test), seed)
    floor_ct, _ = ct_statistic(test_dist[as_samples], test_dist[calib], test_cell[as_samples], test_cell[calib],
                               num_cells)
    report.floor = {"copies": below_threshold_share(test_dist[as_samples], test_dist[calib]), "ct": floor_ct,
                    "nn_l1": float(test_dist[as_samples].mean())}
    gen = torch.Generator().manual_seed(seed + 1)
    n = len(samples)
    for share in plant_shares:
        k = round(share * n)
        which = torch.randperm(n, generator=gen)[:k]
        planted = torch.randperm(len(train), generator=gen)[:k]
        dist, cell = gen_dist.clone(), gen_cell.clone()
        dist[which] = 0.0  # a verbatim training image is at distance 0 from the training set
        cell[which] = part.cells(train[planted])
        share_below = float((dist < threshold).float().mean())
        p_ct, _ = ct_statistic(dist, test_dist, cell, test_cell, num_cells)
        report.planted.append({
            "share": share, "suspected_copies": share_below, "copies_detected": bool(copies_detected(share_below, n)),
            "ct": p_ct, "ct_detected": bool(p_ct < THRESHOLDS["ct_copying_z"]),
        })
    return report


def nearest_features(query: torch.Tensor, train: torch.Tensor, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact Euclidean nearest neighbour of each query feature vector among ``train`` (chunked cdist)."""
    dist, index = [], []
    for i in range(0, len(query), chunk):
        d = torch.cdist(query[i:i + chunk].double(), train.double())
        best = d.min(1)
        dist.append(best.values.float())
        index.append(best.indices)
    return torch.cat(dist), torch.cat(index)


def feature_copies(samples: torch.Tensor, train: torch.Tensor, test: torch.Tensor, features,
                   seed: int = 0) -> tuple[float, float]:
    """Suspected copies in a feature space (``features``: uint8 images -> N x d): the share of samples whose
    nearest training feature vector is closer than the 1st percentile of the test images' (same rule as
    the pixel check); returns (share of samples, its real-vs-real floor: the same share for half of the
    test images, calibrated on the other half)."""
    train_f = features(train)
    gen_dist, _ = nearest_features(features(samples), train_f)
    test_dist, _ = nearest_features(features(test), train_f)
    calib, as_samples = held_out_halves(len(test), seed)
    return below_threshold_share(gen_dist, test_dist), below_threshold_share(test_dist[as_samples], test_dist[calib])


def pair_grid(samples: torch.Tensor, train: torch.Tensor, report: MemorisationReport, n_pairs: int = 32) -> torch.Tensor:
    """Images for a grid of the closest generated samples (even columns) beside their training neighbours."""
    order = report.gen_dist.argsort()[:n_pairs]
    pairs = torch.stack([samples[order], train[report.gen_index[order]]], dim=1)
    return pairs.flatten(0, 1)


# ----------------------------------------------------------------------------- registered metric



def check_calibration_split(searched: str, calibration: str) -> None:
    """The copy threshold and C_T compare samples with held-out images; images of the searched split are at
    distance 0 from it, so calibrating on that split sets the threshold to 0 and hides every copy."""

    if calibration == searched:
        raise GanbenchError(f"eval.reference_split = {calibration!r} is the split searched for copies (data.split = "
                            f"{searched!r}): memorisation calibrates on held-out images; set eval.reference_split "
                            f"to another split (e.g. {'test' if searched == 'train' else 'train'!r})")


def _reads(extractor: str, dataset: str) -> tuple[str, ...]:
    """Pixels always; the domain classifier's features on its own datasets (``feature_copies``)."""
    return ("domain",) if has_domain_classifier(dataset) else ()


@register_metric("memorisation", higher_is_better=False, reads=_reads, held_out=True,
                 quantities={"copies_l1": False, "copies": False, "copying_ct": True, "nn_l1": True},
                 kinds={"copies_l1": Kind("test", None, "share of samples closer to a training image than the calibrated "
                                          "threshold, tested against its real-vs-real floor", unit_range=True),
                        "copies": Kind("test", None, "the same in the domain classifier's features, tested against its "
                                       "floor", unit_range=True),
                        "copying_ct": Kind("test", THRESHOLDS["ct_copying_z"], "C_T: below -3 data copying (Meehan et "
                                           "al. 2020); its ideal is 0, far above 0 underfitting"),
                        "nn_l1": Kind("test", None, "mean distance to the nearest training image: descriptive, no better "
                                      "direction", descriptive=True)})
def memorisation(ctx, extractor: str) -> list[MetricResult]:
    """Suspected copies and C_T against the protocol's training images, with the held-out reference split
    as the non-copying baseline."""

    searched = ctx.protocol.data.split
    check_calibration_split(searched, ctx.reference_split)
    train = load_data(ctx.protocol.data, searched, ctx.data_root).images
    test = load_data(ctx.protocol.data, ctx.reference_split, ctx.data_root).images
    train, test = materialised(train), materialised(test)
    # Enough k-means cells for a fine partition, few enough that each holds ~2x the minimum count of samples.
    cells = max(1, min(20, len(ctx.samples) // (2 * THRESHOLDS["ct_min_cell_count"])))
    held_out = test[: max(len(ctx.samples), 1000)]  # the calibration images (also the floor's, split in halves)
    rep = memorisation_report(ctx.samples, train, held_out, num_cells=cells, device=ctx.device)
    ctx.extras["memorisation"] = {**rep.summary(), "planted": rep.planted}
    ctx.extras["memorisation_pairs"] = pair_grid(ctx.samples, train, rep)
    ref = f"{ctx.dataset}/{searched}"
    floor_ref = (f"half of the {ctx.dataset}/{ctx.reference_split} images as samples, calibrated on the other half"
                 if ctx.protocol.eval.floor else "")

    def result(quantity: str, value: float | None, higher: bool, floor: float | None, space: str | None = None,
               **kw) -> MetricResult:
        kw.setdefault("extractor", "pixels-l1")
        kw.setdefault("weights_sha256", "")
        floor = floor if floor_ref and floor == floor else None  # NaN (too few held-out images per cell): no floor
        return MetricResult(metric_name(quantity, ctx.num_samples, searched, space=space), value, higher,
                            num_samples=ctx.num_samples, reference=ref, floor=floor,
                            floor_reference=floor_ref if floor is not None else "", **kw)

    out = [result("copies_l1", rep.suspected_copies, False, rep.floor["copies"])]
    if has_domain_classifier(ctx.dataset):  # nearest neighbours in the domain classifier's feature space too
        src = ctx.source("domain")
        share, floor = feature_copies(ctx.samples, train, held_out, lambda images: src.extract(images, 1000)["features"])
        ctx.extras["memorisation"]["domain_suspected_copies"] = share
        ctx.extras["memorisation"]["domain_floor_suspected_copies"] = floor
        out.append(result("copies", share, False, floor, space="domain", extractor=src.name,
                          weights_sha256=src.weights_sha256))
    return out + [
        result("copying_ct", None if rep.ct != rep.ct else rep.ct, True, rep.floor["ct"],  # negative = copying
               unavailable=None if rep.ct == rep.ct else "no k-means cell holds enough samples"),
        result("nn_l1", float(rep.gen_dist.mean()), True, rep.floor["nn_l1"])]
