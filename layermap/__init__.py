"""layermap: search the teacher-to-student layer mapping for task-agnostic BERT distillation.

The public API (imported lazily, so ``import layermap`` and ``layermap --help`` stay fast)::

    layermap.LayerMapping, layermap.baselines         genomes and the heuristic mappings
    layermap.SplitGenome, layermap.gene_sentence      teacher initialisation: start and imitation apart, in words
    layermap.load_config(preset_or_toml, overrides)   settings
    layermap.search(config, out, **sections)          a new search -> SearchResult
    layermap.resume(run_dir)                          continue one -> SearchResult
    layermap.load_result(run_dir)                     read one -> SearchResult
    layermap.fitness(mapping, config)                 one proxy fitness -> EvaluationRecord
    layermap.verdict(run)                             best vs the best baseline, with its noise -> Verdict
    layermap.export(run, path, format="json")         the best mapping as JSON or TextBrewer (+ adaptor) -> Exported
    layermap.compare(run_dir_or_mappings, out, ...)   the final stage -> CompareResult
    layermap.plot(folder, out=None)                   figures of a run or a compare folder
    layermap.log_to_stderr(level="INFO")              show the progress lines (they are logged to "layermap")
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    "LayerMapping": "layermap.mapping", "baselines": "layermap.mapping",
    "SplitGenome": "layermap.extraction", "gene_sentence": "layermap.extraction",
    "Config": "layermap.config", "load_config": "layermap.config",
    "search": "layermap.api", "resume": "layermap.api", "load_result": "layermap.api", "fitness": "layermap.api",
    "compare": "layermap.api", "plot": "layermap.api", "verdict": "layermap.api", "export": "layermap.api",
    "Verdict": "layermap.report.verdict",
    "SearchResult": "layermap.report.results", "EvaluationRecord": "layermap.storage.records", "CompareResult": "layermap.final.run",
    "LayermapError": "layermap.errors", "log_to_stderr": "layermap.logs",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'layermap' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
