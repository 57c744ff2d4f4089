"""``layermap evolve | show | export``: the search subcommands (``cli.py`` calls :func:`register`).

    layermap evolve [--config PRESET_OR_FILE] [--teacher T] [--corpus FILE] [--glue-dir DIR] [--tasks ...]
                    [--set k=v ...] [--workers N] [--executor local|process|ray] [--store DB] [--quiet] --out RUN_DIR
    layermap evolve --resume RUN_DIR [--workers N] [--executor ...] [--device D] [--set run.k=v ...]
    layermap show RUN_DIR [--json] [--top K]           (an nsga2 run: its Pareto front)
    layermap export RUN_DIR [-o FILE] [--format json|textbrewer] [--attention-index hf|textbrewer-examples]
    layermap export RUN_DIR --front DIR                (an nsga2 run: one mapping JSON per front member)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
from pathlib import Path

from .common import add_config_args, config_from_args, flag_settings_given
from ..errors import LayermapError
from ..report.results import SearchResult
from ..exporting.mapping_json import record_entry
from ..exporting.textbrewer import ATTENTION_INDEXES
from ..exporting.writer import export_run, render_export
from ..report.verdict import noise_note, standard_error


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
                                     "  layermap export runs/demo --format textbrewer -o matches.json   "
                                     "(+ matches.provenance.json, matches.adaptor.py)",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of layermap evolve")
    p.add_argument("-o", "--output", default=None,
                   help="output file ('-' = stdout; default RUN_DIR/best_mapping.json or RUN_DIR/intermediate_matches.json)")
    p.add_argument("--format", choices=("json", "textbrewer"), default="json",
                   help="json: the mapping with its provenance; textbrewer: a DistillationConfig file, with its "
                        "provenance and ready adaptors (<name>.adaptor.py) beside it")
    p.add_argument("--front", metavar="DIR", default=None,
                   help="an nsga2 run: write one JSON per Pareto-front member into DIR (the mapping with its student "
                        "shape; distill --mapping FILE and compare --mappings FILE read it)")
    p.add_argument("--attention-index", choices=ATTENTION_INDEXES, default="hf",
                   help="textbrewer: how the attention matches count layers - hf (default: Hugging Face's "
                        "outputs.attentions, 0-based, entry k-1 is layer k) or textbrewer-examples (entry k is layer k, "
                        "as in TextBrewer's examples); the adaptor written beside follows it")
    p.set_defaults(func=export_command)


EXPORT_DESCRIPTION = textwrap.fill(
    "Write the best mapping of a run: --format json (the mapping with its provenance) or --format textbrewer (a "
    "file TextBrewer's DistillationConfig.from_json_file loads; provenance and an adaptor module beside it: its adaptor_T/"
    "adaptor_S pass Hugging Face's attention probabilities (after the softmax), its score_adaptor(model) the "
    "pre-softmax scores layermap distils).", width=100) + "\n\n" + textwrap.fill("There is no torchdistill "
    "format: a torchdistill config can only hook module inputs and outputs and combine its registered losses, and "
    "the TinyBERT losses layermap distils with need two things no built-in offers for a Hugging Face encoder - "
    "attention scores before the softmax (computed inside the self-attention, the output of no module) and one "
    "learnt width projection for the hidden states (torchdistill's adaptation modules only enter its sequential "
    "models). A YAML without them would describe another distillation.", width=100)


def evolve_command(args: argparse.Namespace) -> int:
    from ..config import load_config, pipeline_check_line

    progress = not args.quiet
    if args.resume:
        from ..searching.run import CONFIG_NAME, resume_search

        result = resume_search(args.resume, progress=progress, overrides=_resume_overrides(args))
        config = load_config(str(Path(args.resume) / CONFIG_NAME))
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
            from ..searching.run import check_proxy_inputs

            check_proxy_inputs(config)          # before the run folder exists
        from ..searching.run import run_search

        result = run_search(config, _new_evaluator(config, args.synthetic), out, progress=progress)
    _print_summary(result)
    if line := pipeline_check_line(config):
        print(line)
    return 0


def show_command(args: argparse.Namespace) -> int:
    from ..report.front import is_nsga2_run
    from ..report.show import run_report

    if is_nsga2_run(args.run_dir):
        return _show_front(args)

    report = run_report(args.run_dir, args.top, getattr(args, "noise_std", None), "--noise-std")
    row, result, verdict = report.row, report.result, report.verdict
    meaning = _meaning(result)
    if args.json:
        print(json.dumps({
            "run_id": row.run_id, "run_dir": str(Path(args.run_dir).resolve()), "store": str(result.store_path),
            "status": report.status, "fingerprint": row.fingerprint, "teacher": report.teacher,
            "teacher_identity": report.teacher_identity,
            "teacher_layers": row.teacher_layers, "student_layers": row.student_layers,
            "best": record_entry(result.best_record) if result.best_record else None,
            "generations": [dataclasses.asdict(g) for g in result.generations],
            "evaluations": {"computed": result.computed, "cached": result.cached, "failed": result.failed,
                            "running": report.running},
            "top": [{**record_entry(r), "within_noise_of_best": tie} for r, tie in zip(report.top, report.ties)],
            "tie_rule": verdict.tie_rule, "noise_std": verdict.noise_std, "noise_std_from": verdict.noise_std_from,
            "best_vs_baselines": report.best_vs_baselines, "verdict": verdict.to_dict(),
            "references": result.references.to_json() if result.references else None,
            "headroom": ({r.genome: result.references.headroom(r.task_scores)
                          for r in report.top} if result.references else None),
            "not_learnt": _not_learnt(result.references, report.top, verdict.noise_std),
            **({"student_init": "teacher", "gene_meaning": meaning(None),
                "meanings": {r.genome: meaning(r.genome) for r in report.top}} if meaning else {}),
        }, indent=2))
        return 0
    identity = f", {report.teacher_identity}" if report.teacher_identity else ""
    print(f"run {row.run_id} ({report.status})  teacher {report.teacher or '?'} "
          f"({row.teacher_layers} layers{identity}) -> student {row.student_layers} layers  fingerprint {row.fingerprint[:12]}")
    if meaning:
        print(f"student.init = teacher: {meaning(None)}")
    print(f"{'gen':>3} {'best':>8} {'mean':>8} {'std':>6} {'unique':>6} {'computed':>8} {'cached':>6} {'failed':>6}  best genome")
    for g in result.generations:
        print(f"{g.generation:>3} {_num(g.best, 8)} {_num(g.mean, 8)} {_num(g.std, 6)} {g.unique:>6} {g.computed:>8} "
              f"{g.cached:>6} {g.failed:>6}  {g.best_genome or '-'}")
    print(f"evaluations: {result.computed} computed, {result.cached} cached, {result.failed} failed"
          + (f", {report.running} unfinished" if report.running else ""))
    if report.top:
        print("top genomes (fitness ± standard error, n = replicates: seed sets it was evaluated under):")
        for record, tie in zip(report.top, report.ties):
            se = standard_error(record, verdict.noise_std)
            mark = "=" if tie else " "
            fit = f"{record.fitness:6.2f} ± {se:4.2f}" if se is not None else f"{record.fitness:6.2f}   ?   "
            tasks = "  ".join(f"{name} {task.score:.2f}" + (f"±{task.std:.1f}" if task.std is not None else "")
                              for name, task in record.tasks.items())
            room = ""
            if result.references is not None:
                from ..evaluators.references import format_headroom

                h = result.references.headroom(record.task_scores)
                room = f"  headroom {format_headroom(h['mean'])}"
            print(f"{mark} {record.genome:<16} {fit}  n={record.seed_sets:<2}  {tasks}{room}")
        print(noise_note(report.top, report.ties, verdict.noise_std, verdict.noise_std_from or "--noise-std"))
    _print_references(result.references, report.top[0] if report.top else None)
    if report.top:
        if meaning:
            print(f"best {meaning(report.top[0].genome)}")
        print(_verdict_or_not_learnt(verdict, result.references, report.top[0]))
    return 0


def _meaning(result: SearchResult):
    """With teacher initialisation, ``f(genome text)`` -> what its genes mean (:func:`layermap.extraction.gene_sentence`;
    ``f(None)``: the legend of the run's genome kind); None with a random initialisation."""
    from ..extraction import describe_genome, gene_legend

    if result.init != "teacher":
        return None
    split = result.best_record is not None and "+" in result.best_record.genome
    return lambda text: (gene_legend("teacher", "split" if split else "coupled") if text is None
                         else describe_genome(text, result.teacher_layers, "teacher"))


def _not_learnt(refs, top, noise_std) -> str | None:
    from ..evaluators.references import learnt_sentence

    return learnt_sentence(refs, top[0].fitness if top else None, noise_std)


def _show_front(args: argparse.Namespace) -> int:
    """``layermap show`` of an nsga2 run: generations with their hypervolume, then the Pareto front."""
    from ..storage.runs import run_status
    from ..exporting.front import member_json
    from ..report.front import load_front
    from ..evaluators.references import format_headroom

    front = load_front(args.run_dir)
    row = front.row
    if args.json:
        print(json.dumps({
            "run_id": row.run_id, "run_dir": str(Path(args.run_dir).resolve()), "status": run_status(args.run_dir, row),
            "strategy": "nsga2", "fingerprint": row.fingerprint, "objectives": list(front.objectives),
            "reference": list(front.reference), "noise_std": front.noise_std,
            "generations": [dataclasses.asdict(g) for g in front.generations],
            "front": [_flat(member_json(front, m)) for m in front.members],
            "references": front.references.to_json() if front.references else None,
            "shape_references": {m.shape.text: m.references.to_json() for m in front.members if m.references is not None},
        }, indent=2))
        return 0
    print(f"run {row.run_id} ({run_status(args.run_dir, row)})  nsga2 over {', '.join(front.objectives)}  teacher "
          f"{row.description.get('teacher') or '?'} ({row.teacher_layers} layers)  fingerprint {row.fingerprint[:12]}")
    print(f"hypervolume reference point: {', '.join(f'{n} {v:.6g}' for n, v in zip(front.objectives, front.reference))}")
    print(f"{'gen':>3} {'best':>8} {'front':>5} {'hypervolume':>12} {'computed':>8} {'cached':>6} {'failed':>6}")
    for g in front.generations:
        hv = f"{g.hypervolume:>12.6g}" if g.hypervolume is not None else f"{'-':>12}"
        print(f"{g.generation:>3} {_num(g.best, 8)} {g.front_size if g.front_size is not None else '-':>5} {hv} "
              f"{g.computed:>8} {g.cached:>6} {g.failed:>6}")
    se_from = f"search.noise_std {front.noise_std:g} where a record has no standard error" if front.noise_std else \
        "the records' own standard errors (none: '?')"
    print(f"Pareto front: {len(front.members)} genome(s), fitness ± se ({se_from}); '=' marks a tie: on the front only "
          "because its fitness is within noise of a genome that dominates it")
    latency_columns = ["latency", *(["latency_int8"] if any("latency_int8" in m.costs for m in front.members) else [])]
    print(f"  {'shape':<18} {'mapping':<14} {'fitness':>15} " + "".join(f"{k:>10}" for k in latency_columns)
          + f" {'params':>9} {'flops':>9}"
          + ("  headroom" if front.references is not None else ""))
    for m in front.members:
        fit = f"{m.values['fitness']:7.2f} ± {m.se:4.2f}" if m.se is not None else f"{m.values['fitness']:7.2f} ±    ?"
        latency = "".join(f"{m.costs[k]:7.2f} ms" if k in m.costs else f"{'-':>10}" for k in latency_columns)
        room = ("" if front.references is None else
                f"  {format_headroom(m.headroom) if m.references is not None else 'not measured'}")
        print(f"{'=' if m.tied else ' '} {m.shape.text:<18} {'-'.join(map(str, m.genes)):<14} {fit:>15} {latency} "
              f"{m.costs['params'] / 1e6:>8.2f}M {m.costs['flops'] / 1e9:>8.3f}G{room}")
    if front.references is not None:
        print("headroom: against each member's own shape's undistilled student (the teacher and constant rows shared)"
              + (f"; 'not measured': the store holds no reference rows of {', '.join(front.unmeasured)} (a run made "
                 f"before per-shape rows, or stopped before its end): 'layermap evolve --resume {args.run_dir}' measures "
                 "them" if front.unmeasured else ""))
    print(f"export it: layermap export {args.run_dir} --front DIR   (one JSON per member; plot: layermap plot {args.run_dir})")
    return 0


def _flat(entry: dict) -> dict:
    """An exported front member with its metadata at the top level (show --json)."""
    return {**{k: v for k, v in entry.items() if k != "metadata"}, **entry["metadata"]}


def export_command(args: argparse.Namespace) -> int:
    if args.front is not None:
        from ..exporting.front import export_front

        if args.output is not None or args.format != "json":
            raise LayermapError("--front writes one JSON per front member into its folder; give it without -o and --format")
        paths = export_front(args.run_dir, args.front)
        print(f"{len(paths)} front member(s) written to {args.front} ({paths[0].name}, ...)" if paths else
              f"the front is empty; nothing written to {args.front}")
        print("each holds the mapping and its student shape (metadata.shape, metadata.student_flags): layermap distill "
              "--mapping FILE ... or layermap compare --mappings FILE ... takes the shape from the file")
        return 0
    if args.output == "-":
        sys.stdout.write(render_export(args.run_dir, args.format, args.attention_index).text)
        return 0
    done = export_run(args.run_dir, args.output, args.format, attention_index=args.attention_index)
    if done.provenance_path is not None:
        print(f"provenance (teacher, fitness, layer numbering) written to {done.provenance_path}")
    if done.adaptor_path is not None:
        print(f"TextBrewer adaptors (adaptor_T, adaptor_S, prepare, score_adaptor) written to {done.adaptor_path}")
    print(f"best mapping {done.mapping.text} (fitness {done.fitness:.2f}, {done.replicates} replicate(s)) written to {done.path}")
    return 0


# -- helpers ---------------------------------------------------------------------------------------
_NEW_RUN_ONLY = ("--config", "--synthetic", "--out")      # flags outside the settings table that --resume refuses


def _resume_overrides(args: argparse.Namespace) -> list[str]:
    """The run's settings may change on --resume only where a fitness cannot (RESUMABLE_RUN_KEYS): the
    flags go through the same table as a new run's, and a flag for any other setting is refused."""
    from ..config import format_override
    from ..searching.run import RESUMABLE_RUN_KEYS

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
        from ..evaluators.synthetic import SyntheticEvaluator

        return SyntheticEvaluator(teacher_layers=synthetic_teacher_layers, student_layers=config.student.layers)
    from ..evaluators.proxy import ProxyEvaluator

    return ProxyEvaluator(config)


def _print_summary(result: SearchResult) -> None:
    if result.best_record is None:
        print(f"no genome was evaluated successfully ({result.failed} failed); see 'layermap show {result.run_dir}'")
    else:
        tasks = ", ".join(f"{name} {task.score:.2f}" for name, task in result.best_record.tasks.items())
        print(f"best mapping {result.best_record.genome}   fitness {result.best_record.fitness:.2f}"
              f" (n={result.best_record.seed_sets} replicate(s))" + (f"   ({tasks})" if tasks else ""))
    print(f"evaluations: {result.computed} computed, {result.cached} cached, {result.failed} failed   "
          f"generations: {len(result.generations)}   wall time {result.wall_time:.1f}s")
    last = result.generations[-1] if result.generations else None
    if last is not None and last.hypervolume is not None:
        print(f"nsga2: Pareto front of {last.front_size} genome(s), hypervolume {last.hypervolume:.6g} against the "
              f"reference point ({', '.join(f'{v:.6g}' for v in last.reference)})   (layermap show {result.run_dir}; "
              f"layermap export {result.run_dir} --front DIR)")
    _print_references(result.references, result.best_record, result.best_references)
    meaning = _meaning(result)
    if meaning and result.best_record is not None and (last is None or last.hypervolume is None):
        print(f"best {meaning(result.best_record.genome)}")
    if result.best_record is not None and (last is None or last.hypervolume is None):   # a front has no one best
        from ..api import verdict

        print(_verdict_or_not_learnt(verdict(result), result.references, result.best_record))
    print(f"run folder: {result.run_dir}   (layermap show {result.run_dir}; layermap export {result.run_dir})")


def _print_references(refs, best, best_refs=None) -> None:
    """The yardsticks of a run: the reference rows, the seed noise, each task's validity, the best's headroom (against
    ``best_refs``, the rows of the best's own shape in a joint shape search, where given)."""
    from ..evaluators.references import describe, headroom_line

    if refs is None:
        return
    for line in describe(refs):
        print("  " + line)
    if best is not None and ":" in best.genome and best_refs is None:
        print(f"  best {best.genome}: headroom not measured (no reference rows of its shape in the store)")
    elif best is not None:
        print(f"  best {best.genome}: " + headroom_line(best_refs or refs, best.task_scores)
              + (" against its own shape's undistilled student" if ":" in best.genome else ""))


def _verdict_or_not_learnt(verdict, refs, best) -> str:
    """The verdict's sentence, or, when the best (or the teacher) is within noise of the floor, the sentence that the
    students have not learnt and the ranking is noise."""
    from ..evaluators.references import learnt_sentence

    return learnt_sentence(refs, best.fitness if best else None, verdict.noise_std) or verdict.sentence


def _num(value: float | None, width: int) -> str:
    return f"{value:>{width}.2f}" if value is not None else f"{'-':>{width}}"
