"""``layermap evolve | show | export``: the search subcommands (``cli.py`` calls :func:`register`).

    layermap evolve [--config PRESET_OR_FILE] [--teacher T] [--corpus FILE] [--glue-dir DIR] [--tasks ...]
                    [--set k=v ...] [--workers N] [--executor local|process|ray] [--store DB] [--quiet] --out RUN_DIR
    layermap evolve --resume RUN_DIR [--workers N] [--executor ...] [--device D] [--set run.k=v ...]
    layermap show RUN_DIR [--json] [--top K]
    layermap export RUN_DIR [-o FILE] [--format json|textbrewer]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

from .common import add_config_args, config_from_args, flag_settings_given
from ..errors import LayermapError
from ..evolution.results import SearchResult, load_result
from ..mapping import LayerMapping
from ..evolution.records import EvaluationRecord
from ..evolution.store import RunRow, Store, open_run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evolve``, ``show`` and ``export`` to an argparse subparsers object."""
    p = subparsers.add_parser("evolve", help="genetic search of the layer mapping (proxy fitness, cached, resumable)",
                              epilog="examples:\n  layermap evolve --config demo --teacher $TEACHER --corpus corpus.txt "
                                     "--glue-dir glue --out runs/demo\n  layermap evolve --resume runs/demo --retry-failed",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--out", metavar="RUN_DIR", help="new (or empty) run folder")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last finished generation")
    p.add_argument("--workers", type=int, default=None, help="parallel evaluations (run.workers)")
    p.add_argument("--executor", choices=("local", "process", "ray"), default=None, help="where evaluations run (run.executor)")
    p.add_argument("--store", metavar="DB", default=None,
                   help="the run's SQLite store (run.store_path; default RUN_DIR/layermap.sqlite); runs given one store "
                        "share their fitnesses, and every run reuses fitnesses through <cache_dir>/fitness.sqlite "
                        "anyway unless run.shared_fitness=false")
    p.add_argument("--cache", metavar="DB", default=None, help="deprecated: the old name of --store")
    p.add_argument("--synthetic", type=int, metavar="TEACHER_LAYERS", default=None,
                   help="search the analytic SyntheticEvaluator landscape instead of the proxy fitness "
                        "(GA studies and smoke tests; trains nothing)")
    p.add_argument("--retry-failed", action="store_true",
                   help="with --resume: evaluate the run's failed genomes again (run.retry_failed; every attempt keeps its error)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=evolve_command)

    p = subparsers.add_parser("show", help="per-generation table and top genomes of a run",
                              epilog="examples:\n  layermap show runs/demo\n  layermap show runs/demo --json --noise-std 1.42",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of layermap evolve")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--top", type=int, default=5, help="how many top genomes to list (default 5)")
    p.add_argument("--noise-std", type=float, default=None, metavar="SE",
                   help="standard error of one fitness to use for every genome (e.g. the seed std that "
                        "benchmarks/bench_noise.py measured at this budget) instead of the records' own "
                        "fitness_stderr (fine-tuning seeds only, proxy.repeats > 1)")
    p.set_defaults(func=show_command)

    p = subparsers.add_parser("export", help="write the best mapping of a run (JSON or TextBrewer intermediate_matches)",
                              description=EXPORT_DESCRIPTION,
                              epilog="examples:\n  layermap export runs/demo -o best_mapping.json\n"
                                     "  layermap export runs/demo --format textbrewer -o matches.json",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of layermap evolve")
    p.add_argument("-o", "--output", default=None,
                   help="output file ('-' = stdout; default RUN_DIR/best_mapping.json or RUN_DIR/intermediate_matches.json)")
    p.add_argument("--format", choices=("json", "textbrewer"), default="json",
                   help="json: the mapping with its provenance; textbrewer: a DistillationConfig file")
    p.set_defaults(func=export_command)


EXPORT_DESCRIPTION = textwrap.fill(
    "Write the best mapping of a run: --format json (the mapping with its provenance) or --format textbrewer (a "
    "file TextBrewer's DistillationConfig.from_json_file loads; provenance beside it). There is no torchdistill "
    "format: a torchdistill config can only hook module inputs and outputs and combine its registered losses, and "
    "the TinyBERT losses layermap distils with need two things no built-in offers for a Hugging Face encoder - "
    "attention scores before the softmax (computed inside the self-attention, the output of no module) and one "
    "learnt width projection for the hidden states (torchdistill's adaptation modules only enter its sequential "
    "models). A YAML without them would describe another distillation.", width=100)


def evolve_command(args: argparse.Namespace) -> int:
    progress = not args.quiet
    if args.resume:
        from ..evolution.evolve import resume_search

        result = resume_search(args.resume, progress=progress, overrides=_resume_overrides(args))
    else:
        if getattr(args, "retry_failed", False):
            raise LayermapError("--retry-failed only works with --resume RUN_DIR (a new run has no failed genomes)")
        if not args.out:
            raise LayermapError("layermap evolve needs --out RUN_DIR for a new run, or --resume RUN_DIR to continue one")
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise LayermapError(f"--out {args.out} is a file, not a folder; give the path of a new run folder")
        if out.exists() and any(out.iterdir()):
            hint = (f"pass --resume {args.out} to continue that run, or give a new folder" if (out / "run.json").is_file()
                    else "give a new or empty folder")
            raise LayermapError(f"--out {args.out} already exists and is not empty; {hint}")
        config = _absolute_store_path(config_from_args(args))
        if args.synthetic is None:
            from ..evolution.evolve import check_proxy_inputs

            check_proxy_inputs(config)          # before the run folder exists
        from ..evolution.evolve import run_search

        result = run_search(config, _new_evaluator(config, args.synthetic), out, progress=progress)
    _print_summary(result)
    return 0


def show_command(args: argparse.Namespace) -> int:
    from ..evolution.evolve import run_status

    _, store, row = open_run(args.run_dir)
    with store:
        result = load_result(store, row, args.run_dir)
        ranked = _ranked_records(store, row)
        top = ranked[:max(0, args.top)]
        running = sum(r.status == "running" for r in store.run_evaluations(row.run_id))
    noise_std = getattr(args, "noise_std", None)
    if noise_std is not None and not noise_std >= 0:
        raise LayermapError(f"--noise-std must be a standard error >= 0, got {noise_std}")
    noise_from = "--noise-std"
    if noise_std is None and run_noise_std(row.config):
        noise_std, noise_from = run_noise_std(row.config), "search.noise_std"
    ties = within_noise_of_best(top, noise_std)
    if args.json:
        print(json.dumps({
            "run_id": row.run_id, "run_dir": str(Path(args.run_dir).resolve()), "store": str(result.store_path),
            "status": run_status(args.run_dir, row), "fingerprint": row.fingerprint, "teacher": row.description.get("teacher"),
            "teacher_layers": row.teacher_layers, "student_layers": row.student_layers,
            "best": _entry(result.best_record) if result.best_record else None,
            "generations": [dataclasses.asdict(g) for g in result.generations],
            "evaluations": {"computed": result.computed, "cached": result.cached, "failed": result.failed, "running": running},
            "top": [{**_entry(r), "within_noise_of_best": tie} for r, tie in zip(top, ties)],
            "tie_rule": TIE_RULE, "noise_std": noise_std, "noise_std_from": noise_from if noise_std is not None else None,
            "best_vs_baselines": best_vs_baselines(ranked, row.student_layers, row.teacher_layers, noise_std),
        }, indent=2))
        return 0
    print(f"run {row.run_id} ({run_status(args.run_dir, row)})  teacher {row.description.get('teacher', '?')} "
          f"({row.teacher_layers} layers) -> student {row.student_layers} layers  fingerprint {row.fingerprint[:12]}")
    print(f"{'gen':>3} {'best':>8} {'mean':>8} {'std':>6} {'unique':>6} {'computed':>8} {'cached':>6} {'failed':>6}  best genome")
    for g in result.generations:
        print(f"{g.generation:>3} {_num(g.best, 8)} {_num(g.mean, 8)} {_num(g.std, 6)} {g.unique:>6} {g.computed:>8} "
              f"{g.cached:>6} {g.failed:>6}  {g.best_genome or '-'}")
    print(f"evaluations: {result.computed} computed, {result.cached} cached, {result.failed} failed"
          + (f", {running} unfinished" if running else ""))
    if top:
        print("top genomes (fitness ± standard error):")
        for record, tie in zip(top, ties):
            se = _stderr(record, noise_std)
            mark = "=" if tie else " "
            fit = f"{record.fitness:6.2f} ± {se:4.2f}" if se is not None else f"{record.fitness:6.2f}   ?   "
            tasks = "  ".join(f"{name} {task.score:.2f}" + (f"±{task.std:.1f}" if task.std is not None else "")
                              for name, task in record.tasks.items())
            print(f"{mark} {record.genome:<16} {fit}   {tasks}")
        print(_noise_note(top, ties, noise_std, noise_from))
        print(baseline_sentence(best_vs_baselines(ranked, row.student_layers, row.teacher_layers, noise_std)))
    return 0


TIE_RULE = "best - fitness < 2 * sqrt(se_best^2 + se^2)"


def _stderr(record: EvaluationRecord, noise_std: float | None) -> float | None:
    """The standard error of a record's fitness: ``--noise-std`` if given, else the record's own."""
    return noise_std if noise_std is not None else record.fitness_stderr


def within_noise_of_best(records: list[EvaluationRecord], noise_std: float | None = None) -> list[bool | None]:
    """For records sorted best first: is each one's fitness within noise of the best's?

    Rule (:data:`TIE_RULE`): ``best - fitness < 2 * sqrt(se_best**2 + se**2)``, i.e. the difference
    is under two standard errors of a difference.  ``None`` where a standard error is unknown.
    """
    if not records:
        return []
    best = records[0]
    se_best = _stderr(best, noise_std)
    out: list[bool | None] = []
    for record in records:
        se = _stderr(record, noise_std)
        if se is None or se_best is None:
            out.append(None)
        else:
            out.append(best.fitness - record.fitness < 2.0 * (se_best ** 2 + se ** 2) ** 0.5)
    return out


def run_noise_std(config: dict) -> float | None:
    """The run's ``search.noise_std`` (the measured seed std of one fitness), or None when not measured."""
    value = (config or {}).get("search", {}).get("noise_std") or 0.0
    return float(value) if value > 0 else None


def best_vs_baselines(records: list[EvaluationRecord], student_layers: int, teacher_layers: int,
                      noise_std: float | None) -> dict | None:
    """The best genome against the best evaluated baseline, with the noise a difference must exceed."""
    from ..mapping import baselines

    if not records:
        return None
    names = {"-".join(map(str, g)): name for name, g in baselines(student_layers, teacher_layers).items()}
    records = sorted(records, key=lambda r: -r.fitness)
    best = records[0]
    base = [r for r in records if r.genome in names]
    if not base:
        return None
    ref = max(base, key=lambda r: r.fitness)
    se_best, se_ref = _stderr(best, noise_std), _stderr(ref, noise_std)
    needed = 2.0 * (se_best ** 2 + se_ref ** 2) ** 0.5 if se_best is not None and se_ref is not None else None
    diff = best.fitness - ref.fitness
    tied = sum(t is True for t in within_noise_of_best(records, noise_std))
    return {"best": best.genome, "best_fitness": best.fitness, "baseline": ref.genome, "baseline_kind": names[ref.genome],
            "baseline_fitness": ref.fitness, "difference": diff, "difference_needed": needed,
            "beyond_noise": None if needed is None else bool(best.genome != ref.genome and diff >= needed),
            "within_noise_of_best": tied if needed is not None else None, "genomes": len(records)}


def baseline_sentence(b: dict | None) -> str:
    """One sentence: does the search's best beat the best baseline beyond seed noise?"""
    if b is None:
        return "no baseline was evaluated, so the best cannot be compared with one"
    if b["best"] == b["baseline"]:
        head = f"the best genome is the {b['baseline_kind']} baseline {b['baseline']} ({b['best_fitness']:.2f})"
    else:
        head = (f"the best, {b['best']} ({b['best_fitness']:.2f}), leads the best baseline, {b['baseline_kind']} "
                f"{b['baseline']} ({b['baseline_fitness']:.2f}), by {b['difference']:.2f}")
    if b["difference_needed"] is None:
        return (head + "; seed noise unknown (set search.noise_std to the std benchmarks/bench_noise.py measures at "
                "this budget, pass --noise-std, or use proxy.repeats >= 2), so this ranking has no error bar")
    if b["best"] == b["baseline"]:
        verdict = "no searched genome beats it"
    elif b["beyond_noise"]:
        verdict = "beyond seed noise"
    else:
        verdict = "within seed noise: no significant difference"
    return (f"{head}; a difference needs {b['difference_needed']:.2f} to exceed seed noise, so {verdict} "
            f"({b['within_noise_of_best']} of {b['genomes']} genomes are within noise of the best)")


def _noise_note(top: list[EvaluationRecord], ties: list[bool | None], noise_std: float | None,
                noise_from: str = "--noise-std") -> str:
    if any(t is None for t in ties):
        return ("no standard error for some genomes ('?'): rerun with proxy.repeats >= 2, or pass --noise-std SE "
                "(the seed std of one fitness that benchmarks/bench_noise.py measures at this budget)")
    source = (f"se = {noise_from} {noise_std:g} for every genome" if noise_std is not None
              else "se from each record's fine-tuning seeds (proxy.repeats; distillation-seed noise not included)")
    n = sum(bool(t) for t in ties)
    verdict = ("the best is ahead of every other listed genome beyond noise" if n == 1
               else f"{n} genomes are tied with the best within noise")
    return f"= within noise of the best: {TIE_RULE}; {source}; {verdict}"


def export_command(args: argparse.Namespace) -> int:
    _, store, row = open_run(args.run_dir)
    with store:
        result = load_result(store, row, args.run_dir)
    if result.best_record is None:
        raise LayermapError(f"run folder {args.run_dir} has no successful evaluation yet ({result.failed} failed); let "
                            f"'layermap evolve --resume {args.run_dir}' finish some, or see 'layermap show {args.run_dir}'")
    mapping = result.best_mapping
    metadata = _provenance(row, result)
    if args.format == "json":
        payload = mapping.to_dict(**metadata)
        default = "best_mapping.json"
    else:
        # exactly DistillationConfig's keys, so that DistillationConfig.from_json_file(path) loads it; the
        # general stage has no prediction-layer loss (kd_loss_weight 0); provenance goes to a sibling file
        payload = {"intermediate_matches": textbrewer_matches(mapping, *_widths(row)), "kd_loss_weight": 0,
                   "hard_label_weight": 0}
        provenance = {"mapping": mapping.text, **metadata, "layer_numbering": TEXTBREWER_NUMBERING}
        default = "intermediate_matches.json"
    text = json.dumps(payload, indent=2) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.output) if args.output else Path(args.run_dir) / default
    if path.is_dir():
        raise LayermapError(f"-o {path} is a folder; give a file name, e.g. -o {path / default}")
    if not path.parent.is_dir():
        raise LayermapError(f"-o {path}: the folder {path.parent} does not exist; create it first or write elsewhere")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise LayermapError(f"cannot write {path} ({exc.strerror or exc}); check the folder's permissions and free "
                            "disk space") from None
    if args.format == "textbrewer":
        sibling = path.with_name(f"{path.stem}.provenance.json")
        sibling.write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        print(f"provenance (teacher, fitness, layer numbering) written to {sibling}")
    print(f"best mapping {mapping.text} (fitness {result.best_record.fitness:.2f}) written to {path}")
    return 0


TEXTBREWER_NUMBERING = ("hidden 0 = embeddings, k = layer k; attention k = layer k (as in TextBrewer's "
                        "examples/matches.py); an adaptor returning outputs.attentions as-is is 0-based, so subtract 1 "
                        "from attention layer_T/layer_S there. TextBrewer builds one projection per hidden match; "
                        "layermap shares one projection across all layers.")


def textbrewer_matches(mapping: LayerMapping, student_width: int, teacher_width: int) -> list[dict]:
    """TextBrewer ``intermediate_matches`` for a mapping: a hidden-state MSE per (student m, teacher k) pair,
    embeddings (0, 0) included, through a linear projection when the widths differ, and an attention MSE
    per non-embedding pair."""
    matches = []
    for m, k in mapping.pairs():
        hidden = {"layer_T": k, "layer_S": m, "feature": "hidden", "loss": "hidden_mse", "weight": 1}
        if student_width != teacher_width:
            hidden["proj"] = ["linear", student_width, teacher_width]
        matches.append(hidden)
        if m > 0:
            matches.append({"layer_T": k, "layer_S": m, "feature": "attention", "loss": "attention_mse", "weight": 1})
    return matches


# -- helpers ---------------------------------------------------------------------------------------
_NEW_RUN_ONLY = ("--config", "--synthetic", "--out")      # flags outside the settings table that --resume refuses


def _resume_overrides(args: argparse.Namespace) -> list[str]:
    """The run's settings may change on --resume only where a fitness cannot (RESUMABLE_RUN_KEYS): the
    flags go through the same table as a new run's, and a flag for any other setting is refused."""
    from ..config import format_override
    from ..evolution.evolve import RESUMABLE_RUN_KEYS

    given = [flag for flag in _NEW_RUN_ONLY if getattr(args, flag.lstrip("-"), None) is not None]
    settings = flag_settings_given(args)
    given += [s.flag for s in settings if not (s.key.startswith("run.") and s.key[4:] in RESUMABLE_RUN_KEYS)]
    if given:
        raise LayermapError(f"{given[0]} cannot be used with --resume: the run keeps the settings in its config.toml "
                            "(only --workers, --executor, --device and --set run.* may change)")
    return [format_override(s.key, s.value) for s in settings] + list(args.overrides)


def _absolute_store_path(config):
    """run.store_path (from --store, the settings file or --set) as an absolute path, so that the run folder can be
    opened from anywhere."""
    if not config.run.store_path:
        return config
    path = str(Path(config.run.store_path).expanduser().resolve())
    return config.replace(run=dataclasses.replace(config.run, store_path=path))


def _new_evaluator(config, synthetic_teacher_layers: int | None):
    if synthetic_teacher_layers is not None:
        from ..study.synthetic import SyntheticEvaluator

        return SyntheticEvaluator(teacher_layers=synthetic_teacher_layers, student_layers=config.student.layers)
    from ..evolution.fitness import ProxyEvaluator

    return ProxyEvaluator(config)


def _print_summary(result: SearchResult) -> None:
    if result.best_record is None:
        print(f"no genome was evaluated successfully ({result.failed} failed); see 'layermap show {result.run_dir}'")
    else:
        tasks = ", ".join(f"{name} {task.score:.2f}" for name, task in result.best_record.tasks.items())
        print(f"best mapping {result.best_record.genome}   fitness {result.best_record.fitness:.2f}" + (f"   ({tasks})" if tasks else ""))
    print(f"evaluations: {result.computed} computed, {result.cached} cached, {result.failed} failed   "
          f"generations: {len(result.generations)}   wall time {result.wall_time:.1f}s")
    if result.best_record is not None:
        with Store(result.store_path, upgrade=False) as store:
            row = store.get_run(result.run_id)
            records = _ranked_records(store, row)
        print(baseline_sentence(best_vs_baselines(records, row.student_layers, row.teacher_layers,
                                                  run_noise_std(row.config))))
    print(f"run folder: {result.run_dir}   (layermap show {result.run_dir}; layermap export {result.run_dir})")


def _ranked_records(store: Store, row: RunRow) -> list[EvaluationRecord]:
    """The run's successful records, one per genome, best first."""
    best: dict[str, EvaluationRecord] = {}
    for r in store.run_evaluations(row.run_id):
        if r.record is not None and r.record.ok and r.genome not in best:
            best[r.genome] = r.record
    return sorted(best.values(), key=lambda rec: -rec.fitness)


def _entry(record: EvaluationRecord) -> dict:
    return {"mapping": record.genome, "fitness": record.fitness, "fitness_stderr": record.fitness_stderr,
            "fitness_replicates": record.fitness_replicates,
            "tasks": {name: {"score": t.score, "metrics": t.metrics, "replicates": t.replicates, "std": t.std}
                      for name, t in record.tasks.items()}}


def _provenance(row: RunRow, result: SearchResult) -> dict:
    record = result.best_record
    return {
        "teacher": row.description.get("teacher"), "student": row.description.get("student"),
        "fitness": record.fitness, "tasks": _entry(record)["tasks"], "fingerprint": row.fingerprint,
        "run_id": row.run_id, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": "layermap evolve",
    }


def _widths(row: RunRow) -> tuple[int, int]:
    """(student, teacher) hidden sizes from the evaluator's description, else from the config."""
    d = row.description
    teacher = int(d.get("teacher_hidden_size") or 0)
    student = d.get("student") if isinstance(d.get("student"), dict) else {}
    width = int(student.get("hidden_size") or d.get("student_hidden_size") or row.config.get("student", {}).get("hidden_size") or 0)
    if teacher and not width:
        width = teacher                   # student.hidden_size = 0 means the teacher's width
    if not teacher and width:
        raise LayermapError(f"run {row.run_id} does not record the teacher's hidden size, so the projection of a "
                            f"{width}-wide student cannot be written; export --format json instead")
    return width, teacher or width


def _num(value: float | None, width: int) -> str:
    return f"{value:>{width}.2f}" if value is not None else f"{'-':>{width}}"
