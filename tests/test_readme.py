"""The README documents every switch: each environment variable the code reads is in its table."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
READ = re.compile(r"""(?:environ(?:\.get|\.setdefault)?\(|environ\[|getenv\()\s*["']([A-Z][A-Z0-9_]+)["']""")
CONSTANT = re.compile(r"""^([A-Z_]+_ENV)\s*=\s*["']([A-Z][A-Z0-9_]+)["']""", re.M)


def variables_read() -> set[str]:
    """Every environment variable named in an os.environ / os.getenv call (or a *_ENV constant) of the package,
    the set-up scripts' ${VAR} reads included."""
    names: set[str] = set()
    for path in (REPO / "ganbench").rglob("*.py"):
        text = path.read_text()
        names |= set(READ.findall(text)) | {v for _, v in CONSTANT.findall(text)}
        if 'f"GANBENCH_{kind.upper()}_PATH"' in text:  # spec_dirs("protocols" | "zoo")
            names |= {"GANBENCH_PROTOCOLS_PATH", "GANBENCH_ZOO_PATH"}
    for script in (REPO / "scripts").glob("*.sh"):
        names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", script.read_text()))
    return names


def test_every_environment_variable_read_is_in_the_readme_table():
    names = variables_read()
    assert {"GANBENCH_HOME", "GANBENCH_OFFLINE", "GANBENCH_DOMAIN_WEIGHTS", "GANBENCH_ZOO_PATH"} <= names  # the scan works
    table = (REPO / "README.md").read_text().split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    missing = sorted(n for n in names if f"`{n}`" not in table)
    assert not missing, f"read by the code but not in the README's table: {missing}"


def readme_block(after: str) -> str:
    """The first ```python block of the README after the line that starts with ``after``."""
    text = (REPO / "README.md").read_text()
    start = text.index(after)
    return text[start:].split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_gate_for_ones_own_generator_runs_verbatim(tmp_path, monkeypatch):
    """The README's "quality gate for your generator" block, as written: three tracked evaluations, a baseline,
    and the pytest test, which passes for a fourth generator of the same recipe; one whose weights are 10x
    (saturated salt-and-pepper noise: domain FID ~211 against the baseline's ~135) fails the same assertion
    with the gate's table."""
    import pytest
    import torch

    import ganbench

    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_block("**A quality gate for your generator**"), "README.md", "exec"), namespace)
    baseline = tmp_path / "baselines" / "mygan.json"
    assert baseline.is_file() and sorted(ganbench.reporting.gate.load_baseline(baseline)["models"]["mygan"]["seeds"]) == [0, 1, 2]
    namespace["test_mygan_quality"]()  # the README's test passes
    saturated = namespace["my_generator"](4)
    with torch.no_grad():
        saturated[0].weight.mul_(10)
    worse = ganbench.evaluate(saturated, "fashion-smoke", metrics=namespace["METRICS"], track=True, name="mygan",
                              seed=4)
    with pytest.raises(AssertionError, match="quality regression against baselines/mygan.json"):
        ganbench.assert_no_regression(worse, "baselines/mygan.json")
