"""Image-to-image losses: G translates a source image (domain A) into the target domain (B).

A translation loss scores batches ``real = {"a": sources, "b": targets}`` (images in [-1, 1]) against
what the translator made of them (``fake``, see ``ganbench.nets.translation``), in the trainer's one loop:
``d_loss(D, real, fake, gen)`` in the D phase and ``g_loss(D, fake, real)`` in the G phase. The
discriminators are PatchGANs: each scores a map of patches, and every mean is over the patches too.

- ``pix2pix`` (Isola et al. 2017, eq. 4): D judges (source, image) pairs, L_cGAN with G's
  non-saturating form (sec. 3.3: "we ... train to maximize log D(x, G(x, z))"), plus lambda * L1 to the
  paired target (eq. 3; lambda = 100, sec. 4); D's objective is divided by 2 (sec. 3.3).
- ``cyclegan`` (Zhu et al. 2017, eq. 1-3, sec. 4): unpaired A and B, G: A -> B and F: B -> A, each
  domain's PatchGAN with the least-squares objective (D: (D(b) - 1)^2 + D(G(a))^2, halved; G: (D(G(a)) - 1)^2),
  cycle consistency lambda * (|F(G(a)) - a| + |G(F(b)) - b|) with lambda = 10, and the identity term
  0.5 * lambda * (|G(b) - b| + |F(a) - a|) (sec. 5.2, Taigman et al. 2017). The discriminators see a history
  of 50 generated images (``ganbench.losses.history``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.core.registry import LOSSES, LossPlugin
from ganbench.losses.adversarial import Loss, Stats
from ganbench.losses.history import DEFAULT_SIZE, HistoryPool

Batch = dict[str, torch.Tensor]
POOL_SEED_HIGH = 2 ** 62  # a pool's generator is seeded by one draw from the run's generator at the first D step


@dataclass(frozen=True)
class Pix2PixOptions:
    l1_weight: float = 100.0  # lambda of Isola et al. 2017, sec. 4


@dataclass(frozen=True)
class CycleGANOptions:
    cycle_weight: float = 10.0  # lambda of Zhu et al. 2017, sec. 4
    identity_weight: float = 0.5  # x lambda (sec. 5.2: 0.5 lambda for photo generation from paintings)
    pool_size: int = DEFAULT_SIZE  # 50 (sec. 4)
    adversarial_weight: float = 1.0  # 0: "Cycle alone" of Zhu et al.'s ablation (Table 4), which fails


def _l1(loss: Loss, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return loss.mean((x - y).abs())


def _bce(loss: Loss, logits: torch.Tensor, target: float) -> torch.Tensor:
    return loss.mean(F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target), reduction="none"))


class Pix2PixLoss(Loss):
    translation = "paired"

    def __init__(self, opts: Pix2PixOptions, tricks=None):
        if opts.l1_weight < 0:
            raise GanbenchError(f"pix2pix l1_weight must be 0 or more, got {opts.l1_weight}")
        self.opts = opts

    def d_loss(self, D: nn.Module, real: Batch, fake: Batch, gen) -> tuple[torch.Tensor, Stats]:
        out_real, out_fake = D(real["b"], real["a"]), D(fake["b"], real["a"])
        loss = 0.5 * (_bce(self, out_real, 1.0) + _bce(self, out_fake, 0.0))
        return loss, {"d_real": self.mean(torch.sigmoid(out_real)), "d_fake": self.mean(torch.sigmoid(out_fake)),
                      "d_acc_real": self.mean((out_real > 0).float()), "d_acc_fake": self.mean((out_fake < 0).float())}

    def g_loss(self, D: nn.Module, fake: Batch, real: Batch) -> tuple[torch.Tensor, Stats]:
        out = D(fake["b"], real["a"])
        l1 = _l1(self, fake["b"], real["b"])
        return _bce(self, out, 1.0) + self.opts.l1_weight * l1, {"d_fake_g": self.mean(torch.sigmoid(out)), "l1": l1}


class CycleGANLoss(Loss):
    """D = (D_a, D_b) (``ganbench.nets.translation.CycleCritics``); fake = the translator's outputs."""

    translation = "cycle"

    def __init__(self, opts: CycleGANOptions, tricks=None):
        if min(opts.cycle_weight, opts.identity_weight, opts.pool_size, opts.adversarial_weight) < 0:
            raise GanbenchError("cyclegan cycle_weight, identity_weight, pool_size and adversarial_weight must be 0 or more")
        self.opts = opts
        self.pools: dict[str, HistoryPool] | None = None

    def _pools(self, gen) -> dict[str, HistoryPool]:
        if self.pools is None:
            seeds = gen.randint(POOL_SEED_HIGH, (2,)).tolist()
            self.pools = {side: HistoryPool(self.opts.pool_size, torch.Generator().manual_seed(s))
                          for side, s in zip("ab", seeds)}
        return self.pools

    def _d_side(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out_real, out_fake = D(real), D(fake)
        loss = 0.5 * (self.mean((out_real - 1.0) ** 2) + self.mean(out_fake ** 2))
        return loss, out_real, out_fake

    def d_loss(self, D: nn.Module, real: Batch, fake: Batch, gen) -> tuple[torch.Tensor, Stats]:
        pools = self._pools(gen)
        loss_b, real_b, fake_b = self._d_side(D.d_b, real["b"], pools["b"].query(fake["b"]))
        loss_a, real_a, fake_a = self._d_side(D.d_a, real["a"], pools["a"].query(fake["a"]))
        return loss_a + loss_b, {"d_real": self.mean(real_b), "d_fake": self.mean(fake_b),
                                 "d_acc_real": self.mean((real_b > 0.5).float()),
                                 "d_acc_fake": self.mean((fake_b < 0.5).float()),
                                 "d_a_loss": loss_a.detach(), "d_b_loss": loss_b.detach()}

    def g_loss(self, D: nn.Module, fake: Batch, real: Batch) -> tuple[torch.Tensor, Stats]:
        out_b, out_a = D.d_b(fake["b"]), D.d_a(fake["a"])
        adv = self.mean((out_b - 1.0) ** 2) + self.mean((out_a - 1.0) ** 2)
        cycle = _l1(self, fake["rec_a"], real["a"]) + _l1(self, fake["rec_b"], real["b"])
        loss = self.opts.adversarial_weight * adv + self.opts.cycle_weight * cycle
        stats = {"d_fake_g": self.mean(out_b), "cycle": cycle, "adv": adv}
        if self.opts.identity_weight:
            identity = _l1(self, fake["id_b"], real["b"]) + _l1(self, fake["id_a"], real["a"])
            loss = loss + self.opts.identity_weight * self.opts.cycle_weight * identity
            stats["identity"] = identity
        return loss, stats

    def state_dict(self) -> dict:
        return {} if self.pools is None else {side: pool.state_dict() for side, pool in self.pools.items()}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.pools = {side: HistoryPool(self.opts.pool_size, torch.Generator()) for side in "ab"}
            for side, pool in self.pools.items():
                pool.load_state_dict(state[side])


LOSSES.register("pix2pix", LossPlugin("pix2pix", Pix2PixOptions, Pix2PixLoss))
LOSSES.register("cyclegan", LossPlugin("cyclegan", CycleGANOptions, CycleGANLoss))
