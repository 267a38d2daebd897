"""Seeds trained together: the runs of one model under one protocol, differing only in their seed,
batched inside one process so that one device works on all of them at once.

A small GAN leaves most of a GPU idle, and separate processes do not fill it (the GPU time-slices
between them). Here the S copies of a network become one :class:`SeedStack`: every parameter and buffer
stacked along a new first dimension and the forward pass vmapped over it (``torch.func``), so each layer
runs as one batched kernel. Inputs and outputs stay flat, ``(S * B, ...)`` with run ``s`` owning rows
``s * B : (s + 1) * B``, which lets the trainer and the loss plug-ins run unchanged: the losses reduce per
run (``Loss.mean``) and the sum of S independent losses has, for each run's weights, exactly that run's
gradient. Adam and RMSprop act elementwise, so one optimiser over the stacked weights is S optimisers.

Every random draw goes through :class:`ganbench.spec.seeds.Generators`, one ``torch.Generator`` per run, so
each run draws the same numbers in the same order as when it trains alone. What differs from training alone
is float rounding (batched kernels sum in another order), which GAN dynamics amplify over many steps as any
change of kernels does; tests/test_train.py states the tolerance.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


def _key(name: str) -> str:
    return name.replace(".", "__")  # ParameterDict keys cannot hold dots


class SeedStack(nn.Module):
    """S networks of one architecture as one module (see the module docstring). ``unstack(s)`` gives run
    ``s``'s network with the current weights (for sampling, health checks and checkpoints); the state of
    run ``s`` (``seed_state``) has the names and shapes of the network trained alone."""

    def __init__(self, nets: list[nn.Module]):
        super().__init__()
        self.runs = len(nets)
        params, buffers = stack_module_state(nets)
        self.params = nn.ParameterDict({_key(k): nn.Parameter(v.detach().clone()) for k, v in params.items()})
        for k, v in buffers.items():
            self.register_buffer(f"buf__{_key(k)}", v.clone())
        self._names = list(params), list(buffers)
        self._state_keys = set(nets[0].state_dict())
        object.__setattr__(self, "_base", copy.deepcopy(nets[0]).to("meta"))  # architecture only, not a submodule
        object.__setattr__(self, "_templates", nets)  # run s's own module, refreshed by unstack(s)

    def train(self, mode: bool = True):
        super().train(mode)
        self._base.train(mode)
        return self

    def _stacked(self) -> tuple[dict, dict]:
        p_names, b_names = self._names
        return ({n: self.params[_key(n)] for n in p_names},
                {n: getattr(self, f"buf__{_key(n)}") for n in b_names})

    def _call(self, params, buffers, *args):
        return functional_call(self._base, (params, buffers), args)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        params, buffers = self._stacked()
        split = [a.unflatten(0, (self.runs, -1)) for a in args]
        return vmap(self._call)(params, buffers, *split).flatten(0, 1)

    def seed_state(self, s: int) -> dict[str, torch.Tensor]:
        params, buffers = self._stacked()
        return {n: t[s].detach().clone() for n, t in {**params, **buffers}.items() if n in self._state_keys}

    @torch.no_grad()
    def unstack(self, s: int) -> nn.Module:
        net = self._templates[s]
        net.load_state_dict(self.seed_state(s))
        return net.train(self.training)


def unstack(net: nn.Module, s: int) -> nn.Module:
    """Run ``s``'s network: a SeedStack's copy, or the network itself when it trains alone."""
    return net.unstack(s) if isinstance(net, SeedStack) else net


def seed_state(net: nn.Module, s: int) -> dict[str, torch.Tensor]:
    return net.seed_state(s) if isinstance(net, SeedStack) else net.state_dict()


def per_run_norm(tensors: list[torch.Tensor], runs: int) -> torch.Tensor:
    """The L2 norm over a list of tensors: one per run (a vector of S) for stacked tensors, else one."""
    if runs == 1:
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors)))
    return torch.linalg.vector_norm(torch.cat([t.flatten(1) for t in tensors], 1), dim=1)  # two kernels, not one per tensor


def optimizer_state_of(opt: torch.optim.Optimizer, s: int, runs: int) -> dict:
    """Run ``s``'s part of an optimiser over stacked weights: the state dict of the optimiser of run ``s`` alone."""
    sd = opt.state_dict()
    # a checkpoint is device-neutral: the CUDA-graph path's capturable flag would refuse CPU parameters on resume
    sd["param_groups"] = [{**g, "capturable": False} if g.get("capturable") else g for g in sd["param_groups"]]
    if runs == 1:
        return sd
    shapes = [p.shape for group in opt.param_groups for p in group["params"]]
    state = {i: {k: (v[s].clone() if torch.is_tensor(v) and v.shape == shapes[i] else v) for k, v in st.items()}
             for i, st in sd["state"].items()}
    return {"state": state, "param_groups": sd["param_groups"]}


def stack_optimizer_states(states: list[dict]) -> dict:
    """The state dict of one optimiser over stacked weights from the state dicts of the runs' optimisers."""
    if len(states) == 1:
        return states[0]
    first = states[0]
    stacked = {i: {k: (torch.stack([sd["state"][i][k] for sd in states]) if torch.is_tensor(v) and v.dim() else v)
                   for k, v in st.items()} for i, st in first["state"].items()}
    return {"state": stacked, "param_groups": first["param_groups"]}
