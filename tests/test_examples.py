"""The two example training loops of examples/ (a tutorial DCGAN loop and a WGAN-GP loop, each instrumented
with ganbench.Monitor in three lines), run for a short budget: the healthy ones are not flagged, each
classic failure is named with the step it started at."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread_module):
    """Short runs on a shared 2-core machine (see conftest.one_thread_module)."""


def example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flagged(diag) -> list[tuple[str, str, int]]:
    return [(f.name, f.severity, f.start_step) for f in diag.findings if f.severity != "info"]


@pytest.mark.slow
@pytest.mark.parametrize("name, steps", [("dcgan_loop", 300), ("wgan_gp_loop", 100)])
def test_the_healthy_example_loop_is_not_flagged(name, steps, tmp_path):
    diag = example(name).main(["--out", str(tmp_path), "--steps", str(steps)])
    assert flagged(diag) == [] and (tmp_path / "records.parquet").is_file() and (tmp_path / "diagnosis.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name, steps, finding, by_step", [
    ("dcgan_loop", 150, "d-dominance", 40),  # the saturating G loss against a 5x faster D: G's gradient vanishes
    ("wgan_gp_loop", 100, "critic-gap-explode", 100),  # no gradient penalty: the critic gap grows without bound
])
def test_the_failing_example_loop_is_named_with_its_step(name, steps, finding, by_step, tmp_path, capsys):
    diag = example(name).main(["--out", str(tmp_path), "--steps", str(steps), "--fail"])
    hits = [f for f in diag.findings if f.name == finding and f.severity == "failure"]
    assert hits and hits[0].start_step <= by_step, flagged(diag)
    said = capsys.readouterr().out  # announced live, when it started
    assert f"ganbench: failure {finding} from step {hits[0].start_step}" in said
