"""ganbench/use.py: slerp against its closed form, and `ganbench sample` / `interpolate` on a tiny real run
(real MLflow SQLite store, real checkpoint; the run is trained once for the module)."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganbench.cli import main
from ganbench.core.assets import cache_root
from ganbench.core.errors import GanbenchError
from ganbench.nets.sampling import generate
from ganbench.pipeline.use import interpolate, load_generator_from_run, sample, slerp
from ganbench.spec.protocol import runspec_from_dict
from ganbench.spec.seeds import fixed_z
from ganbench.training import build_models

TINY = """
description = "sample/interpolate test run"
models = ["dcgan", "cdcgan"]
seeds = [0]

[data]
dataset = "fashion-mnist"
subset = 128

[train]
epochs = 1
batch_size = 32
check_every = 4

[eval]
num_samples = 64
metrics = ["fid@domain"]  # the small domain classifier: no Inception pass
floor = false
grid_size = 4
batch_size = 64
"""


# --------------------------------------------------------------------------- slerp


def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.arccos((torch.nn.functional.normalize(a, dim=-1) * torch.nn.functional.normalize(b, dim=-1))
                        .sum(-1).clamp(-1, 1))


def test_slerp_endpoints_are_exact():
    z0, z1 = torch.randn(2, 5, 100, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(slerp(z0, z1, 0.0), z0) and torch.equal(slerp(z0, z1, 1.0), z1)
    path = slerp(z0[:, None], z1[:, None], torch.linspace(0, 1, 7, dtype=torch.float64).view(1, 7, 1))
    assert path.shape == (5, 7, 100) and torch.equal(path[:, 0], z0) and torch.equal(path[:, -1], z1)


def test_slerp_of_unit_vectors_stays_on_the_sphere_at_angle_t_omega():
    z0, z1 = torch.nn.functional.normalize(torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(1),
                                                       dtype=torch.float64), dim=-1)
    omega = _angle(z0, z1)
    for t in torch.linspace(0, 1, 11, dtype=torch.float64):
        zt = slerp(z0, z1, t)
        assert torch.allclose(zt.norm(dim=-1), torch.ones(4, dtype=torch.float64), atol=1e-12)
        # the great-circle arc: angle(z0, zt) = t * omega and angle(zt, z1) = (1 - t) * omega
        assert torch.allclose(_angle(z0, zt), t * omega, atol=1e-6)
        assert torch.allclose(_angle(zt, z1), (1 - t) * omega, atol=1e-6)
    half = slerp(z0, z1, 0.5)
    assert torch.allclose(half, (z0 + z1) / (z0 + z1).norm(dim=-1, keepdim=True), atol=1e-12)  # the bisector


def test_slerp_falls_back_to_lerp_for_parallel_vectors():
    z0 = torch.randn(3, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for z1 in (2.0 * z0, -z0):  # parallel and antiparallel: sin(omega) = 0
        out = slerp(z0, z1, 0.25)
        assert torch.isfinite(out).all() and torch.allclose(out, 0.75 * z0 + 0.25 * z1, atol=1e-12)


# --------------------------------------------------------------------------- a tiny real run


@dataclass(frozen=True)
class TrainedRun:
    home: Path
    run_id: str
    run_dir: Path
    protocol: Path
    uri: str
    conditional_id: str  # cdcgan trained with the EMA trick
    conditional_dir: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> TrainedRun:
    from ganbench.pipeline.run import run_protocol

    root = tmp_path_factory.mktemp("use")
    protocol = root / "protocols" / "tiny-use.toml"
    protocol.parent.mkdir()
    protocol.write_text(TINY)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANBENCH_CACHE", str(cache_root()))
        mp.setenv("GANBENCH_HOME", str(root / "home"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        (out,) = run_protocol(str(protocol), ["dcgan"], device="cpu", progress=False)
        (cond,) = run_protocol(str(protocol), ["cdcgan"], device="cpu", progress=False, overrides={"tricks.ema": 0.999})
    assert out.status == cond.status == "finished"
    return TrainedRun(root / "home", out.run_id, out.run_dir, protocol, f"sqlite:///{root / 'home' / 'mlflow.db'}",
                      cond.run_id, cond.run_dir)


@pytest.fixture
def run(trained, ganbench_home, monkeypatch) -> TrainedRun:
    monkeypatch.setenv("GANBENCH_HOME", str(trained.home))
    return trained


def reference_generator(run_dir: Path, key: str = "G"):
    """The final checkpoint's G (or G_ema), rebuilt independently of ganbench.pipeline.use."""
    spec = runspec_from_dict(json.loads((run_dir / "spec.json").read_text()))
    G, _ = build_models(spec, torch.device("cpu"), torch.Generator().manual_seed(123))
    G.load_state_dict(torch.load(run_dir / "final.pt", map_location="cpu", weights_only=True)[key])
    return spec, G


def grid_size_px(rows: int, cols: int, size: int = 28, pad: int = 2) -> tuple[int, int]:
    """(width, height) of torchvision's make_grid."""
    return cols * (size + pad) + pad, rows * (size + pad) + pad


def test_sample_grid_and_npz_equal_the_final_checkpoints_samples(run, tmp_path, capsys):
    out = tmp_path / "s.png"
    assert main(["sample", run.run_id, "--n", "16", "--seed", "5", "--npz", "--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(out), str(out.with_suffix(".npz"))]
    assert Image.open(out).size == grid_size_px(4, 4)
    spec, G = reference_generator(run.run_dir)
    expected = generate(G, torch.randn(16, spec.model.z_dim, generator=torch.Generator().manual_seed(5)))
    with np.load(out.with_suffix(".npz")) as z:
        assert z.files == ["images"] and z["images"].dtype == np.uint8
        assert np.array_equal(z["images"], expected.numpy())


def test_sample_seeds_and_default_fixed_z(run, tmp_path):
    def images(*args: str) -> np.ndarray:
        assert main(["sample", run.run_id, "--n", "9", "--npz", *args]) == 0
        png = Path(args[args.index("--out") + 1]) if "--out" in args else \
            run.run_dir / "samples" / f"sample_fixedz{spec.protocol.eval.z_seed}.png"
        assert Image.open(png).size == grid_size_px(3, 3)
        with np.load(png.with_suffix(".npz")) as z:
            return z["images"]

    spec, G = reference_generator(run.run_dir)
    a, b = images("--seed", "1", "--out", str(tmp_path / "a.png")), images("--seed", "1", "--out", str(tmp_path / "b.png"))
    c = images("--seed", "2", "--out", str(tmp_path / "c.png"))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    default = images()  # the protocol's fixed z: the run's logged grids
    assert np.array_equal(default, generate(G, fixed_z(9, spec.model.z_dim, spec.protocol.eval.z_seed)).numpy())
    assert not (run.run_dir / "samples" / "sample_seed1.png").exists()  # --out was honoured


@pytest.mark.parametrize("args, message", [
    (["--label", "3"], "unconditional"),
    (["--ema"], "tricks.ema=0.999"),
    (["--n", "0"], "--n 0"),
])
def test_sample_user_errors_exit_2(run, capsys, args, message):
    assert main(["sample", run.run_id, *args]) == 2
    assert message in capsys.readouterr().err


def test_missing_run_exits_2(run, capsys):
    assert main(["sample", "0123456789abcdef0123456789abcdef"]) == 2
    assert "neither a run folder nor a run id" in capsys.readouterr().err


def test_interpolate_rows_run_from_z0_to_z1(run, tmp_path):
    out = tmp_path / "i.png"
    res = interpolate(run.run_id, pairs=3, steps=5, seed=4, out=out)
    assert res.png == out and Image.open(out).size == grid_size_px(3, 5)
    spec, G = reference_generator(run.run_dir)
    z0, z1 = torch.randn(2, 3, 1, spec.model.z_dim, generator=torch.Generator().manual_seed(4))
    grid = res.images.view(3, 5, *res.images.shape[1:]).int()
    # the same z in a batch of another size: allow one grey level of float noise from the convolutions
    assert (grid[:, 0] - generate(G, z0[:, 0]).int()).abs().max() <= 1
    assert (grid[:, -1] - generate(G, z1[:, 0]).int()).abs().max() <= 1
    assert not torch.equal(grid[:, 0], grid[:, 2])
    assert main(["interpolate", str(run.run_dir), "--pairs", "2", "--steps", "4"]) == 0
    assert Image.open(run.run_dir / "samples" / "interpolate_seed0.png").size == grid_size_px(2, 4)


def test_run_without_local_folder_loads_from_mlflow(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_HOME", str(tmp_path / "elsewhere"))  # no run folder here
    spec, G = load_generator_from_run(trained.run_id, tracking_uri=trained.uri)
    _, ref = reference_generator(trained.run_dir)
    assert spec.model.name == "dcgan" and all(torch.equal(a, b) for a, b in zip(G.state_dict().values(),
                                                                              ref.state_dict().values()))


def test_run_without_spec_json_is_rebuilt_from_the_card_or_refused(trained, tmp_path, monkeypatch):
    """An older run (no spec.json artifact): the zoo card is re-resolved and its hash must match."""
    from ganbench.core import track

    monkeypatch.setenv("GANBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GANBENCH_PROTOCOLS_PATH", str(tmp_path / "protocols"))
    shutil.copytree(trained.protocol.parent, tmp_path / "protocols")
    spec = runspec_from_dict(json.loads((trained.run_dir / "spec.json").read_text()))
    tracker = track.Tracker()
    run_id = tracker.start("ganbench/tiny-use", "old", {}, {
        track.TAG_PROTOCOL: "tiny-use", track.TAG_PROTOCOL_HASH: spec.protocol_hash, track.TAG_MODEL: "dcgan",
        track.TAG_SEED: "0"})
    tracker.log_artifact(run_id, trained.run_dir / "final.pt", "checkpoints")
    tracker.end(run_id, "finished")
    got, G = load_generator_from_run(run_id)
    assert got.protocol_hash == spec.protocol_hash
    card = tmp_path / "protocols" / "tiny-use.toml"
    card.write_text(card.read_text().replace("epochs = 1", "epochs = 2"))  # the training budget: another training identity
    with pytest.raises(GanbenchError, match="changed since the run"):
        load_generator_from_run(run_id)


def test_conditional_samples_cycle_classes_or_take_one_label(run, tmp_path, capsys):
    out = tmp_path / "c.png"
    assert main(["sample", run.conditional_id, "--n", "12", "--seed", "3", "--npz", "--out", str(out)]) == 0
    spec, G = reference_generator(run.conditional_dir)
    z = torch.randn(12, spec.model.z_dim, generator=torch.Generator().manual_seed(3))
    with np.load(out.with_suffix(".npz")) as f:
        assert np.array_equal(f["labels"], np.arange(12) % 10)
        assert np.array_equal(f["images"], generate(G, z, labels=torch.arange(12) % 10).numpy())
    assert Image.open(out).size == grid_size_px(3, 4)
    assert main(["sample", run.conditional_id, "--n", "4", "--label", "7", "--npz"]) == 0
    with np.load(run.conditional_dir / "samples" / f"sample_fixedz{spec.protocol.eval.z_seed}_label7.npz") as f:
        assert np.array_equal(f["labels"], [7, 7, 7, 7])
    assert main(["sample", run.conditional_id, "--label", "10"]) == 2
    assert "classes 0..9" in capsys.readouterr().err


def test_ema_samples_come_from_the_averaged_generator(run, tmp_path):
    spec, G_ema = reference_generator(run.conditional_dir, "G_ema")
    res = sample(run.conditional_id, n=8, seed=0, ema=True, out=tmp_path / "e.png")
    z = torch.randn(8, spec.model.z_dim, generator=torch.Generator().manual_seed(0))
    assert torch.equal(res.images, generate(G_ema, z, labels=torch.arange(8) % 10))
    _, G = reference_generator(run.conditional_dir)
    assert not torch.equal(res.images, generate(G, z, labels=torch.arange(8) % 10))
    rows = interpolate(run.conditional_id, pairs=2, steps=3, ema=True, label=4, out=tmp_path / "ei.png")
    assert rows.labels.tolist() == [4] * 6


def test_run_folder_needs_no_mlflow_and_a_bare_folder_is_refused(run, tmp_path):
    spec, G = load_generator_from_run(str(run.run_dir), tracking_uri=f"sqlite:///{tmp_path / 'no' / 'such.db'}")
    assert spec.model.name == "dcgan"
    (tmp_path / "bare").mkdir()
    with pytest.raises(GanbenchError, match="not a run folder|no mlflow_run_id"):
        load_generator_from_run(str(tmp_path / "bare"))


RING = """
description = "2D points for sample/interpolate"
models = ["gan-mlp2d"]
seeds = [0]

[data]
dataset = "ring8"
subset = 256
image_size = 0
channels = 2

[train]
epochs = 1
batch_size = 64

[eval]
num_samples = 64
metrics = ["modes2d"]
"""


def test_points_protocols_sample_a_scatter_and_refuse_interpolation(tmp_path, capsys):
    from ganbench.pipeline.run import run_protocol

    (tmp_path / "ring-use.toml").write_text(RING)
    (out,) = run_protocol(str(tmp_path / "ring-use.toml"), device="cpu", progress=False)
    assert main(["sample", out.run_id, "--n", "32", "--npz", "--out", str(tmp_path / "ring.png")]) == 0
    with np.load(tmp_path / "ring.npz") as f:
        assert f["points"].shape == (32, 2) and f["points"].dtype == np.float32
    assert Image.open(tmp_path / "ring.png").size == (500, 500)  # scatter_2d: 5 x 5 inches at 100 dpi
    assert main(["interpolate", out.run_id]) == 2
    assert "use `ganbench sample`" in capsys.readouterr().err
