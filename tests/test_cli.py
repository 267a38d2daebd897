"""The ganbench command: exit codes 0 / 1 / 2 and readable errors, through a real subprocess."""

import os
import subprocess
import sys

import pytest

from ganbench.cli import main


def ganbench(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ganbench.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_help_everywhere():
    for args in ([], ["run"], ["data"], ["data", "fetch"], ["list"], ["show"], ["sweep"]):
        res = ganbench(*args, "--help")
        assert res.returncode == 0 and "usage: ganbench" in res.stdout


def test_list_shows_protocols_and_models():
    res = ganbench("list")
    assert res.returncode == 0
    assert "fashion-50ep" in res.stdout and "fashion-smoke" in res.stdout and "wgan-gp" in res.stdout


@pytest.mark.parametrize("args, message", [
    (["run", "--protocol", "nope"], "Unknown protocol 'nope'. Available:"),
    (["run", "--protocol", "fashion-smoke", "--models", "lsgan"], "not part of protocol"),
    (["run", "--protocol", "fashion-smoke", "--device", "cuda:0"], "CUDA is not available"),
    (["run", "--protocol", "fashion32-smoke", "--models", "progan-lite", "--seeds", "0", "1", "--concurrent-seeds"],
     "progan-lite cannot train its seeds together: G follows a training-progress schedule"),
    (["data", "fetch", "cifar"], "Unknown data name 'cifar'"),
    (["show", "0123456789abcdef"], "no run '0123456789abcdef'"),
])
def test_user_errors_exit_2_without_traceback(args, message):
    res = ganbench(*args)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr


def test_bad_arguments_exit_2():
    assert ganbench("run").returncode == 2  # --protocol is required
    assert ganbench("frobnicate").returncode == 2


def test_finished_run_exits_0_and_show_reads_it(tiny_protocol, capsys):
    assert main(["run", "--protocol", tiny_protocol(), "--device", "cpu"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert "finished" in line and "fid20_test" in line
    run_id = line.split(" run ")[1].split()[0]
    assert main(["show", run_id]) == 0
    shown = capsys.readouterr().out
    assert "FINISHED" in shown and "fid20_test" in shown and "grids/epoch_001.png" in shown


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

    from ganbench.track import TAG_MESSAGE, TAG_STATUS, tracking_uri

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
