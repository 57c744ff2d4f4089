"""The Python API: what a notebook needs, without the command line.

::

    import layermap

    result = layermap.search("smoke", "runs/nb", teacher={"name": TEACHER}, corpus={"path": CORPUS},
                             proxy={"glue_dir": GLUE})
    print(result.best_mapping, result.best_record.fitness)
    layermap.load_result("runs/nb").best_mapping.to_json("best_mapping.json")
    print(layermap.verdict("runs/nb").sentence)          # best vs the best baseline, beyond seed noise or not
    layermap.export("runs/nb", "matches.json", format="textbrewer")   # + matches.adaptor.py beside it
    table = layermap.compare("runs/nb", "runs/nb-compare", config="smoke").table
    layermap.plot("runs/nb-compare")

Settings are given as a preset name, a TOML path or a :class:`Config`, then section dicts
(``teacher={"name": ...}``) and ``--set``-style strings (``overrides=["search.population=12"]``).

Every entry point that builds models (``search``, ``resume``, ``fitness``, ``compare``) first refuses a
``transformers`` older than :data:`layermap.versions.TRANSFORMERS_FLOOR` (:class:`~layermap.versions.UnsupportedVersion`).

Messages go through ``logging.getLogger("layermap")``: warnings show by Python's defaults, the
per-evaluation progress lines (INFO) after ``layermap.log_to_stderr()``; progress bars are ``tqdm.auto``
(a widget in Jupyter).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .config import Config, load_config
from .versions import check_transformers


def resolve_config(config_or_preset: Config | str | None = None, overrides: Sequence[str] = (), **sections: dict) -> Config:
    """A :class:`Config` from a Config, a preset name or a TOML path, then section dicts and overrides."""
    if isinstance(config_or_preset, Config):
        if not sections and not overrides:
            return config_or_preset
        from .config import config_from_dict

        base = config_or_preset.to_dict()
        for name, values in sections.items():
            base.setdefault(name, {}).update(values or {})
        config = config_from_dict(base)
        return load_config(None, overrides, **config.to_dict()) if overrides else config
    return load_config(config_or_preset, overrides, **sections)


def search(config_or_preset: Config | str, out: str | Path, *, overrides: Sequence[str] = (), progress: bool = True,
           **sections: dict):
    """Run a new layer-mapping search into ``out`` and return its :class:`SearchResult`."""
    check_transformers()
    from .searching.run import run_search
    from .evaluators.proxy import ProxyEvaluator

    config = resolve_config(config_or_preset, overrides, **sections)
    _say_pipeline_check(config)
    return run_search(config, ProxyEvaluator(config), out, progress=progress)


def _say_pipeline_check(config: Config) -> None:
    """The one line of pipeline-check settings (``run.pipeline_check``, the smoke preset), as a warning."""
    from .config import pipeline_check_line
    from .logs import get_logger

    if line := pipeline_check_line(config):
        get_logger(__name__).warning(line)


def resume(run_dir: str | Path, *, overrides: Sequence[str] = (), progress: bool = True):
    """Continue a killed or unfinished search; returns its :class:`SearchResult`."""
    check_transformers()
    from .searching.run import resume_search

    return resume_search(run_dir, progress=progress, overrides=overrides)


def load_result(run_dir: str | Path):
    """The :class:`SearchResult` a run folder holds (finished or not)."""
    from .report.results import load_result as _load
    from .storage.runs import open_run

    _, store, row = open_run(run_dir)
    with store:
        return _load(store, row, run_dir)


def _run_folder(run) -> Path:
    from .report.results import SearchResult

    return Path(run.run_dir) if isinstance(run, SearchResult) else Path(run)


def verdict(run, *, noise_std: float | None = None):
    """The :class:`~layermap.report.verdict.Verdict` on a run (a run folder or a loaded :class:`SearchResult`):
    its best genome against its best evaluated baseline, the difference, the noise it must exceed, the genomes
    tied with the best, and the sentence ``layermap show`` ends with.  ``noise_std`` (the seed std of one fitness,
    e.g. from ``benchmarks/bench_noise.py``) is used for every genome; by default the run's ``search.noise_std``,
    else each record's own standard error."""
    from .report.results import SearchResult
    from .storage.store import Store
    from .storage.runs import open_run
    from .report.verdict import run_verdict

    if isinstance(run, SearchResult):
        store = Store(run.store_path, upgrade=False)
        with store:
            return run_verdict(store, store.get_run(run.run_id), noise_std)
    _, store, row = open_run(run)
    with store:
        return run_verdict(store, row, noise_std)


def export(run, path: str | Path | None = None, format: str = "json", *, attention_index: str = "hf"):
    """Write the best mapping of a run (a run folder or a loaded :class:`SearchResult`) -> an ``Exported``.

    ``format="json"``: the mapping with its provenance (default ``RUN_DIR/best_mapping.json``);
    ``format="textbrewer"``: a file ``textbrewer.DistillationConfig.from_json_file`` loads (default
    ``RUN_DIR/intermediate_matches.json``), its provenance in ``<name>.provenance.json`` and ready TextBrewer
    adaptors in ``<name>.adaptor.py`` beside it.  ``attention_index``: how the attention matches count layers,
    ``"hf"`` (Hugging Face's ``outputs.attentions``, 0-based: entry k-1 is layer k) or ``"textbrewer-examples"``
    (entry k is layer k, as in TextBrewer's examples)."""
    from .exporting.writer import export_run

    return export_run(_run_folder(run), path, format, attention_index=attention_index)


def fitness(mapping, config: Config | str, *, overrides: Sequence[str] = (), **sections: dict):
    """The proxy fitness of one mapping (a :class:`LayerMapping` or :class:`~layermap.extraction.SplitGenome`, genes,
    or text such as ``"2-4-6"``, or with teacher initialisation ``"1-2-3+2-4-6"``) -> an :class:`EvaluationRecord`."""
    check_transformers()
    from .evaluators.proxy import ProxyEvaluator
    from .extraction import SplitGenome, parse_genome, require_teacher_init
    from .mapping import LayerMapping

    settings = resolve_config(config, overrides, **sections)
    _say_pipeline_check(settings)
    evaluator = ProxyEvaluator(settings)
    init = evaluator.config.student.init
    if isinstance(mapping, str):
        mapping = parse_genome(mapping, evaluator.teacher_layers, student_layers=evaluator.student_layers, init=init)
    if isinstance(mapping, SplitGenome):
        return evaluator.evaluate(require_teacher_init(mapping, init).text)
    genes = mapping.genes if isinstance(mapping, LayerMapping) else tuple(int(g) for g in mapping)
    return evaluator.evaluate(genes)


def compare(run_dir_or_mappings, out: str | Path, *, config: Config | str | None = None, top: int = 1,
            teacher_finetune: bool = False, overrides: Sequence[str] = (), progress: bool = True, **sections: dict):
    """The final stage -> a :class:`CompareResult` (``.table`` is the ``comparison.json`` object).

    ``run_dir_or_mappings``: a run folder (its ``top`` best genomes and the four baselines, with the
    run's settings; ``config`` then supplies only its ``[compare]`` section) or a list of mappings
    (``["2-4-6", "uniform"]``, with ``config`` giving every setting)."""
    check_transformers()
    from .final.run import run_compare

    if isinstance(run_dir_or_mappings, (str, Path)):
        from .final.run import plan_from_run
        from .config import config_from_dict

        plan = plan_from_run(run_dir_or_mappings, top=top)
        settings = resolve_config(config_from_dict(plan.settings(config)), overrides, **sections)
        return run_compare(settings, plan.mappings, out, proxy_fitness=plan.proxy_fitness, source=plan.source,
                           teacher_finetune=teacher_finetune, progress=progress)
    settings = resolve_config(config, overrides, **sections)
    mappings = [str(m) if not hasattr(m, "text") else m.text for m in run_dir_or_mappings]
    return run_compare(settings, mappings, out, source={"mappings": ",".join(mappings)},
                       teacher_finetune=teacher_finetune, progress=progress)


def plot(folder: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write the figures of a run folder or a compare folder (PNG and SVG); returns their paths."""
    from .plots.folder import plot_folder

    return plot_folder(folder, out)
