"""Pins are the package's, never the disk's: ``ganbench data verify`` reports every bad file, exits
non-zero and changes nothing; a damaged Inception conversion is rebuilt from its cached source, or
named with the command that repairs it, and protocols that never read Inception are not affected;
a mistyped ``--data-root`` is an error. Each test works on a copy of the real cache."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ganbench.core.assets import cache_root
from ganbench.cli import main
from ganbench.core.errors import GanbenchError
from ganbench.extractors import CONVERTED_NAME, FID_HELPER_CACHED, inception, inception_weights
from ganbench.extractors import domain as dom
from ganbench.spec.protocol import load_protocol, resolve

from test_protocol_identity import protocol_copy

PINNED_FEATURES = "2880397385c127930be1f918f46a156bdc0843c2c6d32bf5f131cc254f21ff9a"  # of the pinned conversion


def cache_copy(tmp_path: Path, monkeypatch, *names: str) -> Path:
    """A new GANBENCH_CACHE holding copies of these files of the real cache (paths relative to it)."""
    real, cache = cache_root(), tmp_path / "cache"
    for name in names:
        for src in sorted(real.glob(name)):
            dest = cache / src.relative_to(real)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
    monkeypatch.setenv("GANBENCH_CACHE", str(cache))
    monkeypatch.delenv("GANBENCH_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(inception, "_official_candidates", lambda: [cache / "weights" / inception.OFFICIAL_NAME])
    return cache


def flip_byte(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_verify_reports_every_bad_file_exits_non_zero_and_repins_nothing(tmp_path, monkeypatch, capsys):
    cache = cache_copy(tmp_path, monkeypatch, "data/fashion-mnist/*", "weights/*")
    shipped = tmp_path / "shipped"  # the package's classifier files, copied so that one can be damaged
    shutil.copytree(dom.SHIPPED_DIR, shipped)
    monkeypatch.setattr(dom, "SHIPPED_DIR", shipped)
    bad = [cache / "data/fashion-mnist/t10k-labels-idx1-ubyte", cache / "data/fashion-mnist/train-images-idx3-ubyte",
           cache / "weights" / CONVERTED_NAME, cache / "weights" / FID_HELPER_CACHED]
    flip_byte(bad[0])
    truncate(bad[1])
    flip_byte(bad[2], 0.9)  # inside the tensors: the file still loads, its feature weights differ
    truncate(bad[3])
    domain = shipped / "domain-fashion-mnist.pt"
    truncate(domain)
    bad.append(domain)
    before = snapshot(cache) | snapshot(shipped)
    assert main(["data", "verify", "fashion-mnist", "inception", "domain"]) == 2
    out, err = capsys.readouterr()
    for path in bad:
        assert re.search(rf"^BAD .*{re.escape(str(path))}", out, re.M), (path, out)
        assert str(path) in err
    assert len(re.findall(r"^ok ", out, re.M)) == 3  # the two intact dataset files and the MNIST classifier
    assert "5 of 8 files failed verification (nothing was changed)" in err
    assert "ganbench data fetch fashion-mnist inception`" in err and "Traceback" not in err  # a shipped file: reinstall
    assert "reinstall ganbench" in out
    assert snapshot(cache) | snapshot(shipped) == before  # no manifest rewritten, no file replaced, nothing retrained


def test_damaged_conversion_is_rebuilt_from_the_cached_source(tmp_path, monkeypatch, capsys):
    cache = cache_copy(tmp_path, monkeypatch, "weights/*")
    converted = cache / "weights" / CONVERTED_NAME
    truncate(converted)
    w = inception_weights(allow_fetch=False)
    assert w.features_sha256 == PINNED_FEATURES and w.path == converted
    assert "rebuilt it from" in capsys.readouterr().err
    assert main(["data", "verify", "inception"]) == 0  # the rebuilt file passes its pin


def test_damaged_conversion_without_its_source_is_named_with_the_repair(tmp_path, monkeypatch, capsys):
    cache = cache_copy(tmp_path, monkeypatch, "weights/inception-*")
    truncate(cache / "weights" / CONVERTED_NAME)
    with pytest.raises(GanbenchError, match=rf"{re.escape(CONVERTED_NAME)} is damaged .*cached source cannot rebuild "
                                            r"it .*run `ganbench data fetch inception`"):
        inception_weights()
    assert main(["run", "--protocol", "fashion-smoke", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "ganbench data fetch inception" in err and "Traceback" not in err
    # A protocol whose metrics measure in the domain classifier's space never opens the Inception file.
    (spec,) = resolve(load_protocol("fashion-zoo-smoke"), None, ["dcgan"], [0])
    assert "weights/inception-v3-compat" not in spec.identity.eval_parts


def test_2d_protocol_runs_with_a_damaged_inception_file(tmp_path, monkeypatch, capsys):
    cache = cache_copy(tmp_path, monkeypatch, "weights/inception-*")
    truncate(cache / "weights" / CONVERTED_NAME)
    ring = protocol_copy(tmp_path / "p", "ring8-tiny", "ring8", models=["gan-mlp2d"], epochs="1", subset="512",
                         num_samples="500", seeds="[0]")
    assert main(["run", "--protocol", ring, "--device", "cpu"]) == 0
    assert re.search(r"gan-mlp2d +seed 0 +finished", capsys.readouterr().out)


def test_mistyped_data_root_is_an_error_naming_the_path(tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    ring = protocol_copy(tmp_path / "p", "ring8-tiny", "ring8", models=["gan-mlp2d"], epochs="1", subset="512")
    for argv in (["run", "--protocol", ring, "--data-root", str(missing)],
                 ["data", "verify", "fashion-mnist", "--data-root", str(missing)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"--data-root {missing}: no such folder" in err and "Traceback" not in err
    from ganbench.data import load_split

    with pytest.raises(GanbenchError, match=f"--data-root {re.escape(str(missing))}: no such folder"):
        load_split("fashion-mnist", "test", missing)  # the Python API refuses it too
