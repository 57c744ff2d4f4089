"""Old import paths that still work for one release: a moved module's shim calls :func:`moved` (docs/architecture.md).

A shim module is two lines::

    from layermap._moved import moved
    moved(__name__, "layermap.storage.store")

It warns once (``DeprecationWarning``, naming the new path, attributed to the code that imported the old path) and,
for one new home, puts the new module in the old one's place in ``sys.modules``: the same module object under both
names, so ``monkeypatch`` through the old path still reaches the code.  Where one old module became several, the
old module re-exports every name of each (later ones win).  Imports nothing of layermap.
"""

from __future__ import annotations

import importlib
import sys
import warnings


def moved(old: str, *new: str) -> None:
    """Make the deprecated module ``old`` stand for ``new`` (one module or several) and say so (module docstring)."""
    modules = [importlib.import_module(name) for name in new]
    warnings.warn(f"{old} is deprecated and goes in the next release: import from {' / '.join(new)}",
                  DeprecationWarning, stacklevel=_importer_level())
    if len(modules) == 1:
        sys.modules[old] = modules[0]
        return
    namespace = sys.modules[old].__dict__
    for module in modules:
        namespace.update({k: v for k, v in vars(module).items() if not (k.startswith("__") and k.endswith("__"))})


def _importer_level() -> int:
    """The ``stacklevel`` of the frame that imported the shim: past this function, the shim and the import system."""
    level, frame = 3, sys._getframe(3)          # 1: moved, 2: the shim's body, 3: what executed it
    while frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
        frame, level = frame.f_back, level + 1
    return level
