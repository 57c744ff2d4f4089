"""``layermap bench``: benchmarks of the search itself (``cli.py`` calls :func:`register`).

    layermap bench search TABLE [--seeds 20] [--budget N] [--methods ga,random,local,aging] [--set search.k=v ...]
                                [--noisy | --noise-std S [--shift-std T]] [--json] [-o FILE.json] [--plot FILE.png]
    layermap bench landscape STORE -o landscape.csv
    layermap bench fidelity COMPARE_DIR --proxy SOURCE [--proxy SOURCE ...] [--json] [-o FILE.json] [--plot FILE.png]

``TABLE`` is a landscape CSV (``genome, seed_set, fitness, <task>...``) or a layermap store holding an
enumerated space (``--set search.strategy='"enumerate-mapped"'``); see :mod:`layermap.study.replay`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..storage.records import json_safe
from ..errors import LayermapError
from ..study.noisy_replay import NOISY_METHODS, format_noisy_report, noisy_replay
from ..plots.study import draw_regret
from ..study.landscape import load_table, read_store_rows, write_csv
from ..study.replay import METHODS, format_report, replay


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks of the search (replays against an exhaustive landscape)",
                                  epilog="example:\n  layermap bench search results/benchmarks/landscape.csv --seeds 20 --json",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = bench.add_subparsers(dest="bench_command", required=True)
    p = sub.add_parser("search", help="replay the GA, random, local and aging-evolution searches against a landscape table",
                       epilog="examples:\n  layermap bench search results/benchmarks/landscape.csv --seeds 20 --budget 56 --json\n"
                              "  layermap bench search landscape.csv --set search.population=16 --plot regret.png",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", metavar="TABLE", help="landscape CSV or layermap store file")
    p.add_argument("--seeds", type=int, default=20, help="replays per method (default 20)")
    p.add_argument("--budget", type=int, default=None, help="distinct genomes each replay may evaluate (default: the table size)")
    p.add_argument("--methods", default=None,
                   help=f"comma-separated subset of {','.join(NOISY_METHODS)} (racing only with noise; default: all that apply)")
    noisy = p.add_mutually_exclusive_group()
    noisy.add_argument("--noisy", action="store_true",
                       help="noisy evaluations: each one answers one of the table's seed sets (the table needs several); "
                            "report each method's final-pick regret at equal evaluation budgets")
    noisy.add_argument("--noise-std", type=float, default=None, metavar="S",
                       help="noisy evaluations: the table's fitness plus Gaussian noise of std S (e.g. on the noiseless "
                            "synthetic landscape); report each method's final-pick regret")
    p.add_argument("--shift-std", type=float, default=0.0, metavar="T",
                   help="with --noise-std: add a shift of std T common to every genome of one seed set (as proxy.seed + r "
                        "moves every genome alike); default 0")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="search.KEY=VALUE",
                   help="change a GA setting from the shipped default (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-o", "--output", default=None, help="also write the JSON to this file")
    p.add_argument("--plot", default=None, metavar="FILE.png",
                   help="write the regret plot (PNG, and SVG beside it; not with noisy evaluations)")
    p.set_defaults(func=search_command)
    p = sub.add_parser("landscape", help="export a layermap store's evaluations as a landscape CSV",
                       epilog="example:\n  layermap bench landscape runs/landscape/layermap.sqlite -o landscape.csv",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store", metavar="STORE", help="a layermap store (layermap.sqlite) holding an enumerated space")
    p.add_argument("-o", "--output", required=True, help="CSV file to write")
    p.set_defaults(func=landscape_command)
    p = sub.add_parser("fidelity", help="rank agreement between the proxy fitness and the final compare score",
                       description="Kendall tau, Spearman rho and Pearson r between each mapping's proxy fitness and its "
                                   "GLUE average in a compare folder, with a permutation p-value, a bootstrap interval "
                                   "and each side's own test-retest noise.",
                       epilog="examples:\n  layermap bench fidelity results/compare-demo --proxy results/benchmarks/landscape.csv\n"
                              "  layermap bench fidelity cmp --proxy runs/demo --proxy compare --json -o fidelity.json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("compare_dir", metavar="COMPARE_DIR", help="a folder made by `layermap compare` (its comparison.json)")
    p.add_argument("--proxy", action="append", required=True, metavar="SOURCE",
                   help="proxy fitnesses: a landscape CSV, a layermap store, a run folder, or `compare` for the "
                        "comparison's own proxy column (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-o", "--output", default=None, help="also write the JSON to this file")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="write the scatter plot (PNG, and SVG beside it)")
    p.set_defaults(func=fidelity_command)


def search_command(args: argparse.Namespace) -> int:
    table = load_table(args.table)
    noisy = args.noisy or args.noise_std is not None
    methods = ([m.strip() for m in args.methods.split(",") if m.strip()] if args.methods
               else list(NOISY_METHODS if noisy else METHODS))
    if noisy:
        if args.plot:
            raise LayermapError("--plot draws the noiseless replays' regret curves; leave it out with --noisy or --noise-std")
        result = noisy_replay(table, seeds=args.seeds, budget=args.budget, methods=methods, overrides=args.overrides,
                              noise_std=args.noise_std, shift_std=args.shift_std).to_json()
        result["command"] = "layermap bench search " + " ".join(sys.argv[3:]) if sys.argv[1:3] == ["bench", "search"] else None
        return _emit(args, result, None, lambda: format_noisy_report(result))
    result = replay(table, seeds=args.seeds, budget=args.budget, methods=methods, ga_overrides=args.overrides).to_json()
    result["command"] = "layermap bench search " + " ".join(sys.argv[3:]) if sys.argv[1:3] == ["bench", "search"] else None
    return _emit(args, result, lambda: draw_regret(result), lambda: format_report(result))


def landscape_command(args: argparse.Namespace) -> int:
    rows, _ = read_store_rows(args.store)
    write_csv(rows, args.output)
    print(f"wrote {len(rows)} rows ({len({r.genome for r in rows})} genomes, {len({r.seed_set for r in rows})} seed sets) "
          f"to {args.output}", file=sys.stderr)
    return 0


def fidelity_command(args: argparse.Namespace) -> int:
    from ..plots.study import draw_fidelity
    from ..study.fidelity import fidelity, final_scores, format_report, proxy_scores, read_comparison

    comparison = read_comparison(args.compare_dir)
    final = final_scores(comparison)
    results = {source: fidelity(proxy_scores(source, comparison), final) for source in args.proxy}
    payload = {"compare_dir": str(args.compare_dir), "tasks": comparison.get("tasks"), "budget": comparison.get("budget"),
               "sources": results}
    return _emit(args, payload, lambda: draw_fidelity(results), lambda: format_report(results))


def _emit(args: argparse.Namespace, payload: dict, draw, report) -> int:
    """Write ``payload`` as strict JSON to ``-o``, the figure to ``--plot`` (PNG at 300 dpi and SVG), and print
    the JSON (``--json``) or the text report."""
    text = json.dumps(json_safe(payload), indent=1, ensure_ascii=False)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    if args.plot:
        fig = draw()
        fig.savefig(args.plot, dpi=300)
        fig.savefig(str(Path(args.plot).with_suffix(".svg")))
    print(text if args.json else report())
    return 0
