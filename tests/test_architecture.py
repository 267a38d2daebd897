"""The layering is checked, not only described: import-linter's contracts (pyproject.toml) hold, imports inside
functions are only the optional heavy dependencies, each with its reason, and functions stay short."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ganbench"
# Optional dependencies a function may import when it needs them, so that ganbench works without them.
LAZY_ALLOWED = ("ray", "playwright", "safetensors")
LONGEST_FUNCTION = 60  # lines, docstring included


def test_import_linter_contracts_hold():
    """Layers (a module imports only from its own layer or below) and no cycle between sibling packages/modules."""
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "2 kept, 0 broken" in res.stdout


def test_import_linter_catches_an_upward_import(tmp_path):
    """The contract can fail: a copy of the package where the spec layer imports the pipeline is rejected."""
    copy = tmp_path / "ganbench"
    subprocess.run(["cp", "-r", str(PACKAGE), str(copy)], check=True)
    protocol = copy / "spec" / "protocol.py"
    protocol.write_text(protocol.read_text() + "\nfrom ganbench.pipeline import run as _upward  # noqa\n")
    (tmp_path / "pyproject.toml").write_text((PACKAGE.parent / "pyproject.toml").read_text())
    lint = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert res.returncode != 0
    assert "ganbench.spec is not allowed to import ganbench.pipeline" in res.stdout


def _functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path, node


def test_imports_inside_functions_are_optional_dependencies_with_a_reason():
    bad = []
    for path, fn in _functions():
        lines = path.read_text().splitlines()
        for node in ast.walk(fn):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno} import {module}"
            if module.split(".")[0] not in LAZY_ALLOWED:
                bad.append(where)
            elif "#" not in lines[node.lineno - 1] and not lines[node.lineno - 2].strip().startswith("#"):
                bad.append(where + " (no comment giving the reason)")
    assert not bad, "\n".join(bad)


def test_functions_are_short():
    long = [f"{path.relative_to(PACKAGE.parent)}:{fn.lineno} {fn.name} ({fn.end_lineno - fn.lineno + 1} lines)"
            for path, fn in _functions() if fn.end_lineno - fn.lineno + 1 > LONGEST_FUNCTION]
    assert not long, "\n".join(long)
