"""The one training loop of every ganbench model.

Read it top to bottom: data resident on the device as uint8, a seeded permutation per epoch,
``n_critic`` D (critic) updates then one G update (Goodfellow et al. 2014, Algorithm 1; Arjovsky
et al. 2017 and Gulrajani et al. 2017 for n_critic > 1), a loss plug-in that scores both sides,
per-G-step records, an atomic checkpoint after every epoch and an exact resume from it.

Every random draw (weight init, permutations, z, the gradient-penalty mix) comes from one
``torch.Generator`` seeded by the run's seed, and its state is checkpointed, so a resumed run
ends with the same weights as an uninterrupted one. Reporting is decoupled from writing: the
caller passes ``on_epoch`` and gets plain data (the generator, a summary dict).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import nn

from ganbench.assets import atomic_path, atomic_torch_save
from ganbench.errors import GanbenchError
from ganbench.losses import build_loss
from ganbench.nets import NETS
from ganbench.nets.dcgan28 import init_dcgan_weights
from ganbench.protocol import OptimSpec, RunSpec

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


def build_models(spec: RunSpec, device: torch.device, gen: torch.Generator) -> tuple[nn.Module, nn.Module]:
    m, d = spec.model, spec.protocol.data
    ctx = dict(z_dim=m.z_dim, channels=d.channels, image_size=d.image_size)
    G = NETS.get_or_raise(m.generator.arch)
    D = NETS.get_or_raise(m.discriminator.arch)
    netG = G.build(G.options(m.generator.options), **ctx)
    netD = D.build(D.options(m.discriminator.options), **ctx)
    init_dcgan_weights(netG, gen)
    init_dcgan_weights(netD, gen)
    return netG.to(device), netD.to(device)


def make_optimizer(params, spec: OptimSpec) -> torch.optim.Optimizer:
    if spec.name == "adam":
        return torch.optim.Adam(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)
    return torch.optim.RMSprop(params, lr=spec.lr, weight_decay=spec.weight_decay)


def grad_norm(module: nn.Module) -> torch.Tensor:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def weight_norm(module: nn.Module) -> torch.Tensor:
    """L2 norm of all parameters: exploding weights are the divergence signal when the losses stay finite."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm([p.detach() for p in module.parameters()])))


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255] (rounded, clamped)."""
    return ((x.detach().float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def fixed_z(n: int, z_dim: int, z_seed: int) -> torch.Tensor:
    """The protocol's fixed z: the same for every run, so grids and metrics are comparable."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(z_seed))


@torch.no_grad()
def generate(G: nn.Module, z: torch.Tensor, batch_size: int = 500, as_uint8: bool = True) -> torch.Tensor:
    """Samples of G in eval mode (batch-norm statistics frozen) for the given z (on CPU): uint8 images,
    or with ``as_uint8=False`` the raw float outputs (2D points)."""
    device = next(G.parameters()).device
    was_training = G.training
    convert = to_uint8 if as_uint8 else (lambda x: x.float())
    G.eval()
    try:
        return torch.cat([convert(G(z[i:i + batch_size].to(device))).cpu() for i in range(0, len(z), batch_size)])
    finally:
        G.train(was_training)


class Progress:
    """A tqdm bar on a terminal, plain log lines otherwise."""

    def __init__(self, total_steps: int, desc: str, start: int = 0):
        self.tty = sys.stderr.isatty()
        self.desc = desc
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=start, desc=desc, unit="step", dynamic_ncols=True)

    def update(self, steps: int, info: dict) -> None:
        if self.bar is not None:
            self.bar.update(steps)
            self.bar.set_postfix({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in info.items()}, refresh=False)

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(f"[{self.desc}] {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def checkpoint_path(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "last.pt"


def train(spec: RunSpec, images: torch.Tensor, run_dir: Path, device: torch.device | str = "cpu",
          resume: bool = False, on_epoch: Callable[[int, nn.Module, dict], None] | None = None,
          progress: bool = True, on_check: OnCheck | None = None) -> TrainResult:
    """Train ``spec.model`` on uint8 ``images`` (N x C x H x W) under ``spec.protocol``'s budget.

    ``on_check(step, G, rows, say)`` is called every ``check_every`` steps with the per-step rows so far
    and a function that prints a line in the progress output; a non-empty string it returns stops the
    run with status "stopped" and that message (the artifacts written so far are kept)."""
    device = torch.device(device)
    tr, m = spec.protocol.train, spec.model
    run_dir = Path(run_dir)
    gen = torch.Generator().manual_seed(spec.seed)
    data = images.to(device)
    n, bs = len(data), tr.batch_size
    if n < bs:
        raise GanbenchError(f"the training set has {n} images, fewer than one batch of {bs}")
    batches = n // bs if tr.drop_last else math.ceil(n / bs)
    g_steps_per_epoch = batches // m.n_critic
    if g_steps_per_epoch == 0:
        raise GanbenchError(f"{batches} batches per epoch is fewer than n_critic = {m.n_critic}")

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(spec.seed)  # only dropout draws from the global generator
        G, D = build_models(spec, device, gen)
        opt_g = make_optimizer(G.parameters(), m.optim_g)
        opt_d = make_optimizer(D.parameters(), m.optim_d)
        loss = build_loss(m.loss.name, m.loss.options)
        state = dict(epoch=0, step=0, images_seen=0, wall_time_s=0.0, rows=[])
        ckpt = checkpoint_path(run_dir)
        if resume and ckpt.is_file():
            state = _load_checkpoint(ckpt, spec, G, D, opt_g, opt_d, gen)
        elif resume:
            raise GanbenchError(f"--resume: no checkpoint at {ckpt}; run without --resume to start fresh")
        return _loop(spec, data, G, D, opt_g, opt_d, loss, gen, state, run_dir, device, g_steps_per_epoch,
                     on_epoch, progress, on_check)


def _loop(spec, data, G, D, opt_g, opt_d, loss, gen, state, run_dir, device, g_steps_per_epoch, on_epoch, show,
          on_check=None):
    tr, m = spec.protocol.train, spec.model
    bs, n_critic = tr.batch_size, m.n_critic
    rows: list[dict] = state["rows"]
    names: list[str] | None = None
    pending: list[torch.Tensor] = []
    bar = Progress(tr.epochs * g_steps_per_epoch, f"{m.name} seed {spec.seed}", state["step"]) if show else None
    status, first_bad, message = "finished", None, ""
    epoch, step, images_seen = state["epoch"], state["step"], state["images_seen"]
    wall0, t_start = state["wall_time_s"], time.perf_counter()
    summaries = []
    bar_step = step

    def flush() -> bool:
        """Move pending per-step stats to host rows; return False at the first non-finite loss."""
        nonlocal pending, first_bad
        if not pending:
            return True
        block = torch.stack(pending).cpu().tolist()
        base = step - len(pending)
        pending = []
        for i, values in enumerate(block):
            row = {"step": base + i + 1, "epoch": epoch + 1, **dict(zip(names, values))}
            rows.append(row)
            if first_bad is None and not (math.isfinite(row["d_loss"]) and math.isfinite(row["g_loss"])):
                first_bad = row["step"]
        return first_bad is None

    while epoch < tr.epochs and status == "finished":
        t_epoch = time.perf_counter()
        perm = torch.randperm(len(data), generator=gen).to(device)
        for s in range(g_steps_per_epoch):
            acc: dict[str, torch.Tensor] = {}
            for c in range(n_critic):
                idx = perm[(s * n_critic + c) * bs:(s * n_critic + c + 1) * bs]
                real = data[idx]
                real = to_model_range(real) if real.dtype == torch.uint8 else real  # images vs 2D points
                z = torch.randn(bs, m.z_dim, generator=gen).to(device)
                with torch.no_grad():
                    fake = G(z)
                d_loss, d_stats = loss.d_loss(D, real, fake, gen)
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                d_norm = grad_norm(D)
                opt_d.step()
                for k, v in {"d_loss": d_loss.detach(), "d_grad_norm": d_norm, **d_stats}.items():
                    acc[k] = acc.get(k, 0.0) + v.detach() / n_critic
            z = torch.randn(bs, m.z_dim, generator=gen).to(device)
            g_loss, g_stats = loss.g_loss(D, G(z))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            g_norm = grad_norm(G)
            opt_g.step()
            acc.update({"g_loss": g_loss.detach(), "g_grad_norm": g_norm, **{k: v.detach() for k, v in g_stats.items()},
                        "g_weight_norm": weight_norm(G), "d_weight_norm": weight_norm(D)})
            if names is None:
                names = list(RECORD_FIELDS) + sorted(set(acc) - set(RECORD_FIELDS))
            pending.append(torch.stack([acc[k].float() for k in names]))
            step += 1
            images_seen += bs * n_critic
            if step % tr.check_every == 0 or s == g_steps_per_epoch - 1:
                if not flush():
                    status, message = "diverged", f"non-finite loss at step {first_bad}"
                    if bar:
                        bar.line(f"diverged: {message}; keeping the artifacts of epoch {epoch}")
                    break
                if bar:
                    bar.update(step - bar_step, {"epoch": epoch + 1, "d": rows[-1]["d_loss"], "g": rows[-1]["g_loss"]})
                    bar_step = step
                stop = on_check(step, G, rows, bar.line if bar else _silent) if on_check else None
                if stop:
                    status, message = "stopped", stop
                    break
        if status != "finished":
            break
        epoch += 1
        elapsed = time.perf_counter() - t_epoch
        epoch_rows = pd.DataFrame([r for r in rows if r["epoch"] == epoch])
        summary = {"epoch": epoch, "step": step, "images_seen": images_seen, "epoch_time_s": elapsed,
                   "images_per_s": g_steps_per_epoch * bs * n_critic / max(elapsed, 1e-9),
                   **{k: float(epoch_rows[k].mean()) for k in names}}
        summaries.append(summary)
        state.update(epoch=epoch, step=step, images_seen=images_seen,
                     wall_time_s=wall0 + time.perf_counter() - t_start, rows=rows)
        _save_checkpoint(checkpoint_path(run_dir), spec, G, D, opt_g, opt_d, gen, state)
        write_records(rows, run_dir / "records.parquet")
        if bar:
            bar.line(f"epoch {epoch}/{tr.epochs}  d_loss {summary['d_loss']:.4f}  g_loss {summary['g_loss']:.4f}  "
                     f"{summary['images_per_s']:.0f} images/s")
        if on_epoch:
            on_epoch(epoch, G, summary)
    if bar:
        bar.close()
    if status != "finished":
        write_records(rows, run_dir / "records.parquet")
    return TrainResult(status=status, epochs_done=epoch, steps=step, images_seen=images_seen,
                       wall_time_s=wall0 + time.perf_counter() - t_start, records=pd.DataFrame(rows), G=G, D=D,
                       first_bad_step=first_bad, message=message, epoch_summaries=summaries)


def write_records(rows: list[dict], path: Path) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)


def _save_checkpoint(path, spec, G, D, opt_g, opt_d, gen, state) -> None:
    atomic_torch_save({
        "run_key": [spec.protocol_hash, spec.model.name, spec.seed],
        "G": G.state_dict(), "D": D.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
        "gen_state": gen.get_state(), "torch_rng": torch.get_rng_state(),
        "epoch": state["epoch"], "step": state["step"], "images_seen": state["images_seen"],
        "wall_time_s": state["wall_time_s"],
        "rows": pd.DataFrame(state["rows"]).to_dict(orient="list"),
    }, path)


def _load_checkpoint(path, spec, G, D, opt_g, opt_d, gen) -> dict:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if list(ck["run_key"]) != [spec.protocol_hash, spec.model.name, spec.seed]:
        raise GanbenchError(f"{path} belongs to another run (protocol hash, model, seed = {ck['run_key']}); "
                            "it cannot be resumed under this protocol")
    G.load_state_dict(ck["G"])
    D.load_state_dict(ck["D"])
    opt_g.load_state_dict(ck["opt_g"])
    opt_d.load_state_dict(ck["opt_d"])
    gen.set_state(ck["gen_state"])
    torch.set_rng_state(ck["torch_rng"])
    rows = pd.DataFrame(ck["rows"]).to_dict(orient="records")
    return dict(epoch=ck["epoch"], step=ck["step"], images_seen=ck["images_seen"], wall_time_s=ck["wall_time_s"], rows=rows)
