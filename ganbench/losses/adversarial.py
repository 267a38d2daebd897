"""Loss plug-ins of the one trainer. Each gives the D (critic) loss and the G loss plus named stats.

The trainer owns the phase order (n_critic D updates, then one G update); a loss only says how
to score. Stats are 0-dim tensors (no host sync inside the step): ``d_real``/``d_fake`` are the
mean D(x) and D(G(z)) (probabilities for the classifier losses, raw critic values for the
Wasserstein ones); ``d_acc_real``/``d_acc_fake`` are D's accuracy on each side.

- ``bce``: Goodfellow et al. 2014, with the non-saturating G loss (sec. 3) or the original
  minimax one; ``real_label`` < 1 is one-sided label smoothing (Salimans et al. 2016, sec. 3.4).
- ``wgan-gp``: Gulrajani et al. 2017, Algorithm 1: E[D(G(z))] - E[D(x)] + lambda * E[(||grad D(x_hat)||_2 - 1)^2],
  x_hat uniform on lines between real and fake samples; optional drift term eps * E[D(x)^2]
  (Karras et al. 2018, sec. A.1).
- ``wgan``: Arjovsky et al. 2017, Algorithm 1: the same critic objective without the penalty; every
  critic weight is clipped to [-c, c] after each critic step (``after_d_step``).
- ``ls``: least squares (Mao et al. 2017, eq. 2): D minimises 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2],
  G minimises 1/2 E[(D(G(z)) - c)^2]; a = 0, b = c = 1 (their 0-1 coding).
- ``hinge``: D minimises E[relu(1 - D(x))] + E[relu(1 + D(G(z)))], G minimises -E[D(G(z))]
  (Lim & Ye 2017; Miyato et al. 2018, eq. 16-17).
- ``ns-r1``: the non-saturating loss (as ``bce``) with lazy R1 regularisation (StyleGAN2, Karras et al.
  2020, sec. 3.1): R1 = gamma/2 E_x[||grad D(x)||^2] on reals (Mescheder et al. 2018, eq. 9), evaluated
  only every ``interval``-th D step and then weighted by ``interval`` (so the average weight is gamma/2).

The target tricks of ``[tricks]`` (label noise, label flipping) apply to the losses with targets
(bce, ls) through :class:`Targets`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.core.registry import LOSSES, LossPlugin
from ganbench.spec.seeds import rand

Stats = dict[str, torch.Tensor]


@dataclass(frozen=True)
class BCEOptions:
    real_label: float = 1.0  # 0.9 = one-sided label smoothing
    g_objective: str = "non-saturating"  # or "minimax": min log(1 - D(G(z)))


class Loss:
    """What every loss plug-in shares: no post-step hook unless it needs one, and per-run means.

    ``runs`` > 1 when the trainer trains the seeds of a model together (``ganbench.training.stack``): the batches
    are the runs' batches stacked, and every mean is taken per run, so losses and stats are vectors of
    ``runs`` values (the trainer sums the losses: each run's weights get exactly its own gradient)."""

    runs: int = 1
    # Every D step differentiates D's input gradient (a gradient penalty by double backward): the fast
    # path then keeps D in the default memory layout (``ganbench.training.models.fast_layout``).
    double_backward: bool = False

    # Image-to-image losses ("paired" | "cycle") score batches of (source, target) images instead of z; see
    # ``ganbench.losses.translation``. None: a loss of G(z) against real samples.
    translation: str | None = None

    def after_d_step(self, D: nn.Module) -> None:
        pass

    def state_dict(self) -> dict:
        """What a loss carries from step to step besides the networks (a history pool), for checkpoints."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean() if self.runs == 1 else x.reshape(self.runs, -1).mean(1)

    def nan(self, device) -> torch.Tensor:
        """The value of a stat that does not apply (per run)."""
        return torch.full(() if self.runs == 1 else (self.runs,), float("nan"), device=device)


@dataclass(frozen=True)
class Targets:
    """D's regression/classification targets per sample: ``real``/``fake`` constants, optionally
    spread by label noise (uniform, towards the other side, by ``noise`` times the gap) and swapped
    with probability ``flip`` (the course's "noisy labels" and "flip labels" tips)."""

    real: float
    fake: float
    noise: float = 0.0
    flip: float = 0.0

    def sample(self, like_real: torch.Tensor, like_fake: torch.Tensor,
               gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if not (self.noise or self.flip):
            return torch.full_like(like_real, self.real), torch.full_like(like_fake, self.fake)
        return self._side(like_real, self.real, self.fake, gen), self._side(like_fake, self.fake, self.real, gen)

    def _side(self, like: torch.Tensor, own: float, other: float, gen: torch.Generator) -> torch.Tensor:
        """Each sample's target: its own side's value moved up to ``noise`` of the gap towards the other
        side, or (with probability ``flip``) the other side's value moved likewise."""
        u = [rand(gen, (len(like),)).to(device=like.device, dtype=like.dtype) for _ in range(2)]
        step = self.noise * (other - own) * u[0]  # towards the other side
        return torch.where(u[1] < self.flip, other - step, own + step)


def _targets(real: float, fake: float, tricks) -> Targets:
    return Targets(real, fake, getattr(tricks, "label_noise", 0.0), getattr(tricks, "label_flip", 0.0))


class BCELoss(Loss):
    def __init__(self, opts: BCEOptions, tricks=None):
        if not 0.0 < opts.real_label <= 1.0:
            raise GanbenchError(f"bce real_label must be in (0, 1], got {opts.real_label}")
        if opts.g_objective not in ("non-saturating", "minimax"):
            raise GanbenchError(f"bce g_objective must be 'non-saturating' or 'minimax', got {opts.g_objective!r}")
        self.opts = opts
        self.targets = _targets(opts.real_label, 0.0, tricks)

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, Stats]:
        out_real, out_fake = D(real), D(fake)
        t_real, t_fake = self.targets.sample(out_real, out_fake, gen)
        loss = (self.mean(F.binary_cross_entropy_with_logits(out_real, t_real, reduction="none"))
                + self.mean(F.binary_cross_entropy_with_logits(out_fake, t_fake, reduction="none")))
        stats = {
            "d_real": self.mean(torch.sigmoid(out_real)), "d_fake": self.mean(torch.sigmoid(out_fake)),
            "d_acc_real": self.mean((out_real > 0).float()), "d_acc_fake": self.mean((out_fake < 0).float()),
        }
        return loss, stats

    def g_loss(self, D: nn.Module, fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        out = D(fake)
        if self.opts.g_objective == "non-saturating":
            loss = self.mean(F.binary_cross_entropy_with_logits(out, torch.ones_like(out), reduction="none"))
        else:  # log(1 - sigmoid(out)) = -softplus(out)
            loss = -self.mean(F.softplus(out))
        return loss, {"d_fake_g": self.mean(torch.sigmoid(out))}


@dataclass(frozen=True)
class WGANGPOptions:
    gp_weight: float = 10.0  # lambda, Gulrajani et al. 2017
    drift: float = 0.0  # epsilon_drift, Karras et al. 2018 use 1e-3


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per sample (||grad D(x_hat)||_2 - 1)^2; the loss takes the mean."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)  # one mixing weight per sample, images or 2D points
    alpha = rand(gen, shape).to(real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1) ** 2


class WGANGPLoss(Loss):
    double_backward = True

    def __init__(self, opts: WGANGPOptions, tricks=None):
        if opts.gp_weight < 0 or opts.drift < 0:
            raise GanbenchError("wgan-gp gp_weight and drift must be non-negative")
        self.opts = opts

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, Stats]:
        out_real, out_fake = D(real), D(fake)
        d_real, d_fake = self.mean(out_real), self.mean(out_fake)
        gap = d_real - d_fake
        gp = self.mean(gradient_penalty(D, real, fake, gen))
        loss = -gap + self.opts.gp_weight * gp
        if self.opts.drift:
            loss = loss + self.opts.drift * self.mean(out_real ** 2)
        nan = self.nan(real.device)
        stats = {"d_real": d_real, "d_fake": d_fake, "critic_gap": gap.detach(), "gp": gp.detach(),
                 "d_acc_real": nan, "d_acc_fake": nan}
        return loss, stats

    def g_loss(self, D: nn.Module, fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        out = self.mean(D(fake))
        return -out, {"d_fake_g": out}


@dataclass(frozen=True)
class WGANOptions:
    clip: float = 0.01  # c, Arjovsky et al. 2017, Algorithm 1


class WGANLoss(Loss):
    def __init__(self, opts: WGANOptions, tricks=None):
        if not opts.clip > 0:
            raise GanbenchError(f"wgan clip must be positive, got {opts.clip}")
        self.opts = opts

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, Stats]:
        out_real, out_fake = D(real), D(fake)
        d_real, d_fake = self.mean(out_real), self.mean(out_fake)
        gap = d_real - d_fake
        nan = self.nan(real.device)
        return -gap, {"d_real": d_real, "d_fake": d_fake, "critic_gap": gap.detach(),
                      "d_acc_real": nan, "d_acc_fake": nan}

    def g_loss(self, D: nn.Module, fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        out = self.mean(D(fake))
        return -out, {"d_fake_g": out}

    @torch.no_grad()
    def after_d_step(self, D: nn.Module) -> None:
        torch._foreach_clamp_min_(params := list(D.parameters()), -self.opts.clip)
        torch._foreach_clamp_max_(params, self.opts.clip)


@dataclass(frozen=True)
class LSOptions:
    a: float = 0.0  # target of fakes for D (Mao et al. 2017, eq. 2, 0-1 coding)
    b: float = 1.0  # target of reals for D (0.9 = one-sided label smoothing)
    c: float = 1.0  # the value G wants D to believe for fakes


class LSLoss(Loss):
    def __init__(self, opts: LSOptions, tricks=None):
        if opts.a == opts.b:
            raise GanbenchError("ls a and b (the fake and real targets) must differ")
        self.opts = opts
        self.targets = _targets(opts.b, opts.a, tricks)

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, Stats]:
        out_real, out_fake = D(real), D(fake)
        t_real, t_fake = self.targets.sample(out_real, out_fake, gen)
        loss = 0.5 * self.mean((out_real - t_real) ** 2) + 0.5 * self.mean((out_fake - t_fake) ** 2)
        mid = (self.opts.a + self.opts.b) / 2
        real_side = (out_real > mid) if self.opts.b > self.opts.a else (out_real < mid)
        fake_side = (out_fake < mid) if self.opts.b > self.opts.a else (out_fake > mid)
        return loss, {"d_real": self.mean(out_real), "d_fake": self.mean(out_fake),
                      "d_acc_real": self.mean(real_side.float()), "d_acc_fake": self.mean(fake_side.float())}

    def g_loss(self, D: nn.Module, fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        out = D(fake)
        return 0.5 * self.mean((out - self.opts.c) ** 2), {"d_fake_g": self.mean(out)}


@dataclass(frozen=True)
class HingeOptions:
    margin: float = 1.0


class HingeLoss(Loss):
    def __init__(self, opts: HingeOptions, tricks=None):
        if not opts.margin > 0:
            raise GanbenchError(f"hinge margin must be positive, got {opts.margin}")
        self.opts = opts

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, Stats]:
        out_real, out_fake = D(real), D(fake)
        m = self.opts.margin
        loss = self.mean(F.relu(m - out_real)) + self.mean(F.relu(m + out_fake))
        return loss, {"d_real": self.mean(out_real), "d_fake": self.mean(out_fake),
                      "d_acc_real": self.mean((out_real > 0).float()), "d_acc_fake": self.mean((out_fake < 0).float())}

    def g_loss(self, D: nn.Module, fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        out = self.mean(D(fake))
        return -out, {"d_fake_g": out}


LOSSES.register("bce", LossPlugin("bce", BCEOptions, BCELoss, targets=True))
LOSSES.register("wgan-gp", LossPlugin("wgan-gp", WGANGPOptions, WGANGPLoss))
LOSSES.register("wgan", LossPlugin("wgan", WGANOptions, WGANLoss))
LOSSES.register("ls", LossPlugin("ls", LSOptions, LSLoss, targets=True))
LOSSES.register("hinge", LossPlugin("hinge", HingeOptions, HingeLoss))


@dataclass(frozen=True)
class NSR1Options:
    gamma: float = 0.01  # R1 weight (StyleGAN2-ADA's CIFAR-10 config; StyleGAN2 FFHQ 1024: 10)
    interval: int = 16  # k: R1 every k-th D step, weighted by k (StyleGAN2 sec. 3.1, lazy regularisation)


class NSR1Loss(Loss):
    """Non-saturating loss; every ``interval``-th D step adds interval * gamma/2 * E||grad_x D(x)||^2 on reals.

    The D step's index is images_seen // batch (``set_progress``, set by the trainer before every D step),
    so which steps are regularised depends on training progress alone and a resumed run repeats it.
    StyleGAN2 runs the regulariser as a separate optimiser step; here it joins that D step's loss."""

    def __init__(self, opts: NSR1Options, tricks=None):
        if opts.gamma < 0 or opts.interval < 1:
            raise GanbenchError(f"ns-r1: gamma must be >= 0 and interval >= 1, got {opts.gamma} and {opts.interval}")
        self.opts = opts
        self.images_seen = 0

    def set_progress(self, images_seen: int) -> None:
        self.images_seen = images_seen

    @property
    def double_backward(self) -> bool:  # lazy R1 differentiates D's input gradient on 1 D step in ``interval``
        return bool(self.opts.gamma) and self.opts.interval == 1

    def regularises(self, batch_size: int) -> bool:
        return bool(self.opts.gamma) and (self.images_seen // batch_size) % self.opts.interval == 0

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, Stats]:
        lazy = self.regularises(len(real) // self.runs)
        x = real.detach().requires_grad_(True) if lazy else real
        out_real, out_fake = D(x), D(fake)
        loss = self.mean(F.softplus(out_fake)) + self.mean(F.softplus(-out_real))  # -log(1 - D(G(z))) - log D(x)
        r1 = self.nan(real.device)
        if lazy:
            (grad,) = torch.autograd.grad(out_real.sum(), x, create_graph=True)
            r1 = self.mean(grad.square().flatten(1).sum(1))
            loss = loss + self.opts.interval * self.opts.gamma / 2 * r1
        stats = {
            "d_real": self.mean(torch.sigmoid(out_real)), "d_fake": self.mean(torch.sigmoid(out_fake)),
            "d_acc_real": self.mean((out_real > 0).float()), "d_acc_fake": self.mean((out_fake < 0).float()),
            "r1": r1.detach(),  # E||grad D(x)||^2 on the regularised steps, NaN on the others
        }
        return loss, stats

    def g_loss(self, D: nn.Module, fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        out = D(fake)
        return self.mean(F.softplus(-out)), {"d_fake_g": self.mean(torch.sigmoid(out))}


LOSSES.register("ns-r1", LossPlugin("ns-r1", NSR1Options, NSR1Loss))
