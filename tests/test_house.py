"""The house keeps its shape (docs/architecture.md): imports point down, no circle, no module or function too long
without saying why, every package says what lives there, old import paths still work with a warning.

The walker is ``benchmarks/house_stats.py``'s, so the benchmark measures what this test enforces.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("house_stats", ROOT / "benchmarks" / "house_stats.py")
house = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(house)

MAX_MODULE_LINES = 600
MAX_FUNCTION_CODE_LINES = 80
WHY = "Long because"

# What the move has not reached yet: each entry goes when its commit lands, and the lists end empty.
KNOWN_CIRCLES: set[str] = set()
KNOWN_UPWARD: set[str] = {
}
KNOWN_LONG: set[str] = set()


def _docstring(node: ast.AST) -> str:
    return ast.get_docstring(node) or ""


def test_no_import_circle():
    graph, _ = house.import_graph()
    circles = {" -> ".join(c) for c in house.cycles(graph)}
    assert circles <= KNOWN_CIRCLES, f"import circles: {sorted(circles - KNOWN_CIRCLES)}"


def test_imports_point_down():
    graph, shims = house.import_graph()
    upward = house.upward_imports(graph, shims)
    new = [edge for edge in upward if edge.split(":")[0] + " -> " + edge.split(" -> ")[1] not in KNOWN_UPWARD]
    assert not new, "imports that point up (or at a deprecated path), see docs/architecture.md:\n" + "\n".join(new)


def test_every_module_has_a_layer():
    modules = house.project_modules()
    lost = [name for name in modules if house.layer_of(name) == len(house.LAYERS)]
    assert not lost, f"modules outside every layer of benchmarks/house_stats.py LAYERS: {lost}"


def test_no_module_or_function_too_long_without_saying_why():
    offenders = []
    for name, path in house.project_modules().items():
        source = path.read_text("utf-8")
        tree = ast.parse(source)
        if len(source.splitlines()) > MAX_MODULE_LINES and WHY not in _docstring(tree) and name not in KNOWN_LONG:
            offenders.append(f"{name}: {len(source.splitlines())} lines")
        for lines, qualname, node in house.functions(path, name):
            if lines > MAX_FUNCTION_CODE_LINES and WHY not in _docstring(node) and qualname not in KNOWN_LONG:
                offenders.append(f"{qualname}: {lines} lines of code")
    assert not offenders, (f"over {MAX_MODULE_LINES} lines (module) or {MAX_FUNCTION_CODE_LINES} lines of code "
                           f"(function) without a docstring sentence '{WHY} ...': {offenders}")


def test_every_package_says_what_lives_there_and_what_it_may_import():
    quiet = []
    for init in sorted([*(ROOT / "layermap").rglob("__init__.py"), ROOT / "proxy_tasks" / "__init__.py"]):
        text = _docstring(ast.parse(init.read_text("utf-8")))
        if "import" not in text.lower():
            quiet.append(str(init.relative_to(ROOT)))
    assert not quiet, f"package docstrings that do not say what the package may import: {quiet}"


def _shims() -> dict[str, list[str]]:
    """Deprecated module -> the modules it stands for (read from its ``moved(...)`` call)."""
    out = {}
    for name, path in house.project_modules().items():
        if house.is_shim(path):
            call = next(n for n in ast.walk(ast.parse(path.read_text("utf-8")))
                        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "moved")
            out[name] = [a.value for a in call.args[1:]]
    return out


@pytest.mark.parametrize("old", sorted(_shims()) or ["(none yet)"])
def test_old_import_paths_work_with_a_warning(old):
    if old == "(none yet)":
        return
    new = _shims()[old]
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and new[0] in str(w.message) for w in caught), \
        f"importing {old} gave no DeprecationWarning naming {new[0]}"
    for target in map(importlib.import_module, new):
        public = [k for k in vars(target) if not k.startswith("_")]
        assert all(hasattr(module, k) for k in public), f"{old} lacks names of {target.__name__}"
        own = [k for k in public if getattr(getattr(target, k), "__module__", None) == target.__name__]
        assert all(getattr(module, k) is getattr(target, k) for k in own), f"{old} gives other objects than {target.__name__}"


def test_every_package_ships_in_the_wheel():
    """pyproject.toml finds the packages instead of listing them, so a package the move adds cannot be left out."""
    import fnmatch
    import tomllib

    find = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]["packages"]["find"]
    packages = [".".join(init.parent.relative_to(ROOT).parts)
                for init in [*(ROOT / "layermap").rglob("__init__.py"), ROOT / "proxy_tasks" / "__init__.py"]]
    left_out = [p for p in packages if not any(fnmatch.fnmatchcase(p, pattern) for pattern in find["include"])]
    assert not left_out, f"packages pyproject.toml does not ship: {left_out}"
