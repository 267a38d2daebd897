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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.errors import GanbenchError
from ganbench.registry import Plugin, Registry

LOSSES: Registry[Plugin] = Registry("loss")
Stats = dict[str, torch.Tensor]


@dataclass(frozen=True)
class BCEOptions:
    real_label: float = 1.0  # 0.9 = one-sided label smoothing
    g_objective: str = "non-saturating"  # or "minimax": min log(1 - D(G(z)))


class BCELoss:
    def __init__(self, opts: BCEOptions):
        if not 0.0 < opts.real_label <= 1.0:
            raise GanbenchError(f"bce real_label must be in (0, 1], got {opts.real_label}")
        if opts.g_objective not in ("non-saturating", "minimax"):
            raise GanbenchError(f"bce g_objective must be 'non-saturating' or 'minimax', got {opts.g_objective!r}")
        self.opts = opts

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, Stats]:
        out_real, out_fake = D(real), D(fake)
        loss = (F.binary_cross_entropy_with_logits(out_real, torch.full_like(out_real, self.opts.real_label))
                + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake)))
        stats = {
            "d_real": torch.sigmoid(out_real).mean(), "d_fake": torch.sigmoid(out_fake).mean(),
            "d_acc_real": (out_real > 0).float().mean(), "d_acc_fake": (out_fake < 0).float().mean(),
        }
        return loss, stats

    def g_loss(self, D: nn.Module, fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        out = D(fake)
        if self.opts.g_objective == "non-saturating":
            loss = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
        else:  # log(1 - sigmoid(out)) = -softplus(out)
            loss = -F.softplus(out).mean()
        return loss, {"d_fake_g": torch.sigmoid(out).mean()}


@dataclass(frozen=True)
class WGANGPOptions:
    gp_weight: float = 10.0  # lambda, Gulrajani et al. 2017
    drift: float = 0.0  # epsilon_drift, Karras et al. 2018 use 1e-3


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)  # one mixing weight per sample, images or 2D points
    alpha = torch.rand(shape, generator=gen, device="cpu").to(real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


class WGANGPLoss:
    def __init__(self, opts: WGANGPOptions):
        if opts.gp_weight < 0 or opts.drift < 0:
            raise GanbenchError("wgan-gp gp_weight and drift must be non-negative")
        self.opts = opts

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, Stats]:
        out_real, out_fake = D(real), D(fake)
        gap = out_real.mean() - out_fake.mean()
        gp = gradient_penalty(D, real, fake, gen)
        loss = -gap + self.opts.gp_weight * gp
        if self.opts.drift:
            loss = loss + self.opts.drift * (out_real ** 2).mean()
        nan = torch.full((), float("nan"), device=real.device)
        stats = {"d_real": out_real.mean(), "d_fake": out_fake.mean(), "critic_gap": gap.detach(), "gp": gp.detach(),
                 "d_acc_real": nan, "d_acc_fake": nan}
        return loss, stats

    def g_loss(self, D: nn.Module, fake: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        out = D(fake)
        return -out.mean(), {"d_fake_g": out.mean()}


LOSSES.register("bce", Plugin("bce", BCEOptions, BCELoss))
LOSSES.register("wgan-gp", Plugin("wgan-gp", WGANGPOptions, WGANGPLoss))


def build_loss(name: str, options: dict):
    plugin = LOSSES.get_or_raise(name)
    return plugin.build(plugin.options(options))
