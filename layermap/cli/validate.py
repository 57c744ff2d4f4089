"""``layermap validate``: resolve the settings, check the teacher and the data, and size the work, without training."""

from __future__ import annotations

import argparse
import math

from .common import add_config_args, config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate", help="check settings, teacher and data paths; print the search-space size and the work, without training",
        epilog="example:\n  layermap validate --config demo --teacher $TEACHER --corpus corpus.txt --glue-dir glue",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--no-references", action="store_true",
                   help="do not measure the reference rows (teacher, no distillation, constant) nor check task validity")
    p.set_defaults(func=validate_command)


def validate_command(args: argparse.Namespace) -> int:
    """Every check a run would do before its first evaluation; one sentence and exit 2 on the first failure."""
    from proxy_tasks import get_task

    from ..config import pipeline_check_line
    from ..searching.run import check_proxy_inputs
    from ..mapping import baselines, space_size
    from ..distill.models import StudentSpec, load_teacher_config

    config = config_from_args(args)
    if not config.teacher.name or not config.corpus.path:
        from ..errors import LayermapError

        raise LayermapError("give a teacher and a corpus (--teacher, --corpus, or in the settings file) to validate a search")
    check_proxy_inputs(config)                       # device, teacher config and weights, seq_len, corpus
    teacher = load_teacher_config(config.teacher.name, config.teacher.revision)
    n, s = int(teacher.num_hidden_layers), config.student
    spec = StudentSpec.resolve(teacher, s.layers, s.hidden_size, s.heads, s.ffn)
    tasks = {t: get_task(t) for t in config.proxy.tasks}
    _check_task_data(tasks, config.proxy.glue_dir)          # the search cannot run without these: an error
    later = {t: get_task(t) for t in config.compare.tasks if t not in tasks}
    try:
        _check_task_data(later, config.proxy.glue_dir)       # only the final stage needs these: a warning
        missing = ""
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        missing = str(exc)
    search, proxy, distill, compare = config.search, config.proxy, config.distill, config.compare
    size = space_size(spec.layers, n, search.constraint) * (n ** spec.layers if search.genome == "split" else 1)
    offspring = search.offspring or search.population
    evaluations = min(size, search.population + search.generations * offspring)
    print(f"settings: valid   teacher {config.teacher.name} ({n} layers, width {teacher.hidden_size}, "
          f"{teacher.num_attention_heads} heads)")
    from ..extraction import slice_matters

    sliced = slice_matters(s.init, spec.hidden_size, spec.heads, spec.ffn, teacher)
    print(f"student: {spec.layers} layers, width {spec.hidden_size}, {spec.heads} heads, FFN {spec.ffn}, init {s.init}"
          + (f" ({s.slice} slice)" if sliced else ""))
    if s.init == "teacher":
        from ..extraction import gene_legend

        print(f"genome ({search.genome}): {gene_legend('teacher', search.genome)}")
    print(f"search space: {size} genomes ({search.constraint}"
          + (f"; split: {n}^{spec.layers} init parts x the imitation parts" if search.genome == "split" else "")
          + "); baselines "
          + ", ".join(f"{k} {'-'.join(map(str, g))}" for k, g in baselines(spec.layers, n).items()))
    print(f"search: population {search.population} + {search.generations} generations x {offspring} offspring "
          f"-> at most {evaluations} distinct genomes evaluated")
    if search.strategy == "racing":
        print(f"racing: the elites and the best baseline under up to {search.replicate_cap - search.confirm_seed_sets} "
              f"seed sets each, then the answer and the best baseline under {search.confirm_seed_sets} fresh one(s) "
              f"(search.replicate_cap, search.confirm_seed_sets) -> at most {evaluations * search.replicate_cap} evaluations")
    steps = distill.max_steps or f"{distill.epochs:g} epochs of"
    tokens = (distill.max_steps * distill.batch_size * config.corpus.seq_len) if distill.max_steps else None
    print(f"one evaluation: distil {steps} steps of {distill.batch_size} x {config.corpus.seq_len} tokens"
          + (f" ({tokens / 1e6:.2f} M tokens)" if tokens else "")
          + f", then the {proxy.head} head on {', '.join(proxy.tasks)}"
          + (f" ({proxy.max_train or 'all'} training examples, {proxy.epochs:g} epochs, {proxy.repeats} seed(s))"
             if proxy.head == "finetune" else f" ({proxy.max_train or 'all'} training examples, no seed)"))
    mappings = 1 + len(baselines(spec.layers, n))
    cells = mappings * len(compare.tasks) * compare.seeds * compare.distill_seeds
    c_steps = compare.max_steps or f"{compare.epochs:g} epochs of"
    print(f"final stage (compare): {mappings} mappings x {compare.distill_seeds} distillation(s) of {c_steps} steps of "
          f"{compare.batch_size} x {compare.seq_len} tokens, then {cells} fine-tuning cells "
          f"({len(compare.tasks)} tasks x {compare.seeds} seeds)")
    print("data: " + ", ".join(f"{t} ok" for t in tasks) + f" ({config.proxy.glue_dir or 'from the hub'}); "
          f"corpus {config.corpus.path} ok")
    if missing:
        print(f"warning: the final stage's tasks ({', '.join(later)}) are not all there: {missing}; "
              "set compare.tasks (or --tasks on layermap compare) to tasks you have")
    elif later:
        print("final-stage data: " + ", ".join(f"{t} ok" for t in later))
    if not args.no_references:
        _check_references(config)
    if line := pipeline_check_line(config):
        print(line)
    if evaluations < min(size, 2 * search.population):
        print(f"note: {evaluations} evaluations explore {100 * evaluations / size:.1f} % of the space "
              f"(a random search needs about (N+1)/(k+1) = {math.ceil((size + 1) / 2)} to find one given genome)")
    return 0


def _check_task_data(tasks: dict, glue_dir: str) -> None:
    """Each task's local files exist (hub tasks are checked when they load: no network here)."""
    if not glue_dir:
        return
    from proxy_tasks.glue_tsv import resolve_split_paths

    for spec in tasks.values():
        resolve_split_paths(spec, glue_dir)


def _check_references(config) -> None:
    """Measure (or read from the cache) the reference rows, print them and refuse an invalid proxy task (one sentence,
    exit 2) unless proxy.allow_invalid names it: the same check evolve makes before its first evaluation."""
    from ..evaluators.proxy import ProxyEvaluator
    from ..evaluators.references import describe, ensure_references

    print("reference rows (measured once per setting, then cached; the teacher's probe takes a few CPU-minutes):",
          flush=True)
    refs = ensure_references(ProxyEvaluator(config), None, config.proxy.allow_invalid)
    for line in describe(refs):
        print("  " + line)
