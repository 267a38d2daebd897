"""``ganbench eval``: samples from .npz / PNG folders / a generator checkpoint, MLflow logging, input errors."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch

from ganbench.cli import main
from ganbench.metrics.reference import reference_images


@pytest.fixture
def proto(eval_protocol):
    return eval_protocol(n=200, metrics=("fid", "kid"), name="evalp")


@pytest.fixture(scope="module")
def images():
    return reference_images("fashion-mnist", "train", 200, 3)


def run_json(argv, capsys):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_npz_and_png_folder_give_the_same_numbers_and_log_to_mlflow(tmp_path, proto, images, capsys):
    from PIL import Image

    from ganbench.core.track import TAG_SOURCE, Tracker

    npz = tmp_path / "s.npz"
    np.savez(npz, samples=images.numpy())
    a = run_json(["eval", "--protocol", proto, "--samples", str(npz), "--name", "real"], capsys)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, im in enumerate(images[:, 0].numpy()):
        Image.fromarray(im).save(folder / f"{i:04d}.png")
    b = run_json(["eval", "--protocol", proto, "--samples", str(folder), "--no-track"], capsys)
    assert b["run_id"] is None
    fid_a, fid_b = a["results"]["domain_fid_200_test"], b["results"]["domain_fid_200_test"]
    assert fid_a["value"] == fid_b["value"] and fid_a["floor"] is not None
    # NHWC floats in [-1, 1] are the same images too
    nhwc = tmp_path / "f.npz"
    np.savez(nhwc, images=(images.permute(0, 2, 3, 1).numpy() / 127.5 - 1).astype(np.float32))
    c = run_json(["eval", "--protocol", proto, "--samples", str(nhwc), "--no-track"], capsys)
    assert c["results"]["domain_fid_200_test"]["value"] == pytest.approx(fid_a["value"], rel=1e-9)
    run = Tracker().get(a["run_id"])
    assert run.data.metrics["domain_fid_200_test"] == pytest.approx(fid_a["value"])
    assert run.data.metrics["domain_fid_200_test_floor"] == pytest.approx(fid_a["floor"])
    assert run.data.metrics["domain_kid_200_test_std"] == pytest.approx(a["results"]["domain_kid_200_test"]["std"])
    assert run.data.tags[TAG_SOURCE] == f"samples:{npz}" and run.data.tags["ganbench.status"] == "finished"
    assert "extractor=ganbench-domain-fashion-mnist" in run.data.tags["ganbench.metric.domain_fid_200_test"]


GEN_MODULE = """
import torch
from torch import nn

class Gen(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(100, 784)
    def forward(self, z):
        return torch.tanh(self.fc(z.flatten(1))).view(-1, 1, 28, 28)

def make():
    return Gen()
"""


def test_generator_checkpoint(tmp_path, proto, capsys, monkeypatch):
    (tmp_path / "mygen.py").write_text(textwrap.dedent(GEN_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    G = importlib.import_module("mygen").make()
    torch.save({"G": G.state_dict()}, tmp_path / "g.pt")
    out = run_json(["eval", "--protocol", proto, "--generator", "mygen:make", "--checkpoint", str(tmp_path / "g.pt")], capsys)
    assert out["results"]["domain_fid_200_test"]["value"] > 10 * out["results"]["domain_fid_200_test"]["floor"]
    torch.save(G, tmp_path / "pickled.pt")  # a whole pickled module: refused
    assert main(["eval", "--protocol", proto, "--generator", "mygen:make", "--checkpoint", str(tmp_path / "pickled.pt")]) == 2
    err = capsys.readouterr().err
    assert "pickled.pt: holds pickled Python objects" in err and "weights_only" not in err
    assert main(["eval", "--protocol", proto, "--generator", "mygen", "--checkpoint", str(tmp_path / "g.pt")]) == 2
    assert "module:function" in capsys.readouterr().err


@pytest.mark.parametrize("array, message", [
    (np.zeros((200, 28, 28, 3), np.uint8), "expected images N x 1 x 28 x 28"),
    (np.full((200, 1, 28, 28), 2.0, np.float32), "do not say their encoding"),
    (np.full((200, 1, 28, 28), -2.0, np.float32), "float pixels must lie in [-1, 1]"),
    (np.full((200, 1, 28, 28), np.nan, np.float32), "200 of 200 images contain NaN"),
    (np.zeros((150, 1, 28, 28), np.uint8), "evaluates 200 samples, got 150"),
    (np.zeros((200, 1, 28, 28), np.int64), "expected uint8 pixels in [0, 255], or float pixels"),
])
def test_bad_samples_are_clear_errors(tmp_path, proto, capsys, array, message):
    path = tmp_path / "bad.npz"
    np.savez(path, samples=array)
    assert main(["eval", "--protocol", proto, "--samples", str(path), "--no-track"]) == 2
    assert message in capsys.readouterr().err


def test_usage_errors(tmp_path, proto, capsys):
    assert main(["eval", "--protocol", proto, "--no-track"]) == 2
    assert "exactly one of --samples" in capsys.readouterr().err
    assert main(["eval", "--protocol", proto, "--samples", str(tmp_path / "missing.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["eval", "--protocol", proto, "--generator", "mygen:make", "--range", "0,1", "--no-track"]) == 2
    assert "--range describes the pixels of --samples" in capsys.readouterr().err
    assert main(["eval", "--protocol", proto, "--generator", "no_such_module_here:make", "--no-track"]) == 2
    assert "No module named 'no_such_module_here' (modules are looked up in the current folder" in capsys.readouterr().err


def test_float_samples_with_their_range_give_the_numbers_of_the_uint8_images(tmp_path, proto, images, capsys):
    """The same images as uint8, as floats in [0, 1] with --range 0,1 and in [-1, 1] with --range -1,1 (also
    as .npy) give identical numbers; the same [0, 1] floats without --range are refused, as reading them as
    [-1, 1] (what ganbench did) moves every pixel."""
    u8 = images.numpy()
    encodings = {"u8.npz": (u8, []), "unit.npz": ((u8 / 255.0).astype(np.float32), ["--range", "0,1"]),
                 "signed.npy": ((u8 / 127.5 - 1.0).astype(np.float32), ["--range", "-1,1"]),
                 "bytes.npz": (u8.astype(np.float64), ["--range=0,255"])}
    values = {}
    for name, (array, flag) in encodings.items():
        path = tmp_path / name
        np.save(path, array) if name.endswith(".npy") else np.savez(path, samples=array)
        out = run_json(["eval", "--protocol", proto, "--samples", str(path), "--no-track", *flag], capsys)
        values[name] = (out["results"]["domain_fid_200_test"]["value"], out["results"]["domain_kid_200_test"]["value"])
    assert len(set(values.values())) == 1, values
    assert main(["eval", "--protocol", proto, "--samples", str(tmp_path / "unit.npz"), "--no-track"]) == 2
    err = capsys.readouterr().err
    assert "unit.npz[samples]: float pixels in [0, 1] do not say their encoding" in err
    assert "uint8 pixels in [0, 255]" in err and "--range 0,1 | -1,1 | 0,255" in err
    # a stated range that the values break, and a range given for uint8 pixels, are refused too
    assert main(["eval", "--protocol", proto, "--samples", str(tmp_path / "signed.npy"), "--range", "0,1"]) == 2
    assert "float pixels must lie in [0, 1] (--range 0,1), got [-1, 1]" in capsys.readouterr().err
    assert main(["eval", "--protocol", proto, "--samples", str(tmp_path / "u8.npz"), "--range", "0,1"]) == 2
    assert "uint8 pixels are read as [0, 255]; --range 0,1 describes float pixels only" in capsys.readouterr().err
