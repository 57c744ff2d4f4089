"""``layermap compare`` and ``layermap plot``: the final stage's subcommands (``cli.py`` calls :func:`register`).

    layermap compare RUN_DIR --out DIR [--top K] [--seeds S] [--tasks ...] [--config PRESET_OR_FILE] [--set ...]
    layermap compare --mappings 2-4-6,1-2-3,... --teacher T --corpus C --glue-dir G --out DIR [...]
    layermap compare --render-only --out DIR
    layermap plot RUN_DIR_OR_COMPARE_DIR [-o FOLDER] [--noise-std SE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import config_from_args
from ..errors import LayermapError

_EXAMPLE_COMPARE = """examples:
  layermap compare runs/demo --config demo --out runs/demo-compare
  layermap compare --mappings 2-4-6,1-2-3,4-5-6,0-0-6 --config demo --teacher $TEACHER \\
      --corpus corpus.txt --glue-dir glue --out cmp --teacher-finetune"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare", help="final stage: full distillation of mappings, GLUE fine-tuning over seeds, a paired table",
        description="Distil a student with each mapping at the [compare] budget, fine-tune each on GLUE tasks with "
                    "several seeds, and write comparison.md/csv/json with paired differences against the best baseline.",
        epilog=_EXAMPLE_COMPARE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                   help="a search's run folder: compare its best genome(s) with the uniform, top, bottom and last baselines")
    p.add_argument("--mappings", default=None,
                   help="comma-separated mappings to compare without a run (genes like 2-4-6 or uniform/top/bottom/last, "
                        "a mapping JSON file; with compare.init = teacher also split genomes, 1-2-3+2-4-6: starts from "
                        "1-2-3, imitates 2-4-6)")
    p.add_argument("--out", required=True, metavar="DIR", help="compare folder (new, or one made with the same settings)")
    p.add_argument("--top", type=int, default=1, help="with RUN_DIR: how many of the run's best genomes to include (default 1)")
    p.add_argument("--no-baselines", action="store_true", help="with RUN_DIR: do not add the four baselines")
    p.add_argument("--seeds", type=int, default=None, help="fine-tuning seeds per student and task (compare.seeds, default 3)")
    p.add_argument("--tasks", default=None, help="comma-separated GLUE tasks (compare.tasks), e.g. sst2,mrpc,rte,cola")
    p.add_argument("--config", default=None, help="preset (smoke, demo, paper, gpu) or TOML file; with RUN_DIR only its "
                                                  "[compare] section is used, the rest comes from the run")
    p.add_argument("--teacher", default=None, help="teacher: hub name or local directory (teacher.name)")
    p.add_argument("--corpus", default=None, help="corpus text file or a datasets name (corpus.path)")
    p.add_argument("--glue-dir", default=None, help="local GLUE folder in the standard layout (proxy.glue_dir; default: the hub)")
    p.add_argument("--teacher-finetune", action="store_true",
                   help="also fine-tune the teacher once per task (seed 0) and report each student's loyalty to it")
    p.add_argument("--recipe-from", action="append", default=None, metavar="DIR",
                   help="take the learning rates another compare folder of the same fine-tuning recipe chose, for the "
                        "student families it has (e.g. the same extracted students before distillation); repeatable "
                        "(one folder a task; the first given wins)")
    p.add_argument("--teacher-from", default=None, metavar="DIR",
                   help="another compare folder with the same teacher and fine-tuning settings: read the teacher row's "
                        "fine-tuning cells from it instead of fine-tuning the teacher again")
    p.add_argument("--quantize", action="store_true",
                   help="after the table, also export each distilled student to ONNX and quantise it to int8 (pip "
                        "install -e \".[deploy]\"; latency.device cpu): int8 columns (ONNX sizes, latency of PyTorch "
                        "fp32, ONNX fp32 and ONNX int8 under [latency], probe scores of fp32 and int8 with one C, agreement)")
    p.add_argument("--workers", type=int, default=None, help="parallel jobs (run.workers)")
    p.add_argument("--executor", choices=("local", "process", "ray"), default=None, help="where jobs run (run.executor)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (run.device)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting, e.g. --set compare.max_steps=2000 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--render-only", action="store_true",
                   help="rewrite comparison.md/csv/json of the existing --out folder from the cells in its store, "
                        "computing nothing (today's statistics and verdicts for an older folder); give only --out")
    p.set_defaults(func=compare_command)

    p = subparsers.add_parser(
        "plot", help="figures of a run (evolution, mapping diagram, gene heatmap) or of a compare folder (forest plot, bars)",
        epilog="examples:\n  layermap plot runs/demo -o figures\n  layermap plot runs/demo --noise-std 0.88\n"
               "  layermap plot runs/demo-compare",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", metavar="RUN_DIR_OR_COMPARE_DIR", help="a layermap evolve or layermap compare folder")
    p.add_argument("-o", "--output", default=None, help="folder for the PNG and SVG files (default: FOLDER/plots)")
    p.add_argument("--noise-std", type=float, default=None, metavar="SE",
                   help="run folders: half-width of the noise band around the best so far, for every genome, instead "
                        "of the replicates' standard errors and the run's search.noise_std")
    p.set_defaults(func=plot_command)


def compare_command(args: argparse.Namespace) -> int:
    from ..final.run import render_folder, run_compare

    if args.render_only:
        if args.run_dir or args.mappings:
            raise LayermapError("--render-only rewrites the tables of the existing --out folder from its store; "
                                "give only --out (no RUN_DIR or --mappings)")
        _print_result(render_folder(args.out))
        return 0

    if args.seeds is not None and args.seeds < 1:
        raise LayermapError(f"--seeds must be at least 1, got {args.seeds}")
    if bool(args.run_dir) == bool(args.mappings):
        raise LayermapError("give either a run folder (layermap compare RUN_DIR --out DIR) or --mappings 2-4-6,1-2-3 "
                            "(with --teacher, --corpus and --config), not both and not neither")
    if args.top < 1:
        raise LayermapError(f"--top must be at least 1, got {args.top}")
    if args.run_dir:
        config, mappings, proxy, source = _from_run(args)
    else:
        config, mappings = mapping_files(config_from_args(args), [m for m in args.mappings.split(",") if m.strip()])
        proxy, source = _shared_proxy_fitness(config, mappings), {"mappings": args.mappings}
    if args.quantize:
        from ..deploy.quantize import check_int8_device

        check_int8_device(config.latency)          # the extra and the device: before hours of distillation, not after
    if not config.teacher.name:
        raise LayermapError("no teacher given; pass --teacher (a hub name or a local model folder)")
    if not config.corpus.path:
        raise LayermapError("no corpus given; pass --corpus (a text file or a datasets name)")
    result = run_compare(config, mappings, args.out, proxy_fitness=proxy, source=source,
                         teacher_finetune=args.teacher_finetune, progress=not args.quiet, teacher_from=args.teacher_from,
                         recipe_from=args.recipe_from,
                         quantize=args.quantize)
    _print_result(result)
    return 0


def _from_run(args: argparse.Namespace):
    """Settings, mappings (the run's best genomes + the baselines), proxy fitnesses and provenance of a run."""
    from ..final.run import plan_from_run

    plan = plan_from_run(args.run_dir, top=args.top, with_baselines=not args.no_baselines)
    return config_from_args(args, base=plan.settings(args.config)), plan.mappings, plan.proxy_fitness, plan.source


def mapping_files(config, mappings: list[str]):
    """``--mappings`` entries that are mapping JSON files (``layermap export``, ``export --front``) as their genes; a
    file that names a student shape (a front member) sets ``[student]`` to it (every such file must name the same)."""
    import dataclasses

    from ..exporting.front import shape_of_mapping_file
    from ..extraction import genome_from_json

    out, shapes = [], {}
    for text in mappings:
        path = Path(text.strip())
        if not (text.strip().endswith(".json") or path.is_file()):
            out.append(text)
            continue
        out.append(genome_from_json(path).text)          # a split genome's file keeps both parts
        shape = shape_of_mapping_file(json.loads(path.read_text(encoding="utf-8")))
        if shape is not None:
            shapes[shape.text] = shape
    if len(shapes) > 1:
        raise LayermapError(f"the mapping files name {len(shapes)} student shapes ({', '.join(shapes)}); compare one "
                            "shape at a time (one compare per shape)")
    if shapes:
        shape = next(iter(shapes.values()))
        config = config.replace(student=dataclasses.replace(config.student, layers=shape.layers,
                                                            hidden_size=shape.hidden_size, heads=shape.heads, ffn=shape.ffn))
    return config, out


def _shared_proxy_fitness(config, mappings) -> dict[str, float]:
    """Proxy fitnesses of the mappings known to the user-wide fitness cache under these proxy settings (if any)."""
    from ..distill.corpus import default_cache_dir
    from ..searching.run import SHARED_CACHE_NAME

    path = default_cache_dir(config.run.cache_dir) / SHARED_CACHE_NAME
    if not path.is_file() or not config.teacher.name or not config.corpus.path:
        return {}
    try:
        from ..final.jobs import resolve_mappings
        from ..evaluators.proxy import ProxyEvaluator
        from ..storage.store import Store

        evaluator = ProxyEvaluator(config)
        genomes = resolve_mappings(mappings, evaluator.student_layers, evaluator.teacher_layers, config.student.init)
        with Store(path) as store:
            found = {g: store.lookup(evaluator.fingerprint, g) for g in genomes}
    except Exception:  # noqa: BLE001 - a proxy fitness is only an annotation here; bad input is reported later
        return {}
    return {g: r.fitness for g, r in found.items() if r is not None and r.ok}


def _print_result(result) -> None:
    t = result.table
    distills = bool(t.get("budget", {}).get("max_steps") or t.get("budget", {}).get("epochs"))
    print((Path(result.out) / "comparison.md").read_text("utf-8"))
    print(f"cells: {result.computed} computed, {result.cached} cached, {result.failed} failed; "
          f"{result.distilled} {'students saved as initialised (no distillation)' if not distills else 'distillations run'}; "
          f"wall time {result.wall_time:.0f}s")
    print(f"written: {result.out}/comparison.md, comparison.csv, comparison.json   (layermap plot {result.out})")
    if t["cells"].get("missing"):
        print(f"{t['cells']['missing']} cells of the table are missing from the store; rerun 'layermap compare' with "
              "the folder's settings to compute them")
    if t["reference"] is None:
        print("no mapping has a complete set of scores yet; rerun the same command to retry the failed cells")


def plot_command(args: argparse.Namespace) -> int:
    from ..plots.folder import plot_folder

    files = plot_folder(args.folder, args.output, noise_std=args.noise_std)
    for path in files:
        print(path)
    return 0

