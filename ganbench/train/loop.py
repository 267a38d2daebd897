"""The one training loop of every ganbench model.

Read it top to bottom: data resident on the device as uint8, a seeded permutation per epoch,
``n_critic`` D (critic) updates then one G update (Goodfellow et al. 2014, Algorithm 1; Arjovsky
et al. 2017 and Gulrajani et al. 2017 for n_critic > 1), a loss plug-in that scores both sides,
per-G-step records, an atomic checkpoint after every epoch and an exact resume from it.

Every random draw (weight init, permutations, z, the gradient-penalty mix) comes from one
``torch.Generator`` seeded by the run's seed, and its state is checkpointed, so a resumed run
ends with the same weights as an uninterrupted one. Reporting is decoupled from writing: the
caller passes ``on_epoch`` and gets plain data (the generator, a summary dict).

The same loop trains the seeds of one model together (:func:`train_together`, ``ganbench.spec.seeds``):
G and D are then S stacked copies behind one vmapped forward, each batch is the runs' batches stacked,
and every draw and every loss is per run; training alone is the case S = 1, with plain modules.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import nn

from ganbench.train import cudagraph
from ganbench.core.assets import atomic_path, atomic_torch_save
from ganbench.core.errors import GanbenchError
from ganbench.losses import Loss, build_loss
from ganbench.nets import FLAT_INPUT, NETS
from ganbench.nets.dcgan28 import init_dcgan_weights
from ganbench.nets.layers import ConditionalGenerator, WrappedDiscriminator, apply_spectral_norm
from ganbench.spec.protocol import OptimSpec, RunSpec
from ganbench.spec.seeds import (Generators, SeedStack, optimizer_state_of, per_run_norm, seed_state,
                            stack_optimizer_states, unstack)

RECORD_FIELDS = ("d_loss", "g_loss", "d_real", "d_fake", "d_acc_real", "d_acc_fake", "d_grad_norm", "g_grad_norm")
# on_check(step, G, rows so far, say) -> a stop reason or None (see ``train``)
OnCheck = Callable[[int, nn.Module, list[dict], Callable[[str], None]], "str | None"]


def _silent(text: str) -> None:
    pass


@dataclass
class TrainResult:
    status: str  # "finished" | "diverged" | "stopped" (by on_check)
    epochs_done: int
    steps: int
    images_seen: int
    wall_time_s: float
    records: pd.DataFrame
    G: nn.Module
    D: nn.Module
    first_bad_step: int | None = None
    message: str = ""
    epoch_summaries: list[dict] = field(default_factory=list)
    G_ema: nn.Module | None = None  # the EMA generator when the ema trick is on (evaluation uses it)
    replayed_steps: int = 0  # steps taken as a CUDA-graph replay (the fast path on a GPU)

    @property
    def G_eval(self) -> nn.Module:
        return self.G_ema if self.G_ema is not None else self.G


def num_classes(spec: RunSpec) -> int:
    """Classes of a conditional model's dataset (0 for an unconditional model)."""
    if spec.model.conditional is None:
        return 0
    from ganbench.data import dataset_classes

    return dataset_classes(spec.protocol.data.dataset)


def build_models(spec: RunSpec, device: torch.device, gen: torch.Generator) -> tuple[nn.Module, nn.Module]:
    """G and D of a model card: the architectures, wrapped with what the card adds (conditioning,
    minibatch-std, spectral norm; see ``ganbench.nets.layers``), initialised from ``gen``."""
    m, d, t, cond = spec.model, spec.protocol.data, spec.model.tricks, spec.model.conditional
    k = num_classes(spec)
    G = NETS.get_or_raise(m.generator.arch)
    D = NETS.get_or_raise(m.discriminator.arch)
    netG = G.build(G.options(m.generator.options), z_dim=m.z_dim + k, channels=d.channels, image_size=d.image_size)
    d_ctx = dict(z_dim=m.z_dim, channels=d.channels, image_size=d.image_size)
    if cond is not None and cond.d_input == "planes":
        d_ctx["channels"] = d.channels + k
    elif cond is not None and cond.d_input == "embedding":
        if m.discriminator.arch not in FLAT_INPUT:
            raise GanbenchError(f"conditional d_input 'embedding' needs a flat-input discriminator ({', '.join(FLAT_INPUT)}); "
                                f"{m.discriminator.arch} takes images: use d_input 'planes' or 'projection'")
        d_ctx.update(channels=d.channels * max(d.image_size, 1) ** 2 + k, image_size=0)
    netD = D.build(D.options(m.discriminator.options), **d_ctx)
    if cond is not None:
        netG = ConditionalGenerator(netG, k, cond.g_input)
    if cond is not None or t.minibatch_std:
        netD = WrappedDiscriminator(netD, k, cond.d_input if cond else None, t.minibatch_std)
    init_dcgan_weights(netG, gen)
    init_dcgan_weights(netD, gen)
    for net in (netG, netD):
        if hasattr(net, "init_embeddings"):
            net.init_embeddings(gen)
    if t.spectral_norm:
        apply_spectral_norm(netD)
    return netG.to(device), netD.to(device)


def make_optimizer(params, spec: OptimSpec) -> torch.optim.Optimizer:
    if spec.name == "adam":
        return torch.optim.Adam(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)
    return torch.optim.RMSprop(params, lr=spec.lr, weight_decay=spec.weight_decay)


def grad_norm(module: nn.Module) -> torch.Tensor:
    """L2 norm of all gradients (per run for seeds trained together)."""
    return per_run_norm([p.grad for p in module.parameters() if p.grad is not None], getattr(module, "runs", 1))


def weight_norm(module: nn.Module) -> torch.Tensor:
    """L2 norm of all parameters: exploding weights are the divergence signal when the losses stay finite."""
    return per_run_norm([p.detach() for p in module.parameters()], getattr(module, "runs", 1))


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255] (rounded, clamped)."""
    return ((x.detach().float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def fixed_z(n: int, z_dim: int, z_seed: int) -> torch.Tensor:
    """The protocol's fixed z: the same for every run, so grids and metrics are comparable."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(z_seed))


def fixed_labels(n: int, classes: int) -> torch.Tensor:
    """The labels that go with the fixed z of a conditional model: 0, 1, ..., classes - 1, 0, 1, ...
    (an 8x8 grid of a 10-class model shows every class in turn; evaluation samples are class-balanced)."""
    return torch.arange(n) % classes


@torch.no_grad()
def generate(G: nn.Module, z: torch.Tensor, batch_size: int = 500, as_uint8: bool = True,
             labels: torch.Tensor | None = None) -> torch.Tensor:
    """Samples of G in eval mode (batch-norm statistics frozen) for the given z (on CPU): uint8 images,
    or with ``as_uint8=False`` the raw float outputs (2D points). A conditional G needs ``labels``
    (default: :func:`fixed_labels`)."""
    device = next(G.parameters()).device
    was_training = G.training
    convert = to_uint8 if as_uint8 else (lambda x: x.float())
    classes = getattr(G, "num_classes", 0)
    if classes and labels is None:
        labels = fixed_labels(len(z), classes)
    G.eval()
    try:
        out = []
        for i in range(0, len(z), batch_size):
            args = (z[i:i + batch_size].to(device),) + ((labels[i:i + batch_size].to(device),) if classes else ())
            out.append(convert(G(*args)).cpu())
        return torch.cat(out)
    finally:
        G.train(was_training)


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


class Progress:
    """A tqdm bar on a terminal; otherwise (a log file, a batch job, a sweep worker) a plain line at most
    every ``every_s`` seconds with the step, the share done, the per-run images/s and the losses."""

    def __init__(self, total_steps: int, desc: str, start: int = 0, images_per_step: int = 0, every_s: float = 60.0):
        self.desc, self.total, self.step = desc, total_steps, start
        self.images_per_step, self.every_s = images_per_step, every_s
        self.last_t, self.last_step = time.perf_counter(), start
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=start, desc=desc, unit="step", dynamic_ncols=True)

    def update(self, step: int, info: dict) -> None:
        """Training has reached ``step`` (counted from the run's start)."""
        steps, self.step = step - self.step, step
        if self.bar is not None:
            self.bar.update(steps)
            self.bar.set_postfix({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in info.items()}, refresh=False)
            return
        now = time.perf_counter()
        if now - self.last_t < self.every_s:
            return
        rate = (self.step - self.last_step) * self.images_per_step / (now - self.last_t)
        values = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items())
        self.line(f"step {self.step}/{self.total} ({100 * self.step / max(self.total, 1):.0f}%)  {values}"
                  + (f"  {rate:.0f} images/s" if self.images_per_step else ""))
        self.last_t, self.last_step = now, self.step

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(f"[{self.desc}] {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fast_layout(G: nn.Module, D: nn.Module, loss: Loss) -> None:
    """The fast path's memory layout: 4-D weights (and so activations) channels_last, which oneDNN's
    convolutions on CPU and cuDNN's on recent GPUs run faster; values are unchanged. D keeps the default
    layout when every D step takes a double backward (``loss.double_backward``: WGAN-GP, R1 on every
    step): the double backward of a convolution copies its input transposed (batch <-> channels), a
    strided gather in channels_last (5 ms against 0.6 ms for 128x64x14x14 on 2 CPU cores), and WGAN-GP's
    fast path ran at 0.95x the plain path's images/s with D channels_last, 0.99x without
    (benchmarks/bench_train.py --model wgan-gp)."""
    G.to(memory_format=torch.channels_last)
    if not loss.double_backward:
        D.to(memory_format=torch.channels_last)


def checkpoint_path(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "last.pt"


def train(spec: RunSpec, images: torch.Tensor, run_dir: Path, device: torch.device | str = "cpu",
          resume: bool = False, on_epoch: Callable[[int, nn.Module, dict], None] | None = None,
          progress: bool = True, on_check: OnCheck | None = None, labels: torch.Tensor | None = None,
          fast: bool = True, on_phase: Callable[[int, nn.Module, dict], None] | None = None) -> TrainResult:
    """Train ``spec.model`` on uint8 ``images`` (N x C x H x W) under ``spec.protocol``'s budget;
    a conditional model also needs the images' ``labels``.

    ``fast`` (the default) runs the same algorithm with less work: channels_last layouts, no gradients for
    D's weights during G's step (they are discarded anyway) and, on a GPU, the whole step replayed as a CUDA
    graph where the step allows it (``ganbench.train.cudagraph``). Same seed, same losses as the plain path
    (``fast=False``) up to float rounding, which GAN dynamics amplify over hundreds of steps as any change
    of kernels does (tests/test_train.py states the tolerance; benchmarks/bench_train.py the speed).

    ``on_check(step, G, rows, say)`` is called every ``check_every`` steps with the per-step rows so far
    and a function that prints a line in the progress output; a non-empty string it returns stops the
    run with status "stopped" and that message (the artifacts written so far are kept). ``on_epoch``
    and ``on_check`` get the generator that evaluation uses (the EMA one when that trick is on).

    A growing model (``phase_index``, ProGAN-lite) also reports the end of each phase of its schedule:
    ``on_phase(k, G, info)`` with info = step, images_seen, the resolution and fade-in alpha G was at,
    and the phase's mean losses."""
    return train_together([spec], images, [run_dir], device, resume, [on_epoch], progress, [on_check], labels, fast,
                          [on_phase])[0]


def train_together(specs: list[RunSpec], images: torch.Tensor, run_dirs: list[Path], device: torch.device | str = "cpu",
                   resume: bool = False, on_epoch: list | None = None, progress: bool = True,
                   on_check: list | None = None, labels: torch.Tensor | None = None,
                   fast: bool = True, on_phase: list | None = None) -> list[TrainResult]:
    """Train the seeds of one model under one protocol together, batched in one process (``ganbench.spec.seeds``):
    per run the algorithm and the random draws of :func:`train` alone, up to float rounding. One run
    directory, ``on_epoch``, ``on_check`` and ``on_phase`` (or None) per spec; one TrainResult per spec. A run that
    diverges or is stopped ends there (its artifacts are kept) while the others go on. Each run's
    checkpoint is the one it would write alone: it can be resumed alone, and vice versa."""
    device = torch.device(device)
    spec, S = specs[0], len(specs)
    check_together(specs)
    tr, m = spec.protocol.train, spec.model
    gens = Generators([torch.Generator().manual_seed(s.seed) for s in specs])
    data = images.to(device)
    if m.conditional is not None and (labels is None or len(labels) != len(images)):
        raise GanbenchError(f"model {m.name!r} is conditional: it needs one label per training image")
    targets = labels.to(device) if m.conditional is not None else None
    n, bs = len(data), tr.batch_size
    if n < bs:
        raise GanbenchError(f"the training set has {n} images, fewer than one batch of {bs}")
    batches = n // bs if tr.drop_last else math.ceil(n / bs)
    g_steps_per_epoch = batches // m.n_critic
    if g_steps_per_epoch == 0:
        raise GanbenchError(f"{batches} batches per epoch is fewer than n_critic = {m.n_critic}")

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(spec.seed)  # only dropout draws from the global generator (training alone only)
        nets = [build_models(s, device, g) for s, g in zip(specs, gens.gens)]
        Gs, Ds = [g for g, _ in nets], [d for _, d in nets]
        loss = build_loss(m.loss.name, m.loss.options, m.tricks)
        loss.runs = S
        if S > 1:
            check_batchable(spec, Gs[0], Ds[0])
        elif fast:
            fast_layout(Gs[0], Ds[0], loss)
        G_emas = [copy.deepcopy(G).requires_grad_(False) for G in Gs] if m.tricks.ema else None
        states = [dict(epoch=0, step=0, images_seen=0, wall_time_s=0.0, rows=[]) for _ in specs]
        opt_states = []
        for i, (s, run_dir) in enumerate(zip(specs, run_dirs)):
            ckpt = checkpoint_path(Path(run_dir))
            if resume and ckpt.is_file():
                states[i], opt_g_state, opt_d_state = _load_checkpoint(ckpt, s, Gs[i], Ds[i], gens.gens[i],
                                                                       G_emas[i] if G_emas else None)
                opt_states.append((opt_g_state, opt_d_state))
            elif resume:
                raise GanbenchError(f"--resume: no checkpoint at {ckpt}; run without --resume to start fresh")
        if len({(st["epoch"], st["step"]) for st in states}) > 1:
            raise GanbenchError("--resume: the seeds' checkpoints are at different epochs ("
                                + ", ".join(f"seed {s.seed}: {st['epoch']}" for s, st in zip(specs, states))
                                + "); resume them one at a time (without --concurrent-seeds)")
        G, D = (Gs[0], Ds[0]) if S == 1 else (SeedStack(Gs), SeedStack(Ds))
        G_ema = None if G_emas is None else G_emas[0] if S == 1 else SeedStack(G_emas).requires_grad_(False)
        opt_g = make_optimizer(G.parameters(), m.optim_g)
        opt_d = make_optimizer(D.parameters(), m.optim_d)
        if opt_states:
            opt_g.load_state_dict(stack_optimizer_states([g for g, _ in opt_states]))
            opt_d.load_state_dict(stack_optimizer_states([d for _, d in opt_states]))
        runs = [_Run(s, Path(d), cb, chk, st, ph) for s, d, cb, chk, st, ph in
                zip(specs, run_dirs, on_epoch or [None] * S, on_check or [None] * S, states, on_phase or [None] * S)]
        return _loop(spec, data, targets, G, D, G_ema, opt_g, opt_d, loss, gens, runs, device,
                     g_steps_per_epoch, progress, fast)


def check_together(specs: list[RunSpec]) -> None:
    """Runs trained together must be one model under one protocol with distinct seeds."""
    if not specs:
        raise GanbenchError("no runs to train")
    keys = {json.dumps({**s.to_dict(), "seed": None}, sort_keys=True, default=str) for s in specs}
    if len(keys) > 1:
        raise GanbenchError("seeds trained together must share the protocol and the model card; got "
                            + ", ".join(sorted({f"{s.model.name} under {s.protocol.name}" for s in specs})))
    seeds = [s.seed for s in specs]
    if len(set(seeds)) != len(seeds):
        raise GanbenchError(f"seeds trained together must differ, got {seeds}")


def step_dependencies(G: nn.Module, D: nn.Module) -> list[str]:
    """What makes a training step of G and D depend on more than its inputs and the runs' generators:
    draws from torch's global generator (dropout, the style-based generator's noise and mixing) and
    training-progress schedules (progressive growing). Seeds cannot be trained together, nor a step
    replayed as a CUDA graph, with any of these."""
    why = []
    for name, net in (("G", G), ("D", D)):
        mods = list(net.modules())
        if any(isinstance(x, nn.Dropout) and x.p > 0 for x in mods):
            why.append(f"{name} has dropout (it draws from torch's global generator)")
        if any(getattr(x, "draws_global_rng", False) for x in mods):
            why.append(f"{name} draws noise from torch's global generator")
        if any(hasattr(x, "set_progress") for x in mods):
            why.append(f"{name} follows a training-progress schedule")
    return why


def batch_blockers(spec: RunSpec, G: nn.Module, D: nn.Module) -> list[str]:
    """What training seeds together cannot do (empty: nothing): :func:`step_dependencies`, spectral
    normalisation (in-place power iteration) and feature matching (it calls D's features, not D)."""
    why = step_dependencies(G, D)
    if spec.model.tricks.spectral_norm:
        why.append("spectral normalisation's power iteration updates its vectors in place, which vmap cannot batch")
    if spec.model.tricks.feature_matching:
        why.append("the feature_matching trick calls D's features")
    return why


def check_batchable(spec: RunSpec, G: nn.Module, D: nn.Module) -> None:
    """Refuse, saying why, a model whose seeds cannot train together (:func:`batch_blockers`)."""
    why = batch_blockers(spec, G, D)
    if why:
        raise GanbenchError(f"{spec.model.name} cannot train its seeds together: {'; '.join(why)}. "
                            "Train its seeds one after another (without --concurrent-seeds)")


@dataclass
class _Run:
    """One run's bookkeeping in the loop: what its checkpoint holds (``state``), how it ended, its callbacks."""

    spec: RunSpec
    run_dir: Path
    on_epoch: Callable[[int, nn.Module, dict], None] | None
    on_check: OnCheck | None
    state: dict  # epoch, step, images_seen, wall_time_s, rows
    on_phase: Callable[[int, nn.Module, dict], None] | None = None
    first_bad: int | None = None
    summaries: list = field(default_factory=list)
    result: TrainResult | None = None

    @property
    def active(self) -> bool:
        return self.result is None


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


def set_progress(objects: list, images_seen: int) -> None:
    """Schedules that depend on training progress (progressive growing's phase and fade-in, lazy
    regularisation) read it from ``images_seen`` alone, so a resumed run is exactly where it stopped.
    Nets and losses that have a schedule define ``set_progress(images_seen)``."""
    for obj in objects:
        obj.set_progress(images_seen)


def _bind(D: nn.Module, y: torch.Tensor | None):
    """D with the labels of a conditional batch bound (losses call D(x) only)."""
    return D if y is None else (lambda x: D(x, y))


def _loop(spec, data, targets, G, D, G_ema, opt_g, opt_d, loss, gens, runs, device, g_steps_per_epoch, show, fast=False):
    tr, m, tricks = spec.protocol.train, spec.model, spec.model.tricks
    S, bs, n_critic = len(runs), tr.batch_size, m.n_critic
    classes = num_classes(spec)
    total_steps = tr.epochs * g_steps_per_epoch
    G_eval = G_ema if G_ema is not None else G
    hooked = [x for x in (G, D, G_ema, loss) if hasattr(x, "set_progress")]
    d_trainable = [p for p in D.parameters() if p.requires_grad] if fast else []  # frozen in G's steps (fast path)

    def noisy(x: torch.Tensor, sigma: float, draws: Generators) -> torch.Tensor:
        return x + sigma * draws.randn(x.shape).to(device) if sigma else x

    def d_step(real, y, sigma, draws):
        z = draws.randn(S * bs, m.z_dim).to(device)
        with torch.no_grad():
            fake = G(z, y) if classes else G(z)  # conditional: fakes of the real batch's labels
        d_loss, d_stats = loss.d_loss(_bind(D, y), noisy(real, sigma, draws), noisy(fake, sigma, draws), draws)
        opt_d.zero_grad(set_to_none=True)
        d_loss.sum().backward()  # runs trained together: the sum of independent losses
        d_norm = grad_norm(D)
        opt_d.step()
        loss.after_d_step(D)
        return d_loss, d_norm, d_stats

    def one_step(rows: torch.Tensor, draws: Generators, sigma: float) -> torch.Tensor:
        """One G step after n_critic D steps on the data rows ``rows`` (runs x n_critic * batch) with the
        random draws of ``draws``: the step's stats, runs x len(names). No host sync, so that the fast
        path on a GPU can replay it as a CUDA graph (``ganbench.train.cudagraph``)."""
        nonlocal names
        acc: dict[str, torch.Tensor] = {}
        for c in range(n_critic):
            set_progress(hooked, images_seen + c * bs)
            idx = rows[:, c * bs:(c + 1) * bs].reshape(-1)
            real = data[idx]
            real = to_model_range(real) if real.dtype == torch.uint8 else real  # images vs 2D points
            y = targets[idx] if classes else None
            d_loss, d_norm, d_stats = d_step(real, y, sigma, draws)
            for k, v in {"d_loss": d_loss.detach(), "d_grad_norm": d_norm, **d_stats}.items():
                acc[k] = acc.get(k, 0.0) + v.detach() / n_critic
        backup = None
        if tricks.unrolled_steps:  # Metz et al. 2017: G answers D after k more steps; D is restored after
            backup = copy.deepcopy(D.state_dict()), copy.deepcopy(opt_d.state_dict())
            for _ in range(tricks.unrolled_steps):
                d_step(real, y, sigma, draws)
        z = draws.randn(S * bs, m.z_dim).to(device)
        y_g = draws.randint(classes, (S * bs,)).to(device) if classes else None
        for p in d_trainable:  # G's step needs D's input gradients only; D's weight gradients would be thrown away
            p.requires_grad_(False)
        fake = G(z, y_g) if classes else G(z)
        g_loss, g_stats = loss.g_loss(_bind(D, y_g), noisy(fake, sigma, draws))
        if tricks.feature_matching:
            fm = feature_matching(D, noisy(real, sigma, draws), noisy(fake, sigma, draws), y, y_g)
            g_loss = g_loss + tricks.feature_matching * fm
            g_stats = {**g_stats, "feature_matching": fm}
        opt_g.zero_grad(set_to_none=True)
        g_loss.sum().backward()
        for p in d_trainable:
            p.requires_grad_(True)
        g_norm = grad_norm(G)
        opt_g.step()
        if backup is not None:
            D.load_state_dict(backup[0])
            opt_d.load_state_dict(backup[1])
        if G_ema is not None:
            ema_update(G_ema, G, ema_decay(tricks.ema, tricks.ema_rampup, images_seen, bs))
        if tricks.instance_noise:
            g_stats = {**g_stats, "instance_noise": torch.tensor(sigma, device=device)}
        acc.update({"g_loss": g_loss.detach(), "g_grad_norm": g_norm, **{k: v.detach() for k, v in g_stats.items()},
                    "g_weight_norm": weight_norm(G), "d_weight_norm": weight_norm(D)})
        if names is None:
            names = list(RECORD_FIELDS) + sorted(set(acc) - set(RECORD_FIELDS))
        return torch.stack([acc[k].float().reshape(-1).expand(S) for k in names], 1)  # runs x stats
    names: list[str] | None = None
    pending: list[torch.Tensor] = []
    first = runs[0].state
    epoch, step, images_seen = first["epoch"], first["step"], first["images_seen"]
    wall0, t_start = first["wall_time_s"], time.perf_counter()
    seeds = ", ".join(str(r.spec.seed) for r in runs)
    bar = Progress(tr.epochs * g_steps_per_epoch, f"{m.name} seed{'s' if S > 1 else ''} {seeds}", step,
                   bs * n_critic) if show else None
    say = bar.line if bar else _silent
    phased = G if hasattr(G, "phase_index") else None  # a growing G: report the end of each phase
    phase, phase_start = (phased.phase_index(images_seen), step) if phased is not None else (None, step)
    graph = None  # the fast path on a GPU: the step replayed as a CUDA graph (ganbench.train.cudagraph)
    backend = cudagraph.backend_for(device) if fast else None
    if backend is not None:
        blockers = cudagraph.replay_blockers(spec, step_dependencies(G, D), loss)
        if blockers:
            say(f"CUDA graph off, training eagerly: {'; '.join(blockers)}")
        else:
            graph = cudagraph.StepGraph(lambda rows, draws: one_step(rows, draws, 0.0), gens, device,
                                        [x for x in (G, D, G_ema) if x is not None], [opt_g, opt_d], backend, say,
                                        (S, n_critic * bs))

    def end(i: int, status: str = "finished", message: str = "") -> None:
        """Run i ends here: its result is its networks and records now."""
        r = runs[i]
        if status != "finished":
            write_records(r.state["rows"], r.run_dir / "records.parquet")
        r.result = TrainResult(
            status=status, epochs_done=epoch, steps=step, images_seen=images_seen,
            wall_time_s=wall0 + time.perf_counter() - t_start, records=pd.DataFrame(r.state["rows"]),
            G=unstack(G, i), D=unstack(D, i), first_bad_step=r.first_bad, message=message,
            epoch_summaries=r.summaries, G_ema=unstack(G_ema, i) if G_ema is not None else None,
            replayed_steps=graph.replayed if graph is not None else 0)

    def prefix(i: int) -> str:
        return f"seed {runs[i].spec.seed}: " if S > 1 else ""

    def flush() -> None:
        """Move pending per-step stats to each run's rows; a run with a non-finite loss ends as diverged."""
        nonlocal pending
        if not pending:
            return
        block = torch.stack(pending).cpu().tolist()  # steps x runs x stats
        base = step - len(pending)
        pending = []
        for i, r in enumerate(runs):
            if not r.active:
                continue
            for j, values in enumerate(block):
                row = {"step": base + j + 1, "epoch": epoch + 1, **dict(zip(names, values[i]))}
                r.state["rows"].append(row)
                if r.first_bad is None and not (math.isfinite(row["d_loss"]) and math.isfinite(row["g_loss"])):
                    r.first_bad = row["step"]
            if r.first_bad is not None:
                message = f"non-finite loss at step {r.first_bad}"
                say(f"{prefix(i)}diverged: {message}; keeping the artifacts of epoch {epoch}")
                end(i, "diverged", message)

    while epoch < tr.epochs and any(r.active for r in runs):
        t_epoch = time.perf_counter()
        perm = gens.randperm(len(data)).to(device)  # one permutation per run
        for s in range(g_steps_per_epoch):
            sigma = instance_noise_sigma(spec, step, total_steps)
            rows = perm[:, s * n_critic * bs:(s + 1) * n_critic * bs]
            stats = graph(rows) if graph is not None else None
            pending.append(one_step(rows, gens, sigma) if stats is None else stats)
            step += 1
            images_seen += bs * n_critic
            if phased is not None and phased.phase_index(images_seen) != phase:
                flush()
                for i, r in enumerate(runs):
                    if r.active and r.on_phase:
                        done = pd.DataFrame([row for row in r.state["rows"] if row["step"] > phase_start])
                        r.on_phase(phase, unstack(G_eval, i), {"step": step, "images_seen": images_seen, **phased.progress_info(),
                                                               "d_loss": float(done["d_loss"].mean()),
                                                               "g_loss": float(done["g_loss"].mean())})
                phase, phase_start = phased.phase_index(images_seen), step
            if step % tr.check_every == 0 or s == g_steps_per_epoch - 1:
                flush()
                active = [i for i, r in enumerate(runs) if r.active]
                if bar and active:
                    last = runs[active[0]].state["rows"][-1]
                    bar.update(step, {"epoch": epoch + 1, "d": last["d_loss"], "g": last["g_loss"]})
                for i in active:
                    r = runs[i]
                    stop = r.on_check(step, unstack(G_eval, i), r.state["rows"], say) if r.on_check else None
                    if stop:
                        end(i, "stopped", stop)
                if not any(r.active for r in runs):
                    break
        if not any(r.active for r in runs):
            break
        epoch += 1
        elapsed = time.perf_counter() - t_epoch
        for i, r in enumerate(runs):
            if not r.active:
                continue
            epoch_rows = pd.DataFrame([row for row in r.state["rows"] if row["epoch"] == epoch])
            summary = {"epoch": epoch, "step": step, "images_seen": images_seen, "epoch_time_s": elapsed,
                       "images_per_s": g_steps_per_epoch * bs * n_critic / max(elapsed, 1e-9),  # per run
                       **{k: float(epoch_rows[k].mean()) for k in names}}
            r.summaries.append(summary)
            r.state.update(epoch=epoch, step=step, images_seen=images_seen,
                           wall_time_s=wall0 + time.perf_counter() - t_start)
            _save_checkpoint(checkpoint_path(r.run_dir), r.spec, seed_state(G, i), seed_state(D, i),
                             optimizer_state_of(opt_g, i, S), optimizer_state_of(opt_d, i, S), gens.gens[i], r.state,
                             seed_state(G_ema, i) if G_ema is not None else None)
            write_records(r.state["rows"], r.run_dir / "records.parquet")
            say(f"{prefix(i)}epoch {epoch}/{tr.epochs}  d_loss {summary['d_loss']:.4f}  g_loss {summary['g_loss']:.4f}  "
                f"{summary['images_per_s']:.0f} images/s") if bar else None
            if r.on_epoch:
                r.on_epoch(epoch, unstack(G_eval, i), summary)
    if bar:
        bar.close()
    for i, r in enumerate(runs):
        if r.active:
            end(i)
    return [r.result for r in runs]


def write_records(rows: list[dict], path: Path) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)


def _save_checkpoint(path, spec, G_state, D_state, opt_g_state, opt_d_state, gen, state, G_ema_state=None) -> None:
    atomic_torch_save({
        "run_key": [spec.protocol_hash, spec.model.name, spec.seed],
        "G": G_state, "D": D_state, "opt_g": opt_g_state, "opt_d": opt_d_state,
        **({"G_ema": G_ema_state} if G_ema_state is not None else {}),
        "gen_state": gen.get_state(), "torch_rng": torch.get_rng_state(),
        "epoch": state["epoch"], "step": state["step"], "images_seen": state["images_seen"],
        "wall_time_s": state["wall_time_s"],
        "rows": pd.DataFrame(state["rows"]).to_dict(orient="list"),
    }, path)


def _load_checkpoint(path, spec, G, D, gen, G_ema=None) -> tuple[dict, dict, dict]:
    """Load a run's checkpoint into its networks and generator; returns its loop state and optimiser states."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if list(ck["run_key"]) != [spec.protocol_hash, spec.model.name, spec.seed]:
        raise GanbenchError(f"{path} belongs to another run (protocol hash, model, seed = {ck['run_key']}); "
                            "it cannot be resumed under this protocol")
    G.load_state_dict(ck["G"])
    D.load_state_dict(ck["D"])
    if G_ema is not None:
        G_ema.load_state_dict(ck["G_ema"])
    gen.set_state(ck["gen_state"])
    torch.set_rng_state(ck["torch_rng"])
    rows = pd.DataFrame(ck["rows"]).to_dict(orient="records")
    state = dict(epoch=ck["epoch"], step=ck["step"], images_seen=ck["images_seen"], wall_time_s=ck["wall_time_s"], rows=rows)
    return state, ck["opt_g"], ck["opt_d"]
