"""What ``layermap export`` writes, rendered then written: the best mapping of a run as JSON with its provenance
(:mod:`~layermap.exporting.mapping_json`) or as TextBrewer matches with provenance and adaptor beside them
(:mod:`~layermap.exporting.textbrewer`).  Imports the other ``exporting`` modules, ``storage`` and a run read back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import LayermapError
from ..extraction import Genome
from ..report.results import load_result
from ..storage.runs import open_run
from .mapping_json import provenance
from .textbrewer import ATTENTION_INDEXES, textbrewer_files

FORMATS = ("json", "textbrewer")
DEFAULT_NAMES = {"json": "best_mapping.json", "textbrewer": "intermediate_matches.json"}


@dataclass(frozen=True)
class Rendered:
    """An export before it is written: the file's text and, for TextBrewer, the provenance beside it."""

    mapping: Genome
    fitness: float
    text: str
    provenance: dict | None
    adaptor: str | None = None            # TextBrewer: the adaptor module's source (written as <name>.adaptor.py)
    replicates: int = 1        # seed sets the fitness averages


@dataclass(frozen=True)
class Exported:
    """What :func:`export_run` wrote."""

    mapping: Genome
    fitness: float
    path: Path
    provenance_path: Path | None
    adaptor_path: Path | None = None
    replicates: int = 1        # seed sets the fitness averages


def render_export(run_dir: str | Path, format: str = "json", attention_index: str = "hf") -> Rendered:
    """The best mapping of a run as ``format`` (``json``: the mapping with its provenance; ``textbrewer``:
    exactly ``DistillationConfig``'s keys, so that ``DistillationConfig.from_json_file`` loads it, with the
    provenance and the adaptor module kept apart; its attention matches count layers as ``attention_index``
    says, see :data:`ATTENTION_INDEXES`)."""
    if format not in FORMATS:
        raise LayermapError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    if attention_index not in ATTENTION_INDEXES:
        raise LayermapError(f"unknown attention index {attention_index!r}; use one of {', '.join(ATTENTION_INDEXES)}")
    _, store, row = open_run(run_dir)
    with store:
        result = load_result(store, row, run_dir)
    if result.best_record is None:
        raise LayermapError(f"run folder {run_dir} has no successful evaluation yet ({result.failed} failed); let "
                            f"'layermap evolve --resume {run_dir}' finish some, or see 'layermap show {run_dir}'")
    mapping = result.best_mapping
    metadata = provenance(row, result)
    if format == "json":
        return Rendered(mapping, result.best_record.fitness, json.dumps(mapping.to_dict(**metadata), indent=2) + "\n", None,
                        replicates=result.best_record.seed_sets)
    text, beside, adaptor = textbrewer_files(mapping, row, result.init, metadata, attention_index)
    return Rendered(mapping, result.best_record.fitness, text, beside, adaptor, result.best_record.seed_sets)


def export_run(run_dir: str | Path, path: str | Path | None = None, format: str = "json",
               attention_index: str = "hf") -> Exported:
    """Write the best mapping of the run in ``run_dir`` to ``path`` (default: ``best_mapping.json`` or
    ``intermediate_matches.json`` in the run folder); for TextBrewer, the provenance goes to
    ``<name>.provenance.json`` and the adaptors to ``<name>.adaptor.py`` beside it."""
    rendered = render_export(run_dir, format, attention_index)
    default = DEFAULT_NAMES[format]
    path = Path(path) if path else Path(run_dir) / default
    if path.is_dir():
        raise LayermapError(f"-o {path} is a folder; give a file name, e.g. -o {path / default}")
    if not path.parent.is_dir():
        raise LayermapError(f"-o {path}: the folder {path.parent} does not exist; create it first or write elsewhere")
    try:
        path.write_text(rendered.text, encoding="utf-8")
        sibling = adaptor = None
        if rendered.provenance is not None:
            sibling = path.with_name(f"{path.stem}.provenance.json")
            sibling.write_text(json.dumps(rendered.provenance, indent=2) + "\n", encoding="utf-8")
        if rendered.adaptor is not None:
            adaptor = path.with_name(f"{path.stem}.adaptor.py")
            adaptor.write_text(rendered.adaptor.replace("THIS_FILE.json", path.name)
                               .replace("THIS_FILE.adaptor.py", adaptor.name), encoding="utf-8")
    except OSError as exc:
        raise LayermapError(f"cannot write {path} ({exc.strerror or exc}); check the folder's permissions and free "
                            "disk space") from None
    return Exported(rendered.mapping, rendered.fitness, path, sibling, adaptor, rendered.replicates)
