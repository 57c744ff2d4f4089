"""Which proxy head ranks teacher-extracted students as the judge does? (issue 30, Deliver 2)

The students: 3-layer students at the teacher's width whose layers are copied from the teacher layers their genome
names, with no distillation (``distill.max_steps = distill.epochs = 0``).  The judge: the final stage's scores of the
same students (a compare folder of them, ``compare.max_steps = compare.epochs = 0``, made by
benchmarks/bench_judge.sh and extended to more genomes).  For each candidate head (the probe on SST-2 with 1,000 or
4,000 examples, SST-2 + MRPC, ...) the script scores every genome on two seed sets with layermap's own
:class:`~layermap.evaluators.proxy.ProxyEvaluator` and reports:

* Kendall's tau between the head's ranking (mean of the seed sets) and the judge's;
* the head's own test–retest tau (seed set 0 against 1) and seed noise;
* the head's reference rows (teacher, the plain truncation, a random student, constant) and whether the teacher
  beats the truncation by a clear multiple of the noise (the head has headroom above the truncation);
* the cost of one evaluation.

Heads already in ``--out`` for the same genomes are kept; those measured on other genomes move to ``heads_earlier``.

``--headroom N``: only the reference rows of each head, on N seed sets (``headroom`` in ``--out``): each row's score
per seed set and its own seed std, the rows' pooled noise (what layermap's validity rule reads) and the same without
the random row, and the gap between the teacher and the plain truncation in units of each.

    python benchmarks/bench_extract_proxy.py --judge results/judge/extracted --teacher T --glue-dir G --corpus C \\
        --out results/benchmarks/extract_proxy.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from layermap.stats import kendall_tau  # noqa: E402

EXTRACT = ('student.init="teacher"', "student.hidden_size=384", "student.heads=12", "student.ffn=1536",
           "distill.max_steps=0", "distill.epochs=0", "run.workers=1", 'run.executor="local"')
HEADS = {
    "probe sst2 1k": ('proxy.head="probe"', 'proxy.tasks=["sst2"]', "proxy.max_train=1000"),
    "probe sst2 4k": ('proxy.head="probe"', 'proxy.tasks=["sst2"]', "proxy.max_train=4000"),
    "probe sst2+mrpc 1k": ('proxy.head="probe"', 'proxy.tasks=["sst2","mrpc"]', "proxy.max_train=1000"),
    "probe mrpc 2k": ('proxy.head="probe"', 'proxy.tasks=["mrpc"]', "proxy.max_train=2000"),
    # the judge's head (mean of the token states) at half its examples and one rate between the extracted students'
    # chosen 1e-4 and 3e-4: 94 steps
    "finetune sst2 1k mean": ('proxy.head="finetune"', 'proxy.tasks=["sst2"]', "proxy.max_train=1000",
                              'proxy.pooling="mean"', "proxy.learning_rate=2e-4", "proxy.epochs=3"),
    # for headroom (--headroom): twice the examples, for a steadier teacher; and CoLA, where depth should matter more
    "finetune sst2 2k mean": ('proxy.head="finetune"', 'proxy.tasks=["sst2"]', "proxy.max_train=2000",
                              'proxy.pooling="mean"', "proxy.learning_rate=2e-4", "proxy.epochs=3"),
    "finetune cola 1k mean": ('proxy.head="finetune"', 'proxy.tasks=["cola"]', "proxy.max_train=1000",
                              'proxy.pooling="mean"', "proxy.learning_rate=2e-4", "proxy.epochs=3"),
    # CoLA with four times the examples: at 1k neither the teacher (MCC 8.4) nor the truncation learnt it
    "finetune cola 4k mean": ('proxy.head="finetune"', 'proxy.tasks=["cola"]', "proxy.max_train=4000",
                              'proxy.pooling="mean"', "proxy.learning_rate=2e-4", "proxy.epochs=3"),
}


def judge_scores(folder: Path) -> dict[str, float]:
    """genome -> the judge's average score (the table's average row; the reference 'no distillation' row of an old
    teacher-initialised folder is the uniform extraction, a 'truncation' row the bottom layers)."""
    table = json.loads((folder / "comparison.json").read_text())
    out = {r["mapping"]: r["mean"] for r in table["rows"] if r["task"] == "average" and r["mean"] is not None}
    refs = table.get("references") or {}
    layers, teacher_layers = table["student"]["layers"], table["teacher"]["layers"]
    from layermap.mapping import baseline

    named = {"no distillation": baseline("uniform", layers, teacher_layers), "truncation": baseline("bottom", layers,
                                                                                                    teacher_layers)}
    for name, genes in named.items():
        text = "-".join(map(str, genes))
        if name in refs and refs[name].get("average", {}).get("mean") is not None and text not in out:
            out[text] = refs[name]["average"]["mean"]
    return out


def _paths(args) -> tuple[str, ...]:
    """The overrides every head shares: the teacher, the data, and every task kept whatever its validity."""
    return (f'teacher.name="{args.teacher}"', f'proxy.glue_dir="{args.glue_dir}"', f'corpus.path="{args.corpus}"',
            "proxy.allow_invalid=['*']")


def head_scores(name: str, overrides: tuple[str, ...], genomes: list[str], args) -> dict:
    from layermap.config import load_config
    from layermap.evaluators.proxy import ProxyEvaluator

    base = _paths(args)
    per_set: dict[int, dict[str, float]] = {}
    seconds = []
    refs = None
    for seed_set in range(args.seed_sets):
        config = load_config(args.config, (*base, *EXTRACT, *overrides, f"proxy.seed={seed_set}",
                                           f"distill.seed={seed_set}"))
        ev = ProxyEvaluator(config)
        if seed_set == 0:
            refs = ev.references()
        for g in genomes:
            t0 = time.perf_counter()
            record = ev.evaluate(tuple(int(x) for x in g.split("-")))
            seconds.append(time.perf_counter() - t0)
            per_set.setdefault(seed_set, {})[g] = record.fitness
            print(f"{name:<20} seed set {seed_set} {g}: {record.fitness:.2f}", flush=True)
    means = {g: float(np.mean([per_set[s][g] for s in per_set])) for g in genomes}
    retest = kendall_tau([per_set[0][g] for g in genomes], [per_set[1][g] for g in genomes]) if len(per_set) > 1 else None
    noise = (float(np.sqrt(np.mean([np.var([per_set[s][g] for s in per_set], ddof=1) for g in genomes])))
             if len(per_set) > 1 else None)
    rows = {r.name: r.fitness for r in refs.rows} if refs is not None else {}
    return {"overrides": list(overrides), "per_seed_set": {str(k): v for k, v in per_set.items()}, "mean": means,
            "retest_tau": retest, "seed_noise": noise, "references": rows,
            "reference_noise": refs.fitness_noise if refs is not None else None,
            "seconds_per_genome": float(np.mean(seconds))}


def headroom(name: str, overrides: tuple[str, ...], seed_sets: int, args) -> dict:
    """The reference rows of head ``name`` on ``seed_sets`` seed sets, with no noise floor from ``proxy.task_noise``:
    per row its scores and seed std; the pooled noise (teacher and undistilled students, as validity reads it) and the
    pooled noise without the random row; the teacher's gap over the truncation in each."""
    from layermap.config import load_config
    from layermap.evaluators.proxy import ProxyEvaluator

    base = (*_paths(args), "proxy.task_noise=[]", f"proxy.reference_seed_sets={seed_sets}")
    t0 = time.perf_counter()
    refs = ProxyEvaluator(load_config(args.config, (*base, *EXTRACT, *overrides))).references()
    (task,) = refs.tasks
    rows = {r.name: {"scores": list(r.replicates[task]),
                     "std": float(np.std(r.replicates[task], ddof=1)) if len(r.replicates[task]) > 1 else None}
            for r in refs.rows}
    pooled = lambda names: float(np.sqrt(np.mean([rows[n]["std"] ** 2 for n in names])))  # noqa: E731
    gap = float(np.mean(rows["teacher"]["scores"]) - np.mean(rows["truncation"]["scores"]))
    from layermap.evaluators.references import MIN_TASK_NOISE

    rule, without_random = refs.sigma[task], max(pooled(["teacher", "truncation"]), MIN_TASK_NOISE)   # the rule's floor
    v = refs.validity()[task]
    out = {"task": task, "seed_sets": seed_sets, "rows": rows, "noise_rule": rule, "noise_without_random": without_random,
           "gap_teacher_truncation": gap, "gap_in_noises": gap / rule, "gap_in_noises_without_random": gap / without_random,
           "valid": bool(v.valid), "floor": v.floor, "seconds": time.perf_counter() - t0}
    print(f"{name:<22} teacher {np.mean(rows['teacher']['scores']):.2f} truncation "
          f"{np.mean(rows['truncation']['scores']):.2f} gap {gap:.2f} = {gap / rule:.1f} noises ({rule:.2f}; "
          f"{gap / without_random:.1f} without the random row) -> {'valid' if v.valid else 'invalid'}", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--judge", required=True, help="compare folder of the extracted students (no distillation)")
    ap.add_argument("--config", default="demo")
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--glue-dir", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--heads", default=",".join(HEADS))
    ap.add_argument("--seed-sets", type=int, default=2)
    ap.add_argument("--out", required=True)
    ap.add_argument("--headroom", type=int, default=0, metavar="N",
                    help="only the heads' reference rows on N seed sets (the 'headroom' entry of --out)")
    args = ap.parse_args(argv)
    if args.headroom:
        result = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
        for name in args.heads.split(","):
            result.setdefault("headroom", {})[name] = headroom(name, HEADS[name], args.headroom, args)
            Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        return 0
    judge = judge_scores(Path(args.judge))
    genomes = sorted(judge)
    result = {"judge": judge, "judge_folder": Path(args.judge).name, "genomes": genomes, "heads": {}}
    if Path(args.out).is_file():                 # heads measured before on other genomes are kept apart, not lost
        old = json.loads(Path(args.out).read_text())
        moved = {f"{k} ({len(old['genomes'])} genomes)": {**h, "genomes": old["genomes"]}
                 for k, h in old.get("heads", {}).items()}
        earlier = {**old.get("heads_earlier", {}), **moved}
        if old.get("genomes") == genomes:
            result["heads"] = {k: h for k, h in old["heads"].items() if k not in args.heads.split(",")}
            earlier = old.get("heads_earlier", {})
        if earlier:
            result["heads_earlier"] = earlier
    for name in args.heads.split(","):
        h = head_scores(name, HEADS[name], genomes, args)
        h["tau_with_judge"] = kendall_tau([h["mean"][g] for g in genomes], [judge[g] for g in genomes])
        result["heads"][name] = h
        Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    for name, h in result["heads"].items():
        refs = h["references"]
        print(f"{name:<20} tau with the judge {h['tau_with_judge']:+.2f}, retest tau {h['retest_tau']}, noise "
              f"{h['seed_noise']}, refs {', '.join(f'{k} {v:.1f}' for k, v in refs.items())}, "
              f"{h['seconds_per_genome']:.0f} s a genome")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
