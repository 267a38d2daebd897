"""One training step in named parts: the D phase (``n_critic`` D steps, Goodfellow et al. 2014,
Algorithm 1; Arjovsky et al. 2017 and Gulrajani et al. 2017 for n_critic > 1), then the G phase (G's
step, the EMA of its weights, the restore of an unrolled D), then the step's stats.

A step depends on nothing but its data rows, its random draws and the networks' state, and makes no
host sync, so that on a GPU the fast path can replay it as a CUDA graph (``ganbench.training.cudagraph``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from ganbench.losses import Loss
from ganbench.nets.sampling import to_model_range
from ganbench.spec.protocol import RunSpec, TricksSpec
from ganbench.spec.seeds import Generators
from ganbench.training.stack import per_run_norm

RECORD_FIELDS = ("d_loss", "g_loss", "d_real", "d_fake", "d_acc_real", "d_acc_fake", "d_grad_norm", "g_grad_norm")


@dataclass(frozen=True)
class StepParts:
    """What a training step works on; the same objects for every step of a run."""

    G: nn.Module
    D: nn.Module
    G_ema: nn.Module | None  # the EMA generator when the ema trick is on
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    loss: Loss
    data: torch.Tensor  # the training set on the device: uint8 images or float 2D points
    targets: torch.Tensor | None  # its labels (conditional models)
    tricks: TricksSpec
    runs: int  # seeds trained together (1: alone)
    batch_size: int
    z_dim: int
    n_critic: int
    classes: int  # 0: unconditional
    hooked: tuple = ()  # nets and losses with a training-progress schedule (``set_progress``)
    d_trainable: tuple = ()  # D's parameters, frozen during G's step on the fast path
    sources: torch.Tensor | None = None  # image-to-image: the source images, one per row of ``data`` (the targets)
    precision: str = "fp32"  # "bf16": the step's forward passes under bfloat16 autocast (``train.precision``)

    @property
    def device(self) -> torch.device:
        return self.data.device


def grad_norm(module: nn.Module) -> torch.Tensor:
    """L2 norm of all gradients (per run for seeds trained together)."""
    return per_run_norm([p.grad for p in module.parameters() if p.grad is not None], getattr(module, "runs", 1))


def weight_norm(module: nn.Module) -> torch.Tensor:
    """L2 norm of all parameters: exploding weights are the divergence signal when the losses stay finite."""
    return per_run_norm([p.detach() for p in module.parameters()], getattr(module, "runs", 1))


def ema_decay(decay: float, rampup: float, images_seen: int, batch: int) -> float:
    """The EMA's decay for one G step of ``batch`` images: ``decay``, or with a ramp-up (StyleGAN2-ADA,
    Karras et al. 2020, ``ema_rampup``) the decay whose half-life in images is at most ``rampup`` x the
    images seen, so that early in training (and right after a new ProGAN block starts) the average
    follows G instead of dragging its initial weights along: beta = 0.5 ** (batch / half-life)."""
    if not rampup:
        return decay
    half_life = min(batch * math.log(0.5) / math.log(decay), rampup * images_seen)
    return 0.5 ** (batch / max(half_life, 1e-8))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for parameters; buffers (batch-norm statistics) are copied."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def instance_noise_sigma(spec: RunSpec, step: int, total_steps: int) -> float:
    """sigma_0 * (1 - step / T), floored at 0: annealed linearly to zero (Sonderby et al. 2017, sec. 4)."""
    t = spec.model.tricks
    if not t.instance_noise:
        return 0.0
    return t.instance_noise * max(0.0, 1.0 - step / (t.instance_noise_steps or total_steps))


def feature_matching(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, y_real, y_fake) -> torch.Tensor:
    """||E phi(x) - E phi(G(z))||^2 on D's penultimate features (Salimans et al. 2016, sec. 3.1)."""
    extra_r, extra_f = ((y_real,), (y_fake,)) if y_real is not None else ((), ())
    with torch.no_grad():
        f_real = D.features(real, *extra_r).mean(0)
    return ((f_real - D.features(fake, *extra_f).mean(0)) ** 2).sum()


def set_progress(objects, images_seen: int) -> None:
    """Schedules that depend on training progress (progressive growing's phase and fade-in, lazy
    regularisation) read it from ``images_seen`` alone, so a resumed run is exactly where it stopped.
    Nets and losses that have a schedule define ``set_progress(images_seen)``."""
    for obj in objects:
        obj.set_progress(images_seen)


def _bind(D: nn.Module, y: torch.Tensor | None):
    """D with the labels of a conditional batch bound (losses call D(x) only)."""
    return D if y is None else (lambda x: D(x, y))


def _noisy(p: StepParts, x: torch.Tensor, sigma: float, draws: Generators) -> torch.Tensor:
    """D's input with instance noise of std ``sigma`` (none at 0)."""
    return x + sigma * draws.randn(x.shape).to(p.device) if sigma else x


def _generate(p: StepParts, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    return p.G(z, y) if p.classes else p.G(z)


def real_batch(p: StepParts, rows: torch.Tensor, c: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The real samples (in the model's range) and labels of D step ``c`` of the step's data ``rows``."""
    bs = p.batch_size
    idx = rows[:, c * bs:(c + 1) * bs].reshape(-1)
    real = p.data[idx]
    real = to_model_range(real) if real.dtype == torch.uint8 else real  # images vs 2D points
    if p.sources is not None:  # image-to-image: the batch is the (source, target) pair
        return {"a": to_model_range(p.sources[idx]), "b": real}, None
    return real, (p.targets[idx] if p.classes else None)


def _update(net: nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor) -> torch.Tensor:
    """One optimiser step on ``loss`` (runs trained together: the sum of independent losses); the gradient norm."""
    opt.zero_grad(set_to_none=True)
    loss.sum().backward()
    norm = grad_norm(net)
    opt.step()
    return norm


def _freeze_d(p: StepParts, frozen: bool) -> None:
    """G's step needs D's input gradients only; D's weight gradients would be thrown away (the fast path)."""
    for q in p.d_trainable:
        q.requires_grad_(not frozen)


def _update_g(p: StepParts, g_loss: torch.Tensor) -> torch.Tensor:
    """G's optimiser step; D's weights take gradients again before G's gradient norm is read."""
    p.opt_g.zero_grad(set_to_none=True)
    g_loss.sum().backward()
    _freeze_d(p, False)
    norm = grad_norm(p.G)
    p.opt_g.step()
    return norm


def d_step_translation(p: StepParts, real: dict, draws: Generators):
    """One D update of an image-to-image model on a (source, target) batch and G's translations of it."""
    with torch.no_grad():
        fake = p.G(real)
    d_loss, d_stats = p.loss.d_loss(p.D, real, fake, draws)
    return d_loss, _update(p.D, p.opt_d, d_loss), d_stats


def g_step_translation(p: StepParts, real: dict):
    """One G update of an image-to-image model: its loss on the last D step's batch (as pix2pix and CycleGAN
    train G and D on the same batch), gradient norm and stats."""
    _freeze_d(p, True)
    g_loss, g_stats = p.loss.g_loss(p.D, p.G(real, full=True), real)
    return g_loss, _update_g(p, g_loss), g_stats


def d_step(p: StepParts, real: torch.Tensor, y, sigma: float, draws: Generators):
    """One D update on ``real`` against fakes of the same labels: D's loss (per run), gradient norm, stats."""
    if p.sources is not None:
        return d_step_translation(p, real, draws)
    z = draws.randn(p.runs * p.batch_size, p.z_dim).to(p.device)
    with torch.no_grad():
        fake = _generate(p, z, y)  # conditional: fakes of the real batch's labels
    d_loss, d_stats = p.loss.d_loss(_bind(p.D, y), _noisy(p, real, sigma, draws), _noisy(p, fake, sigma, draws), draws)
    d_norm = _update(p.D, p.opt_d, d_loss)
    p.loss.after_d_step(p.D)
    return d_loss, d_norm, d_stats


def d_phase(p: StepParts, rows: torch.Tensor, draws: Generators, sigma: float, images_seen: int):
    """``n_critic`` D steps over the step's data rows: their mean stats, and the last real batch and labels."""
    acc: dict[str, torch.Tensor] = {}
    for c in range(p.n_critic):
        set_progress(p.hooked, images_seen + c * p.batch_size)
        real, y = real_batch(p, rows, c)
        d_loss, d_norm, d_stats = d_step(p, real, y, sigma, draws)
        for k, v in {"d_loss": d_loss.detach(), "d_grad_norm": d_norm, **d_stats}.items():
            acc[k] = acc.get(k, 0.0) + v.detach() / p.n_critic
    return acc, real, y


def unroll_d(p: StepParts, real: torch.Tensor, y, sigma: float, draws: Generators):
    """Metz et al. 2017: G answers D after ``unrolled_steps`` more D steps; returns D's state to restore after."""
    if not p.tricks.unrolled_steps:
        return None
    backup = copy.deepcopy(p.D.state_dict()), copy.deepcopy(p.opt_d.state_dict())
    for _ in range(p.tricks.unrolled_steps):
        d_step(p, real, y, sigma, draws)
    return backup


def g_step(p: StepParts, real: torch.Tensor, y, sigma: float, draws: Generators):
    """One G update: G's loss (per run), gradient norm and stats."""
    if p.sources is not None:
        return g_step_translation(p, real)
    z = draws.randn(p.runs * p.batch_size, p.z_dim).to(p.device)
    y_g = draws.randint(p.classes, (p.runs * p.batch_size,)).to(p.device) if p.classes else None
    _freeze_d(p, True)
    fake = _generate(p, z, y_g)
    g_loss, g_stats = p.loss.g_loss(_bind(p.D, y_g), _noisy(p, fake, sigma, draws))
    if p.tricks.feature_matching:
        fm = feature_matching(p.D, _noisy(p, real, sigma, draws), _noisy(p, fake, sigma, draws), y, y_g)
        g_loss = g_loss + p.tricks.feature_matching * fm
        g_stats = {**g_stats, "feature_matching": fm}
    return g_loss, _update_g(p, g_loss), g_stats


def g_phase(p: StepParts, real: torch.Tensor, y, draws: Generators, sigma: float, images_seen: int) -> dict:
    """G's step (against an unrolled D when that trick is on, D restored after), the EMA update: G's stats."""
    backup = unroll_d(p, real, y, sigma, draws)
    g_loss, g_norm, g_stats = g_step(p, real, y, sigma, draws)
    if backup is not None:
        p.D.load_state_dict(backup[0])
        p.opt_d.load_state_dict(backup[1])
    if p.G_ema is not None:
        ema_update(p.G_ema, p.G, ema_decay(p.tricks.ema, p.tricks.ema_rampup, images_seen, p.batch_size))
    if p.tricks.instance_noise:
        g_stats = {**g_stats, "instance_noise": torch.tensor(sigma, device=p.device)}
    return {"g_loss": g_loss.detach(), "g_grad_norm": g_norm, **{k: v.detach() for k, v in g_stats.items()},
            "g_weight_norm": weight_norm(p.G), "d_weight_norm": weight_norm(p.D)}


def train_step(p: StepParts, rows: torch.Tensor, draws: Generators, sigma: float, images_seen: int) -> dict:
    """One G step after ``n_critic`` D steps on the data ``rows`` (runs x n_critic * batch), every random
    draw from ``draws``: the step's stats by name, each a scalar or one value per run. Under
    ``precision`` "bf16" the forward passes run in bfloat16 autocast (weights, optimiser state and the
    stats stay float32). The cast cache is off: it would keep the bfloat16 copy of D's weights from before
    D's update for G's step (and for the later of ``n_critic`` D steps)."""
    with torch.autocast(p.device.type, dtype=torch.bfloat16, enabled=p.precision == "bf16", cache_enabled=False):
        acc, real, y = d_phase(p, rows, draws, sigma, images_seen)
        acc.update(g_phase(p, real, y, draws, sigma, images_seen))
    return acc


def record_names(stats: dict) -> list[str]:
    """The columns of the per-step records: the fields every loss reports, then the rest in name order."""
    return list(RECORD_FIELDS) + sorted(set(stats) - set(RECORD_FIELDS))


def stack_stats(stats: dict, names: list[str], runs: int) -> torch.Tensor:
    """A step's stats as one tensor, runs x len(names), still on the device."""
    return torch.stack([stats[k].float().reshape(-1).expand(runs) for k in names], 1)
