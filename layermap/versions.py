"""The libraries layermap needs, at the versions it was verified with, checked before any work.

``transformers`` older than :data:`TRANSFORMERS_FLOOR` is refused (one sentence, exit 2 on the command line) at the
start of every ``layermap`` command and of the API's entry points (:mod:`layermap.api`), before a model is built:
nothing older than the floor was run, and releases differ in what a forward takes (transformers 4 refuses the 4D
attention mask that 5 takes, and takes a 3D one that 5 refuses).  The check reads the installed package's metadata,
so it costs no import of ``transformers`` (an old one may not even import under a new ``torch``).

Verified (2026-12-07, torch 2.13.0 on CPU; each version's padded-batch forward equals its 2D-mask forward):
transformers 4.40.2, the floor (the model, distillation, loss, population, teacher-cache, fine-tuning, GLUE-loader,
identity, corpus, CLI, fitness, reference-row and real-MiniLM integration tests: 124 passed), 4.46.3 (the same
without the reference-row and integration tests), 4.57.6, the last 4.x (the model to fine-tuning tests and the
integration tests), 5.0.0 (the model, distillation, loss and population tests) and 5.25.0 (the project's own).
transformers 4 takes the 3D key mask of :func:`layermap.distill.models.model_mask`, 5 its 4D mask.
"""

from __future__ import annotations

import re
from importlib import metadata

from .errors import LayermapError

TRANSFORMERS_FLOOR = (4, 40)        # the oldest release line verified (transformers 4.40.2); pyproject says the same


class UnsupportedVersion(LayermapError):
    """An installed library older than layermap supports."""


def installed_version(package: str) -> str | None:
    """The installed distribution's version text (``"4.46.3"``), or None when it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def release(text: str) -> tuple[int, ...]:
    """``"4.46.3"`` -> ``(4, 46, 3)``; ``"5.0.0rc1"`` and ``"4.57.dev0"`` keep their leading numbers."""
    numbers = []
    for part in text.split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        numbers.append(int(match.group()))
        if match.end() < len(part):
            break
    return tuple(numbers)


def check_transformers() -> None:
    """Raise :class:`UnsupportedVersion` (one sentence) when ``transformers`` is missing or older than the floor."""
    floor = ".".join(map(str, TRANSFORMERS_FLOOR))
    found = installed_version("transformers")
    if found is None:
        raise UnsupportedVersion(f"transformers is not installed; layermap needs transformers >= {floor} "
                                 f"(pip install 'transformers>={floor}')")
    if release(found)[:len(TRANSFORMERS_FLOOR)] < TRANSFORMERS_FLOOR:
        raise UnsupportedVersion(f"transformers {found} is older than {floor}, the oldest version layermap supports; "
                                 f"upgrade it (pip install 'transformers>={floor}')")


FINGERPRINT_LIBRARIES = ("torch", "transformers")    # the libraries whose release line a fingerprint holds


def major_minor(text: str | None) -> str | None:
    """``2.13.0+cpu`` -> ``2.13``: the part of a version a fingerprint holds (None for none)."""
    return ".".join(str(text).split(".")[:2]) if text else None


RECORDED_LIBRARIES = ("torch", "transformers", "numpy", "scikit-learn", "layermap")    # what a record's environment names


def installed_versions(packages: tuple[str, ...] = RECORDED_LIBRARIES) -> dict[str, str]:
    """The one builder of library versions: each installed package of ``packages`` at its full version
    (``{"torch": "2.13.0+cpu", ...}``, read from the distribution's metadata; one not installed is left out).  A
    record's environment holds these (:func:`layermap.storage.records.environment`); a fingerprint holds their
    release lines (:func:`library_versions`)."""
    found = {name: installed_version(name) for name in packages}
    return {name: text for name, text in found.items() if text is not None}


def library_versions() -> dict[str, str | None]:
    """The dict of library versions every fingerprint holds (the proxy fitness, a compare folder, a teacher cell):
    each of :data:`FINGERPRINT_LIBRARIES` at its release line (``{"torch": "2.13", "transformers": "4.57"}``), from
    :func:`installed_versions` (torch's own ``__version__`` where it has no metadata, a source build)."""
    found = installed_versions(FINGERPRINT_LIBRARIES)
    if "torch" not in found:
        import torch

        found["torch"] = torch.__version__
    return {name: major_minor(found.get(name)) for name in FINGERPRINT_LIBRARIES}
