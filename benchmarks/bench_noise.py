"""Test–retest reliability of the proxy fitness, both heads side by side.

K genomes (the 4 baselines + seeded random ones) are each distilled under S independent seed sets
(seed set s sets ``distill.seed = s`` and ``proxy.seed = s``: another student initialisation and
corpus order, other task subsamples, other fine-tuning seeds).  Every distilled student is scored by
each head (``finetune`` and ``probe``) — the same student, so the heads are compared on the same
genomes and seeds.  Reported per head, for each task and for the fitness (``layermap.stats``):
Kendall τ and Spearman ρ between seed sets across genomes, the seed std (pooled within-genome
std), the spread across genomes (std of genome means), their ratio (SNR); and the wall time per
evaluation and the τ between the heads (on the seed-set means).  Run:

    python benchmarks/bench_noise.py --config smoke --out results/benchmarks/noise_smoke.json
    python benchmarks/bench_noise.py --config demo  --out results/benchmarks/noise_demo.json

Every (genome, seed set) is appended to ``--log`` (JSON lines) as it finishes; running the same
command again skips what the log holds, so a killed run resumes and ``--report-only`` writes the
figures from whatever finished.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from _common import add_common_args, machine, write
from layermap.config import load_config
from layermap.distill.identity import teacher_label
from layermap.distill.models import teacher_identity
from layermap.evaluators.proxy import ProxyEvaluator
from layermap.mapping import LayerMapping, baselines, enumerate_space, format_genes
from layermap.storage.records import json_safe
from layermap.stats import kendall_tau, reliability, spearman_rho

HEADS = ("finetune", "probe")


def pick_genomes(student_layers: int, teacher_layers: int, k: int, seed: int = 0) -> list[str]:
    """The baselines, then random distinct genomes of the free space (seeded), ``k`` in all."""
    chosen = [format_genes(g) for g in baselines(student_layers, teacher_layers).values()]
    rest = [format_genes(g) for g in enumerate_space(student_layers, teacher_layers, "free")
            if format_genes(g) not in chosen and any(g)]
    random.Random(seed).shuffle(rest)
    return list(dict.fromkeys(chosen + rest))[:k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--config", default="smoke")
    parser.add_argument("--genomes", type=int, default=12, help="K genomes: the 4 baselines + random ones")
    parser.add_argument("--seed-sets", type=int, default=2, help="S independent seed sets (0 .. S-1)")
    parser.add_argument("--heads", default="finetune,probe")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--probe-extra-tasks", default="",
                        help="tasks the probe head also scores (reported per task, not in the fitness), e.g. cola")
    parser.add_argument("--phased", action="store_true",
                        help="one head at a time over all genomes (the first head's figures are complete early); "
                             "distilled students are kept in --students-dir for the later heads")
    parser.add_argument("--only-seed-set", type=int, default=None,
                        help="compute only this seed set (run one process per seed set in parallel on one --log)")
    parser.add_argument("--students-dir", default="", help="where --phased keeps the distilled students")
    parser.add_argument("--log", default=None, help="JSON-lines log of finished evaluations (default: beside --out)")
    parser.add_argument("--report-only", action="store_true", help="write the figures from the log, compute nothing")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    heads = tuple(h.strip() for h in args.heads.split(",") if h.strip())
    log = Path(args.log or (Path(args.out).with_suffix(".jsonl") if args.out else "bench_noise.jsonl"))
    base = dict(teacher={"name": args.teacher}, corpus={"path": args.corpus}, proxy={"glue_dir": args.glue_dir},
                run={"cache_dir": args.cache_dir, "device": "cpu"})
    evaluators = [ProxyEvaluator(load_config(args.config, [*args.overrides, f"distill.seed={s}", f"proxy.seed={s}"], **base))
                  for s in range(args.seed_sets)]
    genomes = pick_genomes(evaluators[0].student_layers, evaluators[0].teacher_layers, args.genomes)
    done = _read_log(log)
    if not args.report_only:
        log.parent.mkdir(parents=True, exist_ok=True)
        for ev in evaluators:
            ev.prepare()                         # teacher, slice, teacher cache, task data: not timed
        extra = [_extra_tasks(ev, args.probe_extra_tasks) for ev in evaluators]
        groups = [(h,) for h in heads] if args.phased else [heads]
        for group in groups:                     # genome-major: every finished genome has all its seed sets
            for genome in genomes:
                for s, ev in enumerate(evaluators):
                    if args.only_seed_set is not None and s != args.only_seed_set:
                        continue
                    todo = tuple(h for h in group if h not in done.get((genome, s), {}).get("heads", {}))
                    if not todo:
                        continue
                    row = _evaluate(ev, genome, todo, extra[s], done.get((genome, s)), args.students_dir and
                                    Path(args.students_dir) / f"{genome}_s{s}.pt")
                    row.update(genome=genome, seed_set=s)
                    with log.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    _merge(done, row)
                    print(f"{genome} seed set {s}: " + "  ".join(f"{h} {row['heads'][h]['fitness']:.2f} "
                                                                 f"({row['heads'][h]['seconds']:.0f}s)" for h in todo), flush=True)
    figures = report(done, genomes, args.seed_sets, heads)
    c = evaluators[0].config
    figures.update(config=args.config, overrides=args.overrides, teacher=teacher_label(args.teacher),
                   teacher_identity=teacher_identity(args.teacher),
                   budget={"distill_steps": c.distill.max_steps, "distill_batch": c.distill.batch_size,
                           "segments": c.corpus.max_segments, "tasks": list(c.proxy.tasks),
                           "max_train": c.proxy.max_train, "max_eval": c.proxy.max_eval, "finetune_epochs": c.proxy.epochs},
                   seed_sets_meaning="seed set s: distill.seed = s and proxy.seed = s", threads=args.threads,
                   machine=machine())
    write(args.out, json_safe(figures))


def _extra_tasks(ev: ProxyEvaluator, names: str) -> tuple:
    from proxy_tasks import load_task

    p = ev.config.proxy
    return tuple(load_task(t.strip(), p.glue_dir or None, max_train=p.max_train or None, max_eval=p.max_eval or None,
                           seed=p.seed) for t in names.split(",") if t.strip())


def _evaluate(ev: ProxyEvaluator, genome: str, heads: tuple[str, ...], extra: tuple = (), before: dict | None = None,
              saved: Path | None = None) -> dict:
    """Distil once (or load the student an earlier phase distilled), then score the same student with every
    head; a head's wall time per evaluation is setup + distillation + that head."""
    from layermap.distill.loop import distill

    t_start = time.perf_counter()
    st = ev._load()
    mapping = LayerMapping.parse(genome, ev.teacher_layers)
    student = ev.new_student(mapping)
    if saved and saved.is_file() and before:
        student.load_state_dict(torch.load(saved, map_location="cpu"))
        student.eval()
        out = {k: before[k] for k in ("distill_seconds", "distill_loss", "setup_seconds")}
    else:
        t0 = time.perf_counter()
        _, stats = distill(student, st.source, mapping, st.segments, ev.config.distill,
                           teacher_width=st.teacher.hidden_size, device=st.device)
        out = {"distill_seconds": time.perf_counter() - t0, "distill_loss": stats.final_loss, "setup_seconds": t0 - t_start}
        if saved:
            saved.parent.mkdir(parents=True, exist_ok=True)
            torch.save(student.state_dict(), saved)
    common = out["setup_seconds"] + out["distill_seconds"]
    out["heads"] = {}
    for head in heads:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        tasks, replicates = ev.score_student(student, timings, head=head)
        out["heads"][head] = {"fitness": replicates[0], "tasks": {k: t.score for k, t in tasks.items()},
                              "seconds": common + time.perf_counter() - t0, "head_seconds": time.perf_counter() - t0}
    if extra and "probe" in heads:
        from proxy_tasks.probe import ProbeSettings, probe_and_score

        settings = ProbeSettings(max_seq_len=ev.config.proxy.seq_len)
        out["probe_extra"] = {d.task.name: probe_and_score(student, st.teacher.tokenizer, d, settings).score for d in extra}
    return out


def _merge(done: dict, row: dict) -> None:
    key = (row["genome"], row["seed_set"])
    if key in done:
        heads = {**done[key].get("heads", {}), **row.get("heads", {})}
        done[key] = {**done[key], **row, "heads": heads}
    else:
        done[key] = row


def _read_log(path: Path) -> dict:
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                _merge(done, json.loads(line))
    return done


def report(done: dict, genomes: list[str], seed_sets: int, heads: tuple[str, ...]) -> dict:
    """Statistics per head over the genomes whose every seed set finished with that head."""
    def finished(head: str) -> list[str]:
        return [g for g in genomes if all(head in done.get((g, s), {}).get("heads", {}) for s in range(seed_sets))]

    out: dict = {"benchmark": "proxy noise (test-retest)", "genomes_planned": genomes,
                 "genomes_done": {h: finished(h) for h in heads}, "heads": {}, "scores": {}}
    for head in heads:
        full = finished(head)
        if len(full) < 3:
            out["heads"][head] = {"note": f"only {len(full)} genomes finished; statistics need at least 3"}
            continue
        table = {g: [done[(g, s)]["heads"][head] for s in range(seed_sets)] for g in full}
        tasks = list(table[full[0]][0]["tasks"])
        h = {"genomes": len(full), "fitness": _rounded(reliability([[r["fitness"] for r in table[g]] for g in full]))}
        for t in tasks:
            h[t] = _rounded(reliability([[r["tasks"][t] for r in table[g]] for g in full]))
        secs = [r["seconds"] for g in full for r in table[g]]
        h["seconds_per_evaluation"] = round(sum(secs) / len(secs), 2)
        h["head_seconds_per_evaluation"] = round(sum(r["head_seconds"] for g in full for r in table[g]) / len(secs), 2)
        out["heads"][head] = h
        out["scores"][head] = {g: [round(r["fitness"], 3) for r in table[g]] for g in full}
        if head == "probe":
            extra_full = [g for g in full if all("probe_extra" in done[(g, s)] for s in range(seed_sets))]
            extra = sorted(done[(extra_full[0], 0)]["probe_extra"]) if len(extra_full) >= 3 else []
            for t in extra:
                h.setdefault("extra_tasks", {})[t] = _rounded(reliability(
                    [[done[(g, s)]["probe_extra"][t] for s in range(seed_sets)] for g in extra_full]))
    both = [g for g in genomes if all(g in out["scores"].get(h, {}) for h in heads[:2])]
    if len(heads) >= 2 and len(both) >= 3:
        a, b = heads[0], heads[1]
        mean_a = [sum(out["scores"][a][g]) / seed_sets for g in both]
        mean_b = [sum(out["scores"][b][g]) / seed_sets for g in both]
        per_set = [kendall_tau([done[(g, s)]["heads"][a]["fitness"] for g in both],
                               [done[(g, s)]["heads"][b]["fitness"] for g in both]) for s in range(seed_sets)]
        out["between_heads"] = {"heads": [a, b], "genomes": len(both),
                                "kendall_tau_of_means": round(kendall_tau(mean_a, mean_b), 3),
                                "spearman_rho_of_means": round(spearman_rho(mean_a, mean_b), 3),
                                "kendall_tau_per_seed_set": [round(t, 3) for t in per_set],
                                "speedup": round(out["heads"][a]["seconds_per_evaluation"]
                                                 / out["heads"][b]["seconds_per_evaluation"], 2)}
    return out


def _rounded(d: dict) -> dict:
    return {k: (round(v, 3) if isinstance(v, float) else [round(x, 3) for x in v] if isinstance(v, list) else v)
            for k, v in d.items()}


if __name__ == "__main__":
    main()
