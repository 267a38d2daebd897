"""The layering is checked, not only described: import-linter's contracts (pyproject.toml) hold, imports inside
functions are only the optional heavy dependencies, each with its reason, and functions stay short."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

from pyflakes import checker, messages

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


def _arch_stats():
    """scripts/arch_stats.py, the script that counts the modules in import cycles (not a package: loaded by path)."""
    spec = importlib.util.spec_from_file_location("arch_stats", PACKAGE.parent / "scripts" / "arch_stats.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def modules_in_import_cycles(package: Path) -> list[list[str]]:
    return _arch_stats().modules_in_cycles(package)


def test_no_module_is_in_an_import_cycle_package_inits_included():
    """Registries are filled by a package ``__init__`` that lists its plug-in modules; none of them imports the
    package back (they import its ``base`` module), so no module is in an import cycle."""
    assert modules_in_import_cycles(PACKAGE) == []


def test_the_cycle_count_sees_a_child_importing_its_package(tmp_path):
    copy = tmp_path / "ganbench"
    subprocess.run(["cp", "-r", str(PACKAGE), str(copy)], check=True)
    mlp = copy / "nets" / "mlp.py"
    mlp.write_text(mlp.read_text() + "\nfrom ganbench.nets import initialise  # noqa\n")
    cycles = modules_in_import_cycles(copy)
    assert len(cycles) == 1 and {"ganbench.nets", "ganbench.nets.mlp"} <= set(cycles[0])


HOOKS = ("set_progress", "phase_index", "progress_info", "translate", "reconstruct", "init_embeddings", "init_weights",
         "materialise")


def test_optional_interfaces_are_declared_not_probed_with_hasattr():
    """The engines ask ``isinstance(x, <Protocol in ganbench.core.hooks>)``, never ``hasattr(x, "<hook>")``, and no
    module names a dataset to decide what to do with it (datasets carry ``mixture`` and ``stacked_from``)."""
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("hasattr", "getattr") \
                    and len(node.args) > 1 and getattr(node.args[1], "value", None) in HOOKS:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.args[1].value}")
            if isinstance(node, ast.Compare) and any(getattr(c, "value", None) in ("stacked-mnist", "ring8", "grid25")
                                                     for c in node.comparators):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} compares with a dataset name")
    assert not bad, "\n".join(bad)


def _string_constants(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_validation_and_identity_name_no_plug_in():
    """What a name may be, the registries say: spec validation and identity name no dataset, architecture,
    initialisation, loss, optimizer, metric, extractor or conditioning input (the dataclasses of spec/types.py
    may still give one as a field's default)."""
    from ganbench.core import registry

    names = {*registry.DATASETS, *registry.NETS, *registry.INITS, *registry.LOSSES, *registry.OPTIMIZERS,
             *registry.METRICS, *registry.EXTRACTORS, *(v for vs in registry.CONDITIONAL_INPUTS.values() for v in vs)}
    assert {"adam", "bce", "fid", "memorisation", "stacked-mnist", "projection"} <= names  # the registries are full
    named = {f"{path.name}: {s!r}" for path in (PACKAGE / "spec" / "protocol.py", PACKAGE / "spec" / "identity.py")
             for s in _string_constants(path) if s in names}
    assert not named, sorted(named)


def _undefined_names(source: str, filename: str) -> list[str]:
    tree = ast.parse(source, filename)
    return [f"{filename}:{m.lineno} {m.message % m.message_args}" for m in checker.Checker(tree, filename=filename).messages
            if isinstance(m, (messages.UndefinedName, messages.UndefinedLocal, messages.UndefinedExport))]


def test_no_name_is_used_undefined():
    """Every name the package uses is defined (pyflakes): a NameError on a line only one slow test reaches is
    found here, by reading."""
    assert _undefined_names("def f():\n    return images\n", "probe.py")  # the check sees one
    found = [m for path in sorted(PACKAGE.rglob("*.py")) for m in _undefined_names(path.read_text(), str(path))]
    assert not found, "\n".join(found)


# --------------------------------------------------------------------------- the command line over the API

CLI = PACKAGE / "cli.py"
OPTION_TABLE = "OPTIONS"  # cli.py's table of the options several subcommands share (added by ``cli.common``)


def _is_option(text: str) -> bool:
    """A long option as argparse is given it: ``--out``, ``--concurrent-seeds`` (not a help text naming one)."""
    return text.startswith("--") and text[2:3].isalnum() and all(ch.isalnum() or ch == "-" for ch in text[2:])


def _imported_modules(node: ast.AST) -> list[str]:
    """The modules an import statement takes names from (``from ganbench import api`` -> ``ganbench.api``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    module = ".".join(["ganbench", *([node.module] if node.module else [])]) if node.level else node.module or ""
    return [f"{module}.{a.name}" for a in node.names] if module == "ganbench" else [module]


def cli_breaches(source: str) -> list[str]:
    """What in the source of cli.py breaks its contract: an import from ganbench other than ``ganbench.api``
    (a subcommand parses, calls the API and prints: the API is all it needs, ``GanbenchError`` included), or a
    long option defined in more than one place (an ``add_argument`` call, or the shared table)."""
    tree = ast.parse(source)
    bad = [f"line {node.lineno}: imports {m}" for node in ast.walk(tree) for m in _imported_modules(node)
           if m.split(".")[0] == "ganbench" and m != "ganbench.api"]
    defined: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            places = node.args
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == OPTION_TABLE for t in node.targets):
            places = [node.value]
        else:
            continue
        for c in (c for place in places for c in ast.walk(place)):
            if isinstance(c, ast.Constant) and isinstance(c.value, str) and _is_option(c.value):
                defined[c.value] = defined.get(c.value, 0) + 1
    assert {"--out", "--protocol", "--concurrent-seeds", "--executor"} <= set(defined)  # the scan sees both places
    return bad + [f"{option} defined {n} times" for option, n in sorted(defined.items()) if n > 1]


def test_the_cli_imports_only_the_api_and_defines_each_option_once():
    assert cli_breaches(CLI.read_text()) == []


def test_the_cli_check_catches_a_pipeline_import_and_an_option_defined_twice():
    source = CLI.read_text()
    assert cli_breaches(source + "\nfrom ganbench.pipeline.sweep import sweep\n")[-1].endswith(
        "imports ganbench.pipeline.sweep")
    assert cli_breaches(source + "\nfrom ganbench import api, reporting\n")[-1].endswith("imports ganbench.reporting")
    assert cli_breaches(source + "\nfrom .core import errors\n")[-1].endswith("imports ganbench.core")
    again = source + '\n\ndef _again(p):\n    p.add_argument("--out", help="a second --out")\n'
    assert cli_breaches(again) == ["--out defined 2 times"]
    table = source.replace('"seeds": (("--seeds",)', '"seeds": (("--protocol",)', 1)
    assert table != source and "--protocol defined 2 times" in cli_breaches(table)
