"""The shape of the house, measured from the source alone (no import, no test run).

    python benchmarks/house_stats.py [--root DIR] [--json]

Prints lines per package, the ten longest modules and the ten longest functions (lines of code: lines that are
not blank, not comments and not docstrings, counted through ``ast``), the import circles and the upward imports
(every ``import`` statement, those inside functions included, read through :func:`import_graph`, the same walker
``tests/test_house.py`` enforces), and the README's line count.

The layering is :data:`LAYERS`, bottom first: a module may import its own layer and the layers below it, never
one above.  A deprecated module (one that calls ``layermap._moved.moved``) re-exports from its new home; it is
left out of the graph as an importer, and a live module that imports one is reported.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import tokenize
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("layermap", "proxy_tasks")

# Bottom first.  A module belongs to the longest prefix listed; within one layer imports may go either way, as long
# as they make no circle.  Old names (evolution, plots_front) keep the place they documented, so the same table
# measures the tree before and after the move.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("proxy_tasks",),
    ("layermap.errors", "layermap.versions", "layermap.logs", "layermap.stats", "layermap._moved"),
    ("layermap.config", "layermap.presets", "layermap.mapping", "layermap.shape", "layermap.extraction"),
    ("layermap.distill",),
    ("layermap.deploy",),
    ("layermap.storage",),
    ("layermap.executors",),
    ("layermap.evaluators",),
    ("layermap.report",),
    ("layermap.searching", "layermap.evolution"),
    ("layermap.exporting",),
    ("layermap.final",),
    ("layermap.plots", "layermap.plots_front"),
    ("layermap.study",),
    ("layermap.api", "layermap"),
    ("layermap.cli", "layermap.__main__"),
)


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the project: dotted name -> file (a package is its ``__init__.py``)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _target(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _type_checking_only(tree: ast.AST) -> set[int]:
    """The ids of the nodes inside ``if TYPE_CHECKING:`` blocks: imports for annotations alone, never executed."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return skipped


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """The project modules ``module`` imports, each with the line of its first import (imports inside functions
    included; those under ``if TYPE_CHECKING:``, for annotations alone, left out)."""
    tree = ast.parse(path.read_text("utf-8"))
    is_package = path.name == "__init__.py"
    found: dict[str, int] = {}
    skipped = _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, is_package)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for name in names:
            target = _target(name, modules)
            if target and target != module:
                found.setdefault(target, node.lineno)
    return found


def is_shim(path: Path) -> bool:
    """A deprecated module: it re-exports from a new home through ``from layermap._moved import moved``."""
    return any(isinstance(node, ast.ImportFrom) and (node.module or "").endswith("_moved")
               and any(alias.name == "moved" for alias in node.names)
               for node in ast.parse(path.read_text("utf-8")).body)


def import_graph(root: Path = ROOT) -> tuple[dict[str, dict[str, int]], set[str]]:
    """(module -> {imported module: line}, the deprecated modules); deprecated modules import nothing here."""
    modules = project_modules(root)
    shims = {name for name, path in modules.items() if is_shim(path)}
    graph = {name: ({} if name in shims else imports_of(name, path, modules)) for name, path in modules.items()}
    return graph, shims


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The import circles: each strongly connected component of more than one module, as one circle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:   # Tarjan, recursive: the graph is a few hundred modules
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_circle(component, graph) for component in sorted(components)]


def _circle(component: list[str], graph: dict[str, dict[str, int]]) -> list[str]:
    """One circle inside a strongly connected component: a -> b -> ... -> a (a shortest one back to its first)."""
    start, inside = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(graph.get(node, {})):
                if nxt == start:
                    return paths[node] + [start]
                if nxt in inside and nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    return component


def layer_of(module: str) -> int:
    best, rank = -1, len(LAYERS)
    for position, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), position
    return rank


def upward_imports(graph: dict[str, dict[str, int]], shims: set[str]) -> list[str]:
    """Each import of a module in a higher layer, or of a deprecated module, as ``a:line -> b``."""
    found = []
    for module, targets in sorted(graph.items()):
        for target, line in sorted(targets.items()):
            if target in shims:
                found.append(f"{module}:{line} -> {target} (deprecated path)")
            elif layer_of(target) > layer_of(module):
                found.append(f"{module}:{line} -> {target}")
    return found


def code_lines(source: str, first: int = 1, last: int | None = None) -> int:
    """Lines of code between ``first`` and ``last``: not blank, not only a comment, not a docstring."""
    docstring_lines: set[int] = set()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            head = node.body[0]
            if isinstance(head, ast.Expr) and isinstance(head.value, ast.Constant) and isinstance(head.value.value, str):
                docstring_lines.update(range(head.lineno, head.end_lineno + 1))
    code: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                          tokenize.ENDMARKER):
            continue
        code.update(range(token.start[0], token.end[0] + 1))
    last = last or len(source.splitlines())
    return len({line for line in code - docstring_lines if first <= line <= last})


def functions(path: Path, module: str) -> list[tuple[int, str, ast.AST]]:
    """(lines of code, ``module.qualname``, node) of every function and method in a file."""
    source = path.read_text("utf-8")
    found = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                found.append((code_lines(source, child.lineno, child.end_lineno), f"{module}.{name}", child))
                walk(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")
            else:
                walk(child, prefix)

    walk(ast.parse(source), "")
    return found


def stats(root: Path = ROOT) -> dict:
    modules = project_modules(root)
    graph, shims = import_graph(root)
    per_package: dict[str, int] = defaultdict(int)
    module_lines = []
    all_functions = []
    for name, path in modules.items():
        text = path.read_text("utf-8")
        lines = len(text.splitlines())
        folder = path.parent.relative_to(root)
        top = Path(*folder.parts[:2])
        per_package[f"{top}/ (top-level modules)" if folder == Path("layermap") else f"{top}/"] += lines
        module_lines.append((lines, code_lines(text), name))
        all_functions.extend((n, qual) for n, qual, _ in functions(path, name))
    readme = root / "README.md"
    return {
        "lines_per_package": dict(sorted(per_package.items(), key=lambda kv: -kv[1])),
        "total_lines": sum(per_package.values()),
        "modules": len(modules), "deprecated_modules": len(shims),
        "longest_modules": [f"{name}: {lines} lines ({code} of code)" for lines, code, name in sorted(module_lines, reverse=True)[:10]],
        "longest_functions": [f"{qual}: {n} lines of code" for n, qual in sorted(all_functions, reverse=True)[:10]],
        "modules_over_600_lines": sum(1 for lines, _, _ in module_lines if lines > 600),
        "functions_over_80_lines_of_code": sum(1 for n, _ in all_functions if n > 80),
        "import_circles": [" -> ".join(circle) for circle in cycles(graph)],
        "upward_imports": upward_imports(graph, shims),
        "readme_lines": len(readme.read_text("utf-8").splitlines()) if readme.exists() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(ROOT), help="a checkout of layermap (default: this one)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args()
    figures = stats(Path(args.root))
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for key, value in figures.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for name, lines in value.items():
                print(f"  {lines:6d}  {name}")
        elif isinstance(value, list):
            print(f"{key}: {len(value)}")
            for item in value:
                print(f"  {item}")
        else:
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
