"""The fast path's training step on a GPU: captured once as a CUDA graph, then replayed every step.

A small GAN's step is a few hundred small kernels (n_critic D steps, G's step, both optimisers, the
records); launched one by one from Python the GPU spends most of the step waiting for the host. A
graph launches them all at once. What changes from step to step enters through static tensors refilled
before each replay: the step's data rows (a slice of the epoch's permutation, copied on the device) and
every random draw of the step, made on the host from the runs' own generators in the order the step
makes them and copied to the device. A replayed step therefore draws exactly the numbers the eager step
draws, and runs the same kernels.

Only a step that depends on nothing but those inputs can be replayed; the loop stays eager (and says
why) when the model draws from torch's global generator, follows a training-progress schedule, or uses
a trick whose per-step value lives on the host (annealed instance noise, unrolled D steps, the EMA's
ramp-up). Capture follows PyTorch's recipe for whole-network capture: a few eager steps on a side stream
first (optimisers made ``capturable``), then ``torch.cuda.graph``. The first replay is checked: the same
step is run eagerly from the same state (weights, optimiser state and generators restored in between) and
the replay's stats must agree to rounding (``RTOL``); if they do not, or the capture fails, training
goes on eagerly from that state and says so.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ganbench.core.hooks import ProgressAware
from ganbench.spec.seeds import Generators

WARMUP_STEPS = 3  # eager steps before the capture (cuDNN/cuBLAS set-up, the optimisers' lazy state)
RTOL, ATOL = 1e-4, 1e-6  # the replayed first step vs the same step eagerly: the same kernels, so rounding at most


class StaticDraws(Generators):
    """The random draws of one step as static device tensors. Recording (the eager check step): each draw
    is made from the runs' generators as usual and kept in a buffer of its own. Replaying (the capture):
    each draw returns the next buffer, and :meth:`fill` redraws all of them, in the recorded order, from
    the generators before each replay."""

    def __init__(self, gens: Generators, device: torch.device):
        super().__init__(gens.gens)
        self.device = device
        self.calls: list[tuple] = []  # (fn, shape, kw) in the order the step draws
        self.buffers: list[torch.Tensor] = []
        self.recording, self.next = True, 0

    def _draw(self, fn, shape, **kw) -> torch.Tensor:
        shape = tuple(shape)
        if self.recording:
            self.calls.append((fn, shape, kw))
            self.buffers.append(super()._draw(fn, shape, **kw).to(self.device))
            return self.buffers[-1]
        if self.next >= len(self.calls) or self.calls[self.next] != (fn, shape, kw):
            raise RuntimeError(f"the step's draw {self.next + 1} ({tuple(shape)}) is not the one recorded: "
                               "its draws depend on more than its inputs")
        self.next += 1
        return self.buffers[self.next - 1]

    def replaying(self) -> None:
        self.recording, self.next = False, 0

    def fill(self) -> None:
        """The next step's draws, from the generators, into the buffers (host to device)."""
        for (fn, shape, kw), buf in zip(self.calls, self.buffers):
            buf.copy_(super()._draw(fn, shape, **kw))
        self.next = 0


class _State:
    """Everything one step changes, copied so that the step can be undone: weights, buffers, optimiser
    state, which parameters require gradients, and the generators."""

    def __init__(self, modules: list[nn.Module], optimizers: list[torch.optim.Optimizer], gens: Generators):
        self.tensors = [t for m in modules for t in (*m.parameters(), *m.buffers())]
        self.tensors += [v for opt in optimizers for st in opt.state.values() for v in st.values() if torch.is_tensor(v)]
        self.saved = [t.detach().clone() for t in self.tensors]
        self.flags = [(p, p.requires_grad) for m in modules for p in m.parameters()]
        self.gens, self.gen_states = gens.gens, [g.get_state() for g in gens.gens]

    @torch.no_grad()
    def restore(self) -> None:
        for t, v in zip(self.tensors, self.saved):
            t.copy_(v)  # in place: a captured graph keeps reading and writing these very tensors
        for p, flag in self.flags:
            p.requires_grad_(flag)
        for g, st in zip(self.gens, self.gen_states):
            g.set_state(st)


class CudaGraph:
    """torch.cuda's graph, warmed up on a side stream as its documentation requires."""

    def prepare(self, optimizers: list[torch.optim.Optimizer], device: torch.device) -> None:
        """Adam and RMSprop keep their step count on the device, where a replayed graph can advance it."""
        for opt in optimizers:
            for group in opt.param_groups:
                group["capturable"] = True
            for st in opt.state.values():
                if torch.is_tensor(st.get("step")):
                    st["step"] = st["step"].to(device=device, dtype=torch.float32)

    def warm(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = fn()
        torch.cuda.current_stream().wait_stream(side)
        return out

    def capture(self, fn: Callable[[], torch.Tensor]) -> None:
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = fn()

    def replay(self) -> torch.Tensor:
        self.graph.replay()
        return self.out


def backend_for(device: torch.device) -> CudaGraph | None:
    """The graph backend of ``device``: CUDA graphs on a GPU, none elsewhere (the step runs eagerly)."""
    return CudaGraph() if device.type == "cuda" else None


class StepGraph:
    """``step(rows, draws)`` (the trainer's step: data rows in, stats out) replayed as a graph after
    ``WARMUP_STEPS`` eager steps. ``__call__(rows)`` gives the step's stats, or None where the loop must
    run the step eagerly itself (a short last batch of another shape, or after a failed capture or check)."""

    def __init__(self, step: Callable[[torch.Tensor, Generators], torch.Tensor], gens: Generators,
                 device: torch.device, modules: list[nn.Module], optimizers: list[torch.optim.Optimizer],
                 backend, say: Callable[[str], None], shape: tuple[int, ...]):
        self.step, self.gens, self.device, self.backend, self.say = step, gens, device, backend, say
        self.shape = tuple(shape)  # the rows of a full step: runs x n_critic * batch
        self.modules, self.optimizers = modules, optimizers
        self.rows: torch.Tensor | None = None
        self.draws: StaticDraws | None = None
        self.eager_steps, self.off, self.captured = 0, False, False
        self.replayed = 0  # steps taken as a graph replay
        backend.prepare(optimizers, device)

    def __call__(self, rows: torch.Tensor) -> torch.Tensor | None:
        if self.off or tuple(rows.shape) != self.shape:
            return None
        if self.eager_steps < WARMUP_STEPS:
            self.eager_steps += 1
            return self.backend.warm(lambda: self.step(rows, self.gens))
        if not self.captured:
            return self._capture(rows)
        self.rows.copy_(rows)
        self.draws.fill()
        self.replayed += 1
        return self.backend.replay().clone()

    def _capture(self, rows: torch.Tensor) -> torch.Tensor | None:
        self.rows = rows.clone()
        before = _State(self.modules, self.optimizers, self.gens)
        self.draws = StaticDraws(self.gens, self.device)
        expected = self.step(self.rows, self.draws)  # eagerly, recording the draws
        before.restore()
        self.draws.replaying()
        try:
            self.backend.capture(lambda: self.step(self.rows, self.draws))
            self.draws.fill()  # the same numbers again: the generators are back where the eager step began
            got = self.backend.replay()
        except Exception as e:  # noqa: BLE001  (whatever CUDA refused, the eager step remains)
            return self._give_up(before, f"capture failed ({type(e).__name__}: {(str(e).splitlines() or [''])[0]})")
        if not torch.allclose(got, expected, rtol=RTOL, atol=ATOL, equal_nan=True):
            worst = ((got - expected).abs() / expected.abs().clamp(min=ATOL)).nan_to_num().max().item()
            return self._give_up(before, f"the replayed step differs from the eager one (relative {worst:.1e})")
        self.captured, self.replayed = True, 1
        return got.clone()

    def _give_up(self, before: _State, why: str) -> None:
        before.restore()
        self.off = True
        self.say(f"CUDA graph off, training eagerly: {why}")
        return None


def replay_blockers(spec, step_dependencies: list[str], loss) -> list[str]:
    """Why the step of ``spec`` cannot be replayed as a graph (empty: it can). ``step_dependencies``: what
    G and D draw or schedule on their own (``ganbench.training.models.step_dependencies``)."""
    t = spec.model.tricks
    why = list(step_dependencies)
    if isinstance(loss, ProgressAware):
        why.append(f"the {spec.model.loss.name} loss follows a training-progress schedule")
    if loss.translation:
        why.append(f"the image-to-image loss {spec.model.loss.name} trains on (source, target) batches eagerly")
    if t.instance_noise:
        why.append("instance noise anneals step by step")
    if t.unrolled_steps:
        why.append("unrolled D steps copy D's state on the host")
    if t.ema and t.ema_rampup:
        why.append("the EMA's decay ramps up step by step")
    return why
