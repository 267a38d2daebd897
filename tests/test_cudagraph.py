"""The fast path's replayed step (ganbench.training.cudagraph) against the eager loop, on the CPU.

CUDA graphs need a GPU; what the trainer adds around them does not: the step's data rows and random draws
as static inputs refilled before every replay, the eager check of the first replay, and the fallback that
undoes a bad replay. Here a stand-in backend "replays" by running the captured step function again, reading
the same static inputs a graph would read, so a replayed run must give exactly the eager run's numbers
(the same kernels on the same CPU: bit for bit). benchmarks/gpu_checks.sh checks the real graphs on a GPU."""

import pandas as pd
import pytest
import torch

from ganbench.training import cudagraph
from ganbench.spec.protocol import load_protocol, resolve
from ganbench.pipeline.run import training_images
from ganbench.spec.seeds import Generators
from ganbench.training.stack import optimizer_state_of
from ganbench.training import train_together

W = "0" * 64


class Rerun:
    """A graph stand-in: capture keeps the step function, replay runs it again on the static inputs."""

    def __init__(self, corrupt: bool = False, fail: bool = False):
        self.corrupt, self.fail = corrupt, fail
        self.captures = self.replays = 0

    def prepare(self, optimizers, device) -> None:
        pass

    def warm(self, fn):
        return fn()

    def capture(self, fn) -> None:
        self.captures += 1
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        self.fn = fn

    def replay(self):
        self.replays += 1
        out = self.fn()  # the step is taken (weights, optimisers and generators move on) ...
        return out + 1 if self.corrupt else out  # ... but its numbers are not the eager step's


_EAGER: dict = {}  # (model, seeds, subset) -> the eager run: trained once, compared with by several tests


def eager_run(tmp_path, tiny_protocol, monkeypatch, model="dcgan", seeds=(0,), subset=320):
    key = (model, seeds, subset)
    if key not in _EAGER:
        _EAGER[key] = run(tmp_path, tiny_protocol, monkeypatch, None, model, seeds, subset, name="eager")
    return _EAGER[key]


def run(tmp_path, tiny_protocol, monkeypatch, backend, model="dcgan", seeds=(0,), subset=320, overrides=None,
        name="run"):
    proto = load_protocol(tiny_protocol(models=[model], subset=subset))
    data = training_images(proto)
    specs = resolve(proto, W, seeds=list(seeds), overrides=overrides)
    monkeypatch.setattr(cudagraph, "backend_for", lambda device: backend)
    dirs = [tmp_path / f"{name}{s}" for s in seeds]
    return train_together(specs, data.images, dirs, progress=True, labels=data.labels, fast=True)


@pytest.mark.parametrize("model,seeds,subset", [("dcgan", (0,), 320), ("wgan-gp", (0,), 1600), ("cdcgan", (0,), 320),
                                                ("dcgan", (0, 1), 320)],
                         ids=["dcgan", "wgan-gp", "cdcgan", "dcgan-2-seeds"])
def test_replayed_steps_give_the_eager_steps_numbers_exactly(tmp_path, tiny_protocol, monkeypatch, model, seeds, subset):
    """dcgan: z for D and for G; wgan-gp: five critic steps per G step and the penalty's mixing draws;
    cdcgan: labels (an integer draw); two seeds: per-run draws and rows of stacked runs."""
    eager = eager_run(tmp_path, tiny_protocol, monkeypatch, model, seeds, subset)
    graph = Rerun()
    replayed = run(tmp_path, tiny_protocol, monkeypatch, graph, model, seeds, subset, name="graph")
    steps = len(eager[0].records)
    assert steps == 10 and graph.captures == 1 and graph.replays == steps - cudagraph.WARMUP_STEPS
    assert all(r.replayed_steps == graph.replays for r in replayed) and eager[0].replayed_steps == 0
    for a, b in zip(eager, replayed):
        pd.testing.assert_frame_equal(a.records, b.records, check_exact=True)
        for net_a, net_b in ((a.G, b.G), (a.D, b.D)):
            for (name, x), y in zip(net_a.state_dict().items(), net_b.state_dict().values()):
                assert torch.equal(x, y), name


@pytest.mark.parametrize("fault", ["corrupt", "fail"])
def test_a_bad_replay_or_capture_falls_back_to_eager_from_the_same_state(tmp_path, tiny_protocol, monkeypatch,
                                                                          capsys, fault):
    """The first replay is checked against the same step run eagerly; a replay that differs (here: its stats
    are off by one) or a capture that fails leaves training eager, from the state before that step:
    weights, optimiser state, generators and D's trainable flags restored, so the run ends as the eager one."""
    eager = eager_run(tmp_path, tiny_protocol, monkeypatch)
    graph = Rerun(**{fault: True})
    capsys.readouterr()
    bad = run(tmp_path, tiny_protocol, monkeypatch, graph, name="bad")
    said = capsys.readouterr().err
    assert "CUDA graph off, training eagerly" in said
    assert ("differs from the eager one" if fault == "corrupt" else "capture failed") in said
    assert graph.captures == 1 and graph.replays == (1 if fault == "corrupt" else 0)
    pd.testing.assert_frame_equal(eager[0].records, bad[0].records, check_exact=True)
    for (name, x), y in zip(eager[0].D.state_dict().items(), bad[0].D.state_dict().values()):
        assert torch.equal(x, y), name
    assert all(p.requires_grad for p in bad[0].D.parameters())


def test_steps_that_depend_on_the_host_stay_eager_and_say_why(tmp_path, tiny_protocol, monkeypatch, capsys):
    graph = Rerun()
    run(tmp_path, tiny_protocol, monkeypatch, graph, overrides={"tricks.instance_noise": 0.1, "tricks.ema": 0.99,
                                                                "tricks.ema_rampup": 0.05})
    said = capsys.readouterr().err
    assert graph.captures == 0
    assert "instance noise anneals step by step" in said and "EMA's decay ramps up" in said


def test_static_draws_replay_the_recorded_draws_in_order():
    gens = Generators([torch.Generator().manual_seed(0)])
    draws = cudagraph.StaticDraws(gens, torch.device("cpu"))
    reference = Generators([torch.Generator().manual_seed(0)])
    steps = [[draws.randn(4, 3).clone(), draws.randint(10, (4,)).clone()]]  # recording: the usual draws
    draws.replaying()
    for _ in range(2):
        draws.fill()  # the generators go on: the next step's numbers
        steps.append([draws.randn(4, 3).clone(), draws.randint(10, (4,)).clone()])
    for got in steps:
        expected = [reference.randn(4, 3), reference.randint(10, (4,))]
        assert all(torch.equal(a, b) for a, b in zip(got, expected))
    draws.fill()
    with pytest.raises(RuntimeError, match="not the one recorded"):
        draws.randn(5, 3)  # a step whose draws change shape cannot be replayed


def test_checkpointed_optimiser_state_resumes_on_the_cpu():
    """The graph path's optimisers are 'capturable' (CUDA only); a checkpoint drops the flag."""
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([w], lr=0.1)
    w.grad = torch.ones(3)
    opt.step()
    opt.param_groups[0]["capturable"] = True
    state = optimizer_state_of(opt, 0, 1)
    assert state["param_groups"][0]["capturable"] is False
    fresh = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], lr=0.1)
    fresh.load_state_dict(state)
    fresh.param_groups[0]["params"][0].grad = torch.ones(3)
    fresh.step()  # a capturable Adam would refuse CPU parameters here
    assert fresh.state_dict()["state"][0]["step"].item() == 2


def test_state_restores_weights_optimiser_generators_and_trainable_flags():
    """What a failed capture (it may stop mid-step, with D's weights frozen for G's step) must undo."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    gens = Generators([torch.Generator().manual_seed(0)])
    x = torch.randn(8, 3)
    net(x).sum().backward()
    opt.step()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt_before = {k: v.clone() for k, v in opt.state[net[0].weight].items()}
    saved = cudagraph._State([net], [opt], gens)
    expected_draw = gens.randn(2)
    net(x).sum().backward()
    opt.step()
    net[0].weight.requires_grad_(False)
    saved.restore()
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert all(torch.equal(v, opt_before[k]) for k, v in opt.state[net[0].weight].items())
    assert all(p.requires_grad for p in net.parameters())
    assert torch.equal(gens.randn(2), expected_draw)
