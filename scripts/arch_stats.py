"""The architecture's measurable shape: modules in import cycles, function-local imports, longest functions.

Usage: python scripts/arch_stats.py [package_dir]   (default: ganbench)
Every import counts, module-level or inside a function, since a function-local import still ties the modules;
a module that names its own package (``from ganbench.nets import Architecture`` in ``ganbench.nets.mlp``) imports
that package's ``__init__``, which makes a cycle when the ``__init__`` imports it back.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported(node: ast.AST, here: str, is_pkg: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            pkg = here.split(".") if is_pkg else here.split(".")[:-1]
            pkg = pkg[: len(pkg) - (node.level - 1)]
            base = ".".join(pkg + ([base] if base else []))
        return [f"{base}.{a.name}" for a in node.names] + [base]
    return []


def scan(root: Path):
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    local_imports: list[tuple[str, int, str]] = []
    functions: list[tuple[int, str]] = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text())
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{mod}.{node.name}"))
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        names = imported(inner, mod, is_pkg)
                        local_imports.append((mod, inner.lineno, names[0] if names else "?"))
            for name in imported(node, mod, is_pkg):
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name and name != mod:  # what it names, its own package's __init__ included (a back-import)
                    edges[mod].add(name)
                # importing a.b.c runs a/__init__ and a/b/__init__ first: the parents are imported too (a module's
                # own ancestors are running already when it runs: not an edge)
                while name:
                    if name != mod and not mod.startswith(name + "."):
                        edges[mod].add(name)
                    name = name.rpartition(".")[0]
    # a function-local import was counted once per enclosing function (nested functions): keep unique lines
    local_imports = sorted(set(local_imports))
    return modules, edges, local_imports, functions


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def modules_in_cycles(root: Path) -> list[list[str]]:
    """The import cycles (strongly connected components of more than one module) of a package, sorted."""
    return sorted(sorted(c) for c in strongly_connected(scan(root)[1]) if len(c) > 1)


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "ganbench")
    modules, edges, local_imports, functions = scan(root)
    cycles = modules_in_cycles(root)
    in_cycles = sum(len(c) for c in cycles)
    print(f"modules: {len(modules)}")
    print(f"modules in import cycles: {in_cycles}")
    for c in cycles:
        print("  cycle:", ", ".join(sorted(c)))
    print(f"function-local imports: {len(local_imports)}")
    for mod, line, name in local_imports:
        print(f"  {mod}:{line} {name}")
    functions.sort(reverse=True)
    print("longest functions:")
    for n, name in functions[:10]:
        print(f"  {n:4d} {name}")


if __name__ == "__main__":
    main()
