"""The one training loop of every ganbench model.

Read it top to bottom (:func:`_loop`): data resident on the device as uint8, a seeded permutation per
epoch, and for each step its data rows, then the step itself (``ganbench.training.steps``: ``n_critic`` D
steps, one G step, a loss plug-in that scores both sides), its stats pending as a device tensor, and
every ``check_every`` steps the records (per-G-step rows) and the callers' checks; after every epoch an
atomic checkpoint (``ganbench.training.checkpoint``) and an exact resume from it.

Every random draw (weight init, permutations, z, the gradient-penalty mix) comes from one
``torch.Generator`` seeded by the run's seed, and its state is checkpointed, so a resumed run
ends with the same weights as an uninterrupted one. Reporting is decoupled from writing: the
caller passes ``on_epoch`` and gets plain data (the generator, a summary dict).

The same loop trains the seeds of one model together (:func:`train_together`, ``ganbench.training.stack``):
G and D are then S stacked copies behind one vmapped forward, each batch is the runs' batches stacked,
and every draw and every loss is per run; training alone is the case S = 1, with plain modules.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import nn

from ganbench.core.errors import GanbenchError
from ganbench.core.registry import LOSSES
from ganbench.core.hooks import Growing, ProgressAware
from ganbench.losses import build_loss
from ganbench.spec.protocol import RunSpec
from ganbench.spec.seeds import Generators
from ganbench.training.stack import SeedStack, optimizer_state_of, seed_state, stack_optimizer_states, unstack
import ganbench.training.cudagraph as cudagraph
from ganbench.training.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint, write_records
from ganbench.training.models import (build_models, check_batchable, check_together, fast_layout, make_optimizer, num_classes,
                                   step_dependencies)
from ganbench.training.progress import Progress
from ganbench.training.steps import StepParts, instance_noise_sigma, record_names, stack_stats, train_step

# on_check(step, G, rows so far, say) -> a stop reason or None (see ``train``)
OnCheck = Callable[[int, nn.Module, list[dict], Callable[[str], None]], "str | None"]
OnEpoch = Callable[[int, nn.Module, dict], None]  # (epoch, G, summary); on_phase: (phase, G, info)


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
    cpu_time_s: float = float("nan")  # this process's CPU time over the training (all its threads), per run

    @property
    def G_eval(self) -> nn.Module:
        return self.G_ema if self.G_ema is not None else self.G


@dataclass(frozen=True)
class TrainOptions:
    """How to train (the what is the RunSpec): see :func:`train`."""

    device: torch.device = torch.device("cpu")
    resume: bool = False
    progress: bool = True
    fast: bool = True


@dataclass(frozen=True)
class Callbacks:
    """What one run reports to its caller: ``on_epoch``, ``on_check`` and ``on_phase`` (see :func:`train`)."""

    on_epoch: OnEpoch | None = None
    on_check: OnCheck | None = None
    on_phase: OnEpoch | None = None


@dataclass
class _Run:
    """One run's bookkeeping in the loop: what its checkpoint holds (``state``), how it ended, its callbacks."""

    spec: RunSpec
    run_dir: Path
    calls: Callbacks
    state: dict  # epoch, step, images_seen, wall_time_s, rows
    first_bad: int | None = None
    summaries: list = field(default_factory=list)
    result: TrainResult | None = None

    @property
    def active(self) -> bool:
        return self.result is None


@dataclass
class LoopState:
    """The loop's counters (shared by the runs trained together) and the stats not yet in the records."""

    epoch: int
    step: int
    images_seen: int
    wall0: float  # the wall time of the sessions before a resume
    cpu0: float = 0.0  # the CPU time of the sessions before a resume (NaN: a checkpoint that did not record it)
    t_start: float = field(default_factory=time.perf_counter)
    c_start: float = field(default_factory=time.process_time)
    pending: list[torch.Tensor] = field(default_factory=list)  # per step: runs x stats, on the device
    names: list[str] | None = None  # the stats' names, set by the first step
    phase: int | None = None  # a growing G's phase, and the step it began at
    phase_start: int = 0

    def wall_time(self) -> float:
        return self.wall0 + time.perf_counter() - self.t_start

    def cpu_time(self, runs: int) -> float:
        """Each run's share of the process's CPU time (runs trained together share one process)."""
        return self.cpu0 + (time.process_time() - self.c_start) / runs


@dataclass(frozen=True)
class _Session:
    """Everything the loop's parts share that does not change while it runs."""

    spec: RunSpec
    parts: StepParts
    gens: Generators
    runs: list[_Run]
    steps_per_epoch: int
    say: Callable[[str], None]
    bar: Progress | None
    graph: cudagraph.StepGraph | None

    @property
    def G_eval(self) -> nn.Module:
        return self.parts.G_ema if self.parts.G_ema is not None else self.parts.G

    @property
    def images_per_step(self) -> int:
        return self.parts.batch_size * self.parts.n_critic

    def active(self) -> list[int]:
        return [i for i, r in enumerate(self.runs) if r.active]

    def prefix(self, i: int) -> str:
        return f"seed {self.runs[i].spec.seed}: " if len(self.runs) > 1 else ""


def train(spec: RunSpec, images: torch.Tensor, run_dir: Path, device: torch.device | str = "cpu",
          resume: bool = False, on_epoch: OnEpoch | None = None, progress: bool = True,
          on_check: OnCheck | None = None, labels: torch.Tensor | None = None, fast: bool = True,
          on_phase: OnEpoch | None = None, sources: torch.Tensor | None = None) -> TrainResult:
    """Train ``spec.model`` on uint8 ``images`` (N x C x H x W) under ``spec.protocol``'s budget;
    a conditional model also needs the images' ``labels``, an image-to-image model (pix2pix, CycleGAN) the
    ``sources`` it translates into ``images`` (paired row by row, or two unpaired domains).

    ``fast`` (the default) runs the same algorithm with less work: channels_last layouts, no gradients for
    D's weights during G's step (they are discarded anyway) and, on a GPU, the whole step replayed as a CUDA
    graph where the step allows it (``ganbench.training.cudagraph``). Same seed, same losses as the plain path
    (``fast=False``) up to float rounding, which GAN dynamics amplify over hundreds of steps as any change
    of kernels does (tests/test_train.py states the tolerance; benchmarks/bench_train.py the speed).

    ``on_check(step, G, rows, say)`` is called every ``check_every`` steps with the per-step rows so far
    and a function that prints a line in the progress output; a non-empty string it returns stops the
    run with status "stopped" and that message (the artifacts written so far are kept). ``on_epoch``
    and ``on_check`` get the generator that evaluation uses (the EMA one when that trick is on).

    A growing model (``phase_index``, ProGAN-lite) also reports the end of each phase of its schedule:
    ``on_phase(k, G, info)`` with info = step, images_seen, the resolution and fade-in alpha G was at,
    and the phase's mean losses."""
    return train_runs([spec], images, labels, [Path(run_dir)], [Callbacks(on_epoch, on_check, on_phase)],
                      TrainOptions(torch.device(device), resume, progress, fast), sources)[0]


def train_together(specs: list[RunSpec], images: torch.Tensor, run_dirs: list[Path], device: torch.device | str = "cpu",
                   resume: bool = False, on_epoch: list | None = None, progress: bool = True,
                   on_check: list | None = None, labels: torch.Tensor | None = None,
                   fast: bool = True, on_phase: list | None = None,
                   sources: torch.Tensor | None = None) -> list[TrainResult]:
    """Train the seeds of one model under one protocol together, batched in one process (``ganbench.training.stack``):
    per run the algorithm and the random draws of :func:`train` alone, up to float rounding. One run
    directory, ``on_epoch``, ``on_check`` and ``on_phase`` (or None) per spec; one TrainResult per spec. A run that
    diverges or is stopped ends there (its artifacts are kept) while the others go on. Each run's
    checkpoint is the one it would write alone: it can be resumed alone, and vice versa."""
    none = [None] * len(specs)
    calls = [Callbacks(*c) for c in zip(on_epoch or none, on_check or none, on_phase or none)]
    return train_runs(specs, images, labels, [Path(d) for d in run_dirs], calls,
                      TrainOptions(torch.device(device), resume, progress, fast), sources)


def train_runs(specs: list[RunSpec], images: torch.Tensor, labels: torch.Tensor | None, run_dirs: list[Path],
               calls: list[Callbacks], opts: TrainOptions, sources: torch.Tensor | None = None) -> list[TrainResult]:
    """:func:`train_together` with its options as data: set up, then :func:`_loop`."""
    check_together(specs)
    spec = specs[0]
    steps_per_epoch = _steps_per_epoch(spec, images, labels, sources)
    gens = Generators([torch.Generator().manual_seed(s.seed) for s in specs])
    data = images.to(opts.device)
    targets = labels.to(opts.device) if spec.model.conditional is not None else None
    with torch.random.fork_rng(devices=[opts.device] if opts.device.type == "cuda" else []):
        torch.manual_seed(spec.seed)  # only dropout draws from the global generator (training alone only)
        parts, runs = _prepare(specs, run_dirs, calls, gens, data, targets, opts,
                               None if sources is None else sources.to(opts.device))
        st = _loop_state(runs[0].state, parts.G)
        return _loop(_open_session(spec, parts, gens, runs, steps_per_epoch, opts, st), st)


def _steps_per_epoch(spec: RunSpec, images: torch.Tensor, labels: torch.Tensor | None,
                     sources: torch.Tensor | None) -> int:
    """G steps per epoch (each after n_critic D steps), refusing what cannot be trained."""
    tr, m = spec.protocol.train, spec.model
    if m.conditional is not None and (labels is None or len(labels) != len(images)):
        raise GanbenchError(f"model {m.name!r} is conditional: it needs one label per training image")
    translation = LOSSES.get_or_raise(m.loss.name).build.translation
    if bool(translation) != (sources is not None) or (sources is not None and len(sources) != len(images)):
        raise GanbenchError(f"model {m.name!r} ({m.loss.name} loss) "
                            + ("translates source images: the protocol's dataset must give one source per image"
                               if translation else "generates from z: it takes no source images"))
    n, bs = len(images), tr.batch_size
    if n < bs:
        raise GanbenchError(f"the training set has {n} images, fewer than one batch of {bs}")
    batches = n // bs if tr.drop_last else math.ceil(n / bs)
    if batches // m.n_critic == 0:
        raise GanbenchError(f"{batches} batches per epoch is fewer than n_critic = {m.n_critic}")
    return batches // m.n_critic


def _build_nets(specs: list[RunSpec], gens: Generators, opts: TrainOptions):
    """Per run G, D (and an EMA copy of G), each initialised from its run's generator; the loss."""
    m = specs[0].model
    nets = [build_models(s, opts.device, g) for s, g in zip(specs, gens.gens)]
    Gs, Ds = [g for g, _ in nets], [d for _, d in nets]
    loss = build_loss(m.loss.name, m.loss.options, m.tricks)
    loss.runs = len(specs)
    if len(specs) > 1 and loss.translation:
        raise GanbenchError(f"{m.name} cannot train its seeds together: its image-to-image loss keeps per-run "
                            "state (history pools); train the seeds one at a time")
    if len(specs) > 1:
        check_batchable(specs[0], Gs[0], Ds[0])
    elif opts.fast:
        fast_layout(Gs[0], Ds[0], loss)
    G_emas = [copy.deepcopy(G).requires_grad_(False) for G in Gs] if m.tricks.ema else None
    return Gs, Ds, G_emas, loss


def _resume(specs: list[RunSpec], run_dirs: list[Path], opts: TrainOptions, Gs, Ds, G_emas, gens: Generators,
            loss):
    """Each run's loop state (fresh, or on resume its checkpoint's, loaded into its nets) and optimiser states."""
    states = [dict(epoch=0, step=0, images_seen=0, wall_time_s=0.0, cpu_time_s=0.0, rows=[]) for _ in specs]
    opt_states = []
    for i, (s, run_dir) in enumerate(zip(specs, run_dirs)):
        ckpt = checkpoint_path(run_dir)
        if opts.resume and ckpt.is_file():
            states[i], opt_g_state, opt_d_state = load_checkpoint(ckpt, s, Gs[i], Ds[i], gens.gens[i],
                                                                  G_emas[i] if G_emas else None, loss)
            opt_states.append((opt_g_state, opt_d_state))
        elif opts.resume:
            raise GanbenchError(f"--resume: no checkpoint at {ckpt}; run without --resume to start fresh")
    if len({(st["epoch"], st["step"]) for st in states}) > 1:
        raise GanbenchError("--resume: the seeds' checkpoints are at different epochs ("
                            + ", ".join(f"seed {s.seed}: {st['epoch']}" for s, st in zip(specs, states))
                            + "); resume them one at a time (without --concurrent-seeds)")
    return states, opt_states


def _stack(nets: list[nn.Module] | None) -> nn.Module | None:
    """The runs' networks as one: the network itself when training alone, else a SeedStack."""
    if nets is None:
        return None
    return nets[0] if len(nets) == 1 else SeedStack(nets)


def _prepare(specs, run_dirs, calls, gens, data, targets, opts: TrainOptions,
             sources: torch.Tensor | None = None) -> tuple[StepParts, list[_Run]]:
    """The step's parts (networks, optimisers, loss, data) and each run's bookkeeping."""
    m, S = specs[0].model, len(specs)
    Gs, Ds, G_emas, loss = _build_nets(specs, gens, opts)
    states, opt_states = _resume(specs, run_dirs, opts, Gs, Ds, G_emas, gens, loss)
    G, D, G_ema = _stack(Gs), _stack(Ds), _stack(G_emas)
    if G_ema is not None and S > 1:
        G_ema.requires_grad_(False)
    opt_g, opt_d = make_optimizer(G.parameters(), m.optim_g), make_optimizer(D.parameters(), m.optim_d)
    if opt_states:
        opt_g.load_state_dict(stack_optimizer_states([g for g, _ in opt_states]))
        opt_d.load_state_dict(stack_optimizer_states([d for _, d in opt_states]))
    parts = StepParts(G, D, G_ema, opt_g, opt_d, loss, data, targets, m.tricks, S, specs[0].protocol.train.batch_size,
                      m.z_dim, m.n_critic, num_classes(specs[0]),
                      hooked=tuple(x for x in (G, D, G_ema, loss) if isinstance(x, ProgressAware)),
                      d_trainable=tuple(p for p in D.parameters() if p.requires_grad) if opts.fast else (),
                      sources=sources, precision=specs[0].protocol.train.precision)
    runs = [_Run(s, d, c, st) for s, d, c, st in zip(specs, run_dirs, calls, states)]
    return parts, runs


def _loop_state(first: dict, G: nn.Module) -> LoopState:
    """The counters where the runs start (0, or their checkpoint's); a growing G's current phase."""
    st = LoopState(first["epoch"], first["step"], first["images_seen"], first["wall_time_s"], first["cpu_time_s"])
    if isinstance(G, Growing):
        st.phase, st.phase_start = G.phase_index(st.images_seen), st.step
    else:
        st.phase_start = st.step
    return st


def _open_session(spec, parts: StepParts, gens, runs, steps_per_epoch: int, opts: TrainOptions,
                  st: LoopState) -> _Session:
    """The progress output and, on the fast path on a GPU, the step's CUDA graph."""
    tr, S = spec.protocol.train, len(runs)
    seeds = ", ".join(str(r.spec.seed) for r in runs)
    bar = Progress(tr.epochs * steps_per_epoch, f"{spec.model.name} seed{'s' if S > 1 else ''} {seeds}", st.step,
                   parts.batch_size * parts.n_critic) if opts.progress else None
    say = bar.line if bar else _silent
    graph = _step_graph(spec, parts, gens, st, say) if opts.fast else None
    return _Session(spec, parts, gens, runs, steps_per_epoch, say, bar, graph)


def _step_graph(spec, parts: StepParts, gens, st: LoopState, say) -> cudagraph.StepGraph | None:
    """The fast path on a GPU: the step replayed as a CUDA graph (``ganbench.training.cudagraph``) when it can be."""
    backend = cudagraph.backend_for(parts.device)
    if backend is None:
        return None
    blockers = cudagraph.replay_blockers(spec, step_dependencies(parts.G, parts.D), parts.loss)
    if blockers:
        say(f"CUDA graph off, training eagerly: {'; '.join(blockers)}")
        return None
    nets = [x for x in (parts.G, parts.D, parts.G_ema) if x is not None]
    return cudagraph.StepGraph(partial(_step_stats, parts, st), gens, parts.device, nets, [parts.opt_g, parts.opt_d],
                               backend, say, (parts.runs, parts.n_critic * parts.batch_size))


def _step_stats(parts: StepParts, st: LoopState, rows: torch.Tensor, draws: Generators, sigma: float = 0.0) -> torch.Tensor:
    """One step (``ganbench.training.steps.train_step``) and its stats, runs x names, left on the device: no
    host sync, so that the CUDA graph can capture exactly this."""
    stats = train_step(parts, rows, draws, sigma, st.images_seen)
    if st.names is None:
        st.names = record_names(stats)
    return stack_stats(stats, st.names, parts.runs)


# --------------------------------------------------------------------------- the loop


def _loop(ses: _Session, st: LoopState) -> list[TrainResult]:
    """Per epoch one permutation per run; per step its rows, the step, a phase's end, and every
    ``check_every`` steps (and at the epoch's end) the records and checks; per epoch a checkpoint."""
    epochs = ses.spec.protocol.train.epochs
    while st.epoch < epochs and ses.active():
        t_epoch = time.perf_counter()
        perm = ses.gens.randperm(len(ses.parts.data)).to(ses.parts.device)  # one permutation per run
        for s in range(ses.steps_per_epoch):
            _take_step(ses, st, _batch_rows(ses, perm, s))
            _end_phase(ses, st)
            last = s == ses.steps_per_epoch - 1
            if (st.step % ses.spec.protocol.train.check_every == 0 or last) and not _check(ses, st):
                break
        if not ses.active():
            break
        st.epoch += 1
        _end_epoch(ses, st, time.perf_counter() - t_epoch)
    if ses.bar:
        ses.bar.close()
    for i in ses.active():
        _end_run(ses, st, i)
    return [r.result for r in ses.runs]


def _batch_rows(ses: _Session, perm: torch.Tensor, s: int) -> torch.Tensor:
    """The data rows of step ``s`` of the epoch: runs x n_critic * batch."""
    n = ses.images_per_step
    return perm[:, s * n:(s + 1) * n]


def _take_step(ses: _Session, st: LoopState, rows: torch.Tensor) -> None:
    """The step (replayed as a graph where it is one), its stats pending."""
    total_steps = ses.spec.protocol.train.epochs * ses.steps_per_epoch
    sigma = instance_noise_sigma(ses.spec, st.step, total_steps)
    stats = ses.graph(rows) if ses.graph is not None else None
    st.pending.append(_step_stats(ses.parts, st, rows, ses.gens, sigma) if stats is None else stats)
    st.step += 1
    st.images_seen += ses.images_per_step


def _end_phase(ses: _Session, st: LoopState) -> None:
    """A growing G that has just entered a new phase: each run reports the phase that ended (``on_phase``)."""
    G = ses.parts.G
    if not isinstance(G, Growing) or G.phase_index(st.images_seen) == st.phase:
        return
    _flush(ses, st)
    for i in ses.active():
        r = ses.runs[i]
        if r.calls.on_phase:
            done = pd.DataFrame([row for row in r.state["rows"] if row["step"] > st.phase_start])
            r.calls.on_phase(st.phase, unstack(ses.G_eval, i), {
                "step": st.step, "images_seen": st.images_seen, **G.progress_info(),
                "d_loss": float(done["d_loss"].mean()), "g_loss": float(done["g_loss"].mean())})
    st.phase, st.phase_start = G.phase_index(st.images_seen), st.step


def _check(ses: _Session, st: LoopState) -> bool:
    """The records brought up to date, the progress shown, each run's ``on_check`` asked; whether a run goes on."""
    _flush(ses, st)
    active = ses.active()
    if ses.bar and active:
        last = ses.runs[active[0]].state["rows"][-1]
        ses.bar.update(st.step, {"epoch": st.epoch + 1, "d": last["d_loss"], "g": last["g_loss"]})
    for i in active:
        r = ses.runs[i]
        stop = r.calls.on_check(st.step, unstack(ses.G_eval, i), r.state["rows"], ses.say) if r.calls.on_check else None
        if stop:
            _end_run(ses, st, i, "stopped", stop)
    return bool(ses.active())


def _flush(ses: _Session, st: LoopState) -> None:
    """Move pending per-step stats to each run's rows (one host sync); a run with a non-finite loss ends as diverged."""
    if not st.pending:
        return
    block = torch.stack(st.pending).cpu().tolist()  # steps x runs x stats
    base = st.step - len(st.pending)
    st.pending = []
    for i in ses.active():
        r = ses.runs[i]
        for j, values in enumerate(block):
            row = {"step": base + j + 1, "epoch": st.epoch + 1, **dict(zip(st.names, values[i]))}
            r.state["rows"].append(row)
            if r.first_bad is None and not (math.isfinite(row["d_loss"]) and math.isfinite(row["g_loss"])):
                r.first_bad = row["step"]
        if r.first_bad is not None:
            message = f"non-finite loss at step {r.first_bad}"
            ses.say(f"{ses.prefix(i)}diverged: {message}; keeping the artifacts of epoch {st.epoch}")
            _end_run(ses, st, i, "diverged", message)


def _end_epoch(ses: _Session, st: LoopState, elapsed: float) -> None:
    """Each active run's epoch summary, checkpoint and records, then its ``on_epoch``."""
    for i in ses.active():
        r = ses.runs[i]
        epoch_rows = pd.DataFrame([row for row in r.state["rows"] if row["epoch"] == st.epoch])
        summary = {"epoch": st.epoch, "step": st.step, "images_seen": st.images_seen, "epoch_time_s": elapsed,
                   "images_per_s": ses.steps_per_epoch * ses.images_per_step / max(elapsed, 1e-9),  # per run
                   **{k: float(epoch_rows[k].mean()) for k in st.names}}
        r.summaries.append(summary)
        r.state.update(epoch=st.epoch, step=st.step, images_seen=st.images_seen, wall_time_s=st.wall_time(),
                       cpu_time_s=st.cpu_time(len(ses.runs)))
        _save(ses, i)
        write_records(r.state["rows"], r.run_dir / "records.parquet")
        if ses.bar:
            ses.say(f"{ses.prefix(i)}epoch {st.epoch}/{ses.spec.protocol.train.epochs}  d_loss {summary['d_loss']:.4f}  "
                    f"g_loss {summary['g_loss']:.4f}  {summary['images_per_s']:.0f} images/s")
        if r.calls.on_epoch:
            r.calls.on_epoch(st.epoch, unstack(ses.G_eval, i), summary)


def _save(ses: _Session, i: int) -> None:
    """Run i's checkpoint: the one it would write training alone."""
    p, r, S = ses.parts, ses.runs[i], len(ses.runs)
    nets = {"G": seed_state(p.G, i), "D": seed_state(p.D, i)}
    if p.G_ema is not None:
        nets["G_ema"] = seed_state(p.G_ema, i)
    if p.loss.state_dict():  # a history pool (image-to-image losses train alone: S = 1)
        nets["loss_state"] = p.loss.state_dict()
    optimizers = {"opt_g": optimizer_state_of(p.opt_g, i, S), "opt_d": optimizer_state_of(p.opt_d, i, S)}
    save_checkpoint(checkpoint_path(r.run_dir), r.spec, nets, optimizers, ses.gens.gens[i], r.state)


def _end_run(ses: _Session, st: LoopState, i: int, status: str = "finished", message: str = "") -> None:
    """Run i ends here: its result is its networks and records now."""
    r, p = ses.runs[i], ses.parts
    if status != "finished":
        write_records(r.state["rows"], r.run_dir / "records.parquet")
    r.result = TrainResult(
        status=status, epochs_done=st.epoch, steps=st.step, images_seen=st.images_seen, wall_time_s=st.wall_time(),
        cpu_time_s=st.cpu_time(len(ses.runs)), records=pd.DataFrame(r.state["rows"]), G=unstack(p.G, i), D=unstack(p.D, i), first_bad_step=r.first_bad,
        message=message, epoch_summaries=r.summaries, G_ema=unstack(p.G_ema, i) if p.G_ema is not None else None,
        replayed_steps=ses.graph.replayed if ses.graph is not None else 0)
