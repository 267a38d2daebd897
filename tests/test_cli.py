"""The ganbench command: exit codes 0 / 1 / 2 and readable errors. Most cases call ``main(argv)`` in this process
(an interpreter start-up with torch and MLflow costs seconds); a few go through a real subprocess, where the
process is what is tested: the exit code a shell sees, ``--help``, Ctrl-C, the current folder."""

import os
import re
import subprocess
import sys
import warnings

import pytest

from ganbench import api
from ganbench.cli import build_parser, in_command_words, main
from ganbench.core.errors import GanbenchError
from test_cli_eval import GEN_MODULE  # the same tiny generator module


def ganbench(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ganbench.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def exit_code(argv: list[str]) -> int | str | None:
    """The code argparse exits with (``--help``, bad arguments), which ``main`` does not return."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    return exit_.value.code


def test_help_from_the_shell():
    res = ganbench("--help")
    assert res.returncode == 0 and "usage: ganbench" in res.stdout


def test_help_everywhere(capsys):
    for args in ([], ["run"], ["data"], ["data", "fetch"], ["list"], ["show"], ["sweep"], ["reproduce"]):
        assert exit_code([*args, "--help"]) == 0
        assert "usage: ganbench" in capsys.readouterr().out


def test_list_shows_protocols_and_models(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "fashion-50ep" in out and "fashion-smoke" in out and "wgan-gp" in out


@pytest.mark.parametrize("args, message", [
    (["run", "--protocol", "nope"], "Unknown protocol 'nope'. Available:"),
    (["run", "--protocol", "fashion-smoke", "--models", "lsgan"], "not part of protocol"),
    (["run", "--protocol", "fashion-smoke", "--device", "cuda:0"], "CUDA is not available"),
    (["run", "--protocol", "fashion32-smoke", "--models", "progan-lite", "--seeds", "0", "1", "--concurrent-seeds"],
     "progan-lite cannot train its seeds together: G follows a training-progress schedule"),
    (["data", "fetch", "cifar"], "Unknown data name 'cifar'"),
    (["show", "0123456789abcdef"], "no run '0123456789abcdef'"),
    (["run", "--protocol", "fashion-smoke", "--set", "tricks.ema"], "--set 'tricks.ema': expected KEY=VALUE"),
    (["run", "--protocol", "fashion-smoke", "--set", "tricks.emma=0.9"], "unknown key 'emma'"),
    (["run", "--protocol", "fashion-smoke", "--threads", "-1"], "--threads -1: expected a positive number of threads"),
])
def test_user_errors_exit_2_without_traceback(args, message, capsys):
    code = main(args)  # an exception other than GanbenchError would end the test with its traceback
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err


def test_a_user_error_exits_2_from_the_shell_without_traceback():
    """What a shell sees: ``sys.exit(main())`` gives it the exit code, and stderr the message alone."""
    res = ganbench("run", "--protocol", "nope")
    assert res.returncode == 2, res.stderr
    assert "Unknown protocol 'nope'. Available:" in res.stderr and "Traceback" not in res.stderr


def test_bad_arguments_exit_2(capsys):
    assert exit_code(["run"]) == 2  # --protocol is required
    assert exit_code(["frobnicate"]) == 2


def test_errors_of_the_library_are_said_in_the_options_of_the_command(capsys):
    """The pipeline names its parameters (``executor='ray'``); the command says them as its options."""
    with pytest.raises(GanbenchError, match=re.escape("address='127.0.0.1:1' names a Ray cluster: use it with "
                                                      "executor='ray'")):
        api.sweep("ring8", address="127.0.0.1:1")
    assert main(["sweep", "--protocol", "ring8", "--address", "127.0.0.1:1"]) == 2
    assert "error: --address 127.0.0.1:1 names a Ray cluster: use it with --executor ray" in capsys.readouterr().err
    assert main(["sweep", "--protocol", "ring8", "--max-retries", "-1"]) == 2
    assert "--max-retries -1, --cpus-per-task 1: expected retries >= 0" in capsys.readouterr().err
    words = {"device": "--device", "seed": "--seed", "address": "--address"}
    said = in_command_words("--set tricks.seed=3 and d_loss=lossD stay; device='cuda:1' with address='a b'", words)
    assert said == "--set tricks.seed=3 and d_loss=lossD stay; --device cuda:1 with --address 'a b'"


def test_concurrent_seeds_is_one_option_of_one_form():
    """``--concurrent-seeds`` / ``--no-concurrent-seeds`` wherever seeds can train together; ``reproduce`` leaves it
    unset (None: each entry of the tiers file says) unless given."""
    parse = build_parser().parse_args
    for command in (["run", "--protocol", "p"], ["sweep", "--protocol", "p"], ["reproduce", "--tier", "cpu"]):
        assert parse([*command, "--concurrent-seeds"]).concurrent_seeds is True
        assert parse([*command, "--no-concurrent-seeds"]).concurrent_seeds is False
    assert parse(["run", "--protocol", "p"]).concurrent_seeds is False
    assert parse(["sweep", "--protocol", "p"]).concurrent_seeds is False
    assert parse(["reproduce", "--tier", "cpu"]).concurrent_seeds is None


def test_finished_run_exits_0_and_show_reads_it(tiny_protocol, capsys):
    assert main(["run", "--protocol", tiny_protocol(), "--device", "cpu"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert "finished" in line and "fid_20_test" in line
    run_id = line.split(" run ")[1].split()[0]
    assert main(["show", run_id]) == 0
    shown = capsys.readouterr().out
    assert "FINISHED" in shown and "fid_20_test" in shown and "grids/epoch_001.png" in shown


def test_diverged_run_exits_1(tiny_protocol, tmp_path, monkeypatch, capsys):
    # An induced divergence through the real zoo mechanism: a G learning rate of 1e30 blows up the weights.
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "exploding.toml").write_text(
        "[generator]\narch='dcgan28-g'\n[discriminator]\narch='dcgan28-d'\n[loss]\nname='bce'\n"
        "[optim_g]\nname='rmsprop'\nlr=1e30\n[optim_d]\nname='rmsprop'\nlr=1e30\n")
    monkeypatch.setenv("GANBENCH_ZOO_PATH", str(zoo))
    assert main(["run", "--protocol", tiny_protocol(models=["exploding"], epochs=3)]) == 1
    assert "diverged" in capsys.readouterr().out


def test_ctrl_c_names_the_resume_command_which_finishes_the_run(tiny_ring):
    """SIGINT after the first checkpoint: no traceback, exit 130, stderr names the exact command; that
    command continues the same MLflow run to the end and drops the run's 'interrupted' message."""
    import shlex
    import signal
    import time
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    from ganbench.core.track import TAG_MESSAGE, TAG_STATUS, tracking_uri

    path = tiny_ring(epochs=5, subset=25600, name="ctrlc")  # 100 steps an epoch: seconds per epoch
    args = ["run", "--protocol", path, "--device", "cpu"]
    proc = subprocess.Popen([sys.executable, "-m", "ganbench.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    home = Path(os.environ["GANBENCH_HOME"])
    deadline = time.monotonic() + 240
    while not list(home.glob("runs/ctrlc/*/*/seed0/checkpoints/last.pt")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    command = f"ganbench run --protocol {path} --device cpu --resume"
    assert command in err
    client = MlflowClient(tracking_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("ganbench/ctrlc").experiment_id])
    assert run.info.status == "KILLED" and "interrupted" in run.data.tags[TAG_MESSAGE]
    assert main(shlex.split(command)[1:]) == 0  # the printed command, as a user would paste it
    (again,) = client.search_runs([run.info.experiment_id])
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert again.data.tags[TAG_STATUS] == "finished" and TAG_MESSAGE not in again.data.tags
    assert again.data.metrics["epochs_done"] == 5




def _run_folder(tmp_path, protocol: str, checkpoint: bytes | None = None, state=None):
    """A run folder as `ganbench run` leaves it (spec.json, final.pt) with the given final.pt content."""
    import json

    import torch

    from ganbench.extractors import inception_weights
    from ganbench.spec.protocol import load_protocol, resolve

    (spec,) = resolve(load_protocol(protocol), inception_weights().features_sha256, ["dcgan"], [0])
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "spec.json").write_text(json.dumps(spec.to_dict()))
    if checkpoint is not None:
        (folder / "final.pt").write_bytes(checkpoint)
    else:
        torch.save(state, folder / "final.pt")
    return folder


def _bad_input(kind: str, tmp_path, protocol: str) -> tuple[list[str], str, str]:
    """(arguments, the file the message must name, what it must say) of one bad input."""
    import numpy as np
    import torch

    if kind == "empty-npz":
        np.savez(tmp_path / "empty.npz", samples=np.zeros((0, 28, 28, 1), np.float32))
        return ["eval", "--protocol", protocol, "--samples", str(tmp_path / "empty.npz"), "--no-track"], \
            "empty.npz", "holds no images"
    if kind == "unreadable-png":
        folder = tmp_path / "pngs"
        folder.mkdir()
        (folder / "0000.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
        return ["eval", "--protocol", protocol, "--samples", str(folder), "--no-track"], "0000.png", \
            "not a readable PNG image"
    if kind == "png-size":
        from PIL import Image

        folder = tmp_path / "pngs"
        folder.mkdir()
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / "0000.png")
        return ["eval", "--protocol", protocol, "--samples", str(folder), "--no-track"], "0000.png", \
            "expected a 28x28 image, got 32x32"
    if kind == "garbage-npz":
        (tmp_path / "s.npz").write_bytes(b"PK\x03\x04 not a zip archive")
        return ["eval", "--protocol", protocol, "--samples", str(tmp_path / "s.npz"), "--no-track"], "s.npz", \
            "not a readable .npz file without pickles"
    if kind in ("eval-garbage", "eval-pickle"):
        (tmp_path / "mygen.py").write_text(GEN_MODULE)
        path = tmp_path / "g.pt"
        if kind == "eval-garbage":
            path.write_bytes(b"these bytes are no checkpoint")
        else:
            sys.path.insert(0, str(tmp_path))
            try:
                import importlib

                torch.save(importlib.import_module("mygen").make(), path)  # a pickled module
            finally:
                sys.path.remove(str(tmp_path))
                sys.modules.pop("mygen", None)
        what = "not a PyTorch checkpoint" if kind == "eval-garbage" else "holds pickled Python objects"
        return ["eval", "--protocol", protocol, "--generator", "mygen:make", "--checkpoint", str(path),
                "--no-track"], "g.pt", what
    if kind == "sample-pickle":
        folder = _run_folder(tmp_path, protocol, state=torch.nn.Linear(2, 2))
        return ["sample", str(folder), "--n", "4"], "final.pt", "holds pickled Python objects"
    if kind == "sample-not-ganbench":
        folder = _run_folder(tmp_path, protocol, state={"weight": torch.zeros(3)})
        return ["sample", str(folder), "--n", "4"], "final.pt", "not a ganbench checkpoint"
    if kind == "sample-wrong-weights":
        folder = _run_folder(tmp_path, protocol, state={"G": {"weight": torch.zeros(3)}})
        return ["sample", str(folder), "--n", "4"], "final.pt", "its weights do not fit the generator of model 'dcgan'"
    assert kind == "interpolate-garbage"
    folder = _run_folder(tmp_path, protocol, checkpoint=b"garbage")
    return ["interpolate", str(folder)], "final.pt", "not a PyTorch checkpoint"


@pytest.mark.parametrize("kind", ["empty-npz", "unreadable-png", "png-size", "garbage-npz", "eval-garbage", "eval-pickle", "sample-pickle",
                                  "sample-not-ganbench", "sample-wrong-weights", "interpolate-garbage"])
def test_bad_files_exit_2_naming_the_file(kind, tmp_path, eval_protocol, capsys, monkeypatch):
    """Each used to end in a raw traceback with exit 1 (torch's advice to load with weights_only=False
    included); now exit 2 with a message that names the file and says what was expected."""
    args, name, what = _bad_input(kind, tmp_path, eval_protocol(n=200, metrics=("fid",), name="files"))
    monkeypatch.chdir(tmp_path)  # run from there, as a user would: `mygen` is looked up in the current folder
    monkeypatch.setattr(sys, "path", list(sys.path))  # which that lookup appends to the path: undone after the test
    try:
        with warnings.catch_warnings(record=True) as caught:  # what a terminal would show on stderr
            warnings.simplefilter("always")
            code = main(args)
    finally:
        sys.modules.pop("mygen", None)
    stderr = capsys.readouterr().err + "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
    assert code == 2, stderr[-3000:]
    assert name in stderr and what in stderr, stderr
    assert "Traceback" not in stderr and "weights_only" not in stderr


def test_generator_module_in_the_current_folder_needs_no_pythonpath(tmp_path, eval_protocol):
    """The `ganbench` console script does not put the current folder on the path (``python -P`` neither):
    a module:function there is found all the same."""
    import torch

    (tmp_path / "mygen.py").write_text(GEN_MODULE)
    torch.save({"fc.weight": torch.zeros(784, 100), "fc.bias": torch.zeros(784)}, tmp_path / "g.pt")
    protocol = eval_protocol(n=200, metrics=("fid",), name="cwd")
    res = subprocess.run([sys.executable, "-P", "-m", "ganbench.cli", "eval", "--protocol", protocol, "--generator",
                          "mygen:make", "--checkpoint", "g.pt", "--no-track", "--json"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    import json

    fid = json.loads(res.stdout)["results"]["domain_fid_200_test"]
    assert fid["value"] > fid["floor"]  # a constant grey generator: far from the data
