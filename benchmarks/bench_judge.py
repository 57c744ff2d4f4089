"""The judge's resolution and repeatability, read from compare folders (issue 29; benchmarks/bench_judge.sh makes them).

For every student of the folders (each mapping, the undistilled reference student, the teacher) it takes the
per-unit scores of every finished cell from the folder's store (the table's scoring split; the dev score beside it)
and reports:

* variance components of a score (the fine-tuning seed, the distillation seed where a folder has two or more, the
  scoring split's examples by bootstrap), :mod:`layermap.final.resolution`;
* the standard deviation of a paired difference between two students of one folder, measured (the students share
  their fine-tuning seeds, so it is smaller than twice a score's variance) and pooled over the pairs;
* the smallest difference on the average of the tasks that a compare detects at 80 % power, for the seed counts
  measured and for others (from the measured paired std), with the CPU time each costs (from the cells' own timings);
* split-half repeatability: the seed units of each student cut into two halves (by distillation seed where it has
  two or more, else by fine-tuning seed), each half ranks the students, Kendall's tau between the halves.

    python benchmarks/bench_judge.py --folders results/judge/random results/judge/extracted --out results/judge
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from layermap.final.resolution import (bootstrap_difference_sd, detectable_difference, split_half_tau,  # noqa: E402
                                       variance_components)


def _cells(folder: Path) -> list[dict]:
    """Every complete measured cell of a folder (fine-tuning and teacher cells; selection cells left out)."""
    with sqlite3.connect(f"file:{folder / 'layermap.sqlite'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT kind, mapping, distill_seed, task, seed, record FROM cells "
                          "WHERE status = 'complete' AND kind IN ('finetune', 'teacher')").fetchall()
    return [dict(kind=k, mapping=m, d=d, task=t, s=s, record=json.loads(r)) for k, m, d, t, s, r in rows]


def _init_label(folder: Path) -> str:
    """'random' or 'extracted': the folder's student initialisation, as its table records it."""
    table = json.loads((folder / "comparison.json").read_text("utf-8"))
    return "extracted" if table.get("student", {}).get("init") == "teacher" else "random"


def _student_name(folder: Path, cell: dict) -> str:
    if cell["kind"] == "teacher":
        return "teacher"
    label = _init_label(folder)
    return f"{label} {'no distillation' if cell['mapping'] == 'no-distillation' else cell['mapping']}"


def collect(folders: list[Path]) -> tuple[dict, dict, dict[Path, list[str]]]:
    """student -> (d, s) -> task -> record; student -> its folder; folder -> its tasks."""
    students: dict[str, dict] = {}
    home: dict[str, Path] = {}
    tasks: dict[Path, set[str]] = {}
    for folder in folders:
        for cell in _cells(folder):
            name = _student_name(folder, cell)
            students.setdefault(name, {}).setdefault((cell["d"], cell["s"]), {})[cell["task"]] = cell["record"]
            home.setdefault(name, folder)
            tasks.setdefault(folder, set()).add(cell["task"])
    return students, home, {f: sorted(t) for f, t in tasks.items()}


def unit_scores(students: dict, tasks: list[str], key: str = "score") -> dict[str, dict[tuple, float]]:
    """student -> unit -> the average over the tasks of ``key`` (units missing a task are left out)."""
    out: dict[str, dict[tuple, float]] = {}
    for name, units in students.items():
        for unit, by_task in units.items():
            if all(t in by_task and by_task[t].get(key) is not None for t in tasks):
                out.setdefault(name, {})[unit] = float(np.mean([by_task[t][key] for t in tasks]))
    return out


def halves(units: list[tuple]) -> tuple[list, list]:
    """Two disjoint halves of a student's units: by distillation seed where it has two or more, else fine-tuning."""
    ds = sorted({d for d, _ in units})
    if len(ds) >= 2:
        cut = ds[: len(ds) // 2]
        return [u for u in units if u[0] in cut], [u for u in units if u[0] not in cut]
    ss = sorted({s for _, s in units})
    cut = ss[: len(ss) // 2]
    return [u for u in units if u[1] in cut], [u for u in units if u[1] not in cut]


def split_half(scores: dict[str, dict[tuple, float]]) -> dict:
    """Kendall tau between two halves' rankings; each student halved on its own units (relabelled 'a' and 'b')."""
    relabelled = {}
    for name, by_unit in scores.items():
        a, b = halves(sorted(by_unit))
        if a and b:
            relabelled[name] = {"a": float(np.mean([by_unit[u] for u in a])), "b": float(np.mean([by_unit[u] for u in b]))}
    if len(relabelled) < 3:
        return None                                  # too few students with two halves to rank
    out = split_half_tau({n: {0: v["a"], 1: v["b"]} for n, v in relabelled.items()}, ([0], [1]))
    out["halves"] = {n: {"units": [list(u) for u in halves(sorted(scores[n]))[0]],
                         "other": [list(u) for u in halves(sorted(scores[n]))[1]]} for n in relabelled}
    return out


def paired_sd(scores: dict[str, dict[tuple, float]], home: dict[str, Path], by_cell: bool = False) -> dict:
    """The std of a per-unit paired difference between two students of one folder (shared units), pooled over pairs;
    per folder, and per unit kind (distillation seed means, fine-tuning units)."""
    out = {}
    by_folder: dict[Path, list[str]] = {}
    for name in scores:
        if name != "teacher":
            by_folder.setdefault(home[name], []).append(name)
    for folder, names in by_folder.items():
        variances, n_units = [], []
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                shared = sorted(set(scores[a]) & set(scores[b]))
                ds = sorted({d for d, _ in shared})
                if len(ds) >= 2 and not by_cell:     # the verdict unit: a distillation seed's mean over its seeds
                    diffs = [np.mean([scores[a][u] - scores[b][u] for u in shared if u[0] == d]) for d in ds]
                else:
                    diffs = [scores[a][u] - scores[b][u] for u in shared]
                if len(diffs) >= 2:
                    variances.append(float(np.var(diffs, ddof=1)))
                    n_units.append(len(diffs))
        if variances:
            out[folder.name] = {"sd": math.sqrt(float(np.mean(variances))), "pairs": len(variances),
                                "units": int(min(n_units))}
    return out


def example_component(students: dict, home: dict, tasks: list[str], draws: int = 500) -> dict:
    """Bootstrap std over the scoring split's examples of the difference of two students' task-average score (each
    student's per-unit predictions, the metric recomputed on every resample), for adjacent pairs of one folder."""
    from layermap.config import load_config
    from layermap.final import recipe

    out = {}
    by_folder: dict[Path, list[str]] = {}
    for name in students:
        if name != "teacher":
            by_folder.setdefault(home[name], []).append(name)
    for folder, names in by_folder.items():
        config = load_config(str(folder / "config.toml"), ())
        labels = {t: np.asarray([e.label for e in recipe.load_task_data(config, t).held_out["score"]]) for t in tasks}

        def predictions(name: str, task: str) -> list[np.ndarray]:
            mapping = name.split(" ", 1)[1]
            mapping = "no-distillation" if mapping == "no distillation" else mapping
            preds = []
            for (d, s) in sorted(students[name]):
                path = folder / "outputs" / mapping / f"{task}_d{d}_s{s}.npz"
                if path.is_file():
                    with np.load(path) as z:
                        preds.append(z["score"].argmax(axis=1))
            return preds

        rng = np.random.default_rng(0)
        sds = []
        ordered = sorted(names)
        for a, b in zip(ordered, ordered[1:]):
            pa = {t: predictions(a, t) for t in tasks}
            pb = {t: predictions(b, t) for t in tasks}
            if not all(pa[t] and pb[t] for t in tasks):
                continue
            diffs = []
            for _ in range(draws):
                idx = {t: rng.integers(0, len(labels[t]), len(labels[t])) for t in tasks}
                diffs.append(_score_idx(pa, labels, tasks, idx) - _score_idx(pb, labels, tasks, idx))
            sds.append(float(np.std(diffs, ddof=1)))
        if sds:
            out[folder.name] = {"sd": float(np.mean(sds)), "pairs": len(sds), "draws": draws}
    return out


def _score_idx(preds: dict, labels: dict, tasks: list[str], idx: dict) -> float:
    from proxy_tasks import get_task
    from proxy_tasks.metrics import compute_metrics, task_score

    per_task = []
    for t in tasks:
        spec = get_task(t)
        split = spec.dev_splits[0]
        per_task.append(np.mean([task_score(compute_metrics(spec, {split: p[idx[t]]}, {split: labels[t][idx[t]]}))
                                 for p in preds[t]]))
    return float(np.mean(per_task))


def cell_seconds(students: dict) -> dict[str, float]:
    """Mean CPU-seconds of a measured cell per student kind (its record's fine-tuning + evaluation time)."""
    out: dict[str, list[float]] = {}
    for name, units in students.items():
        for by_task in units.values():
            for record in by_task.values():
                t = record.get("timings", {})
                out.setdefault(name, []).append(float(t.get("total") or (t.get("finetune", 0) + t.get("eval", 0))))
    return {k: float(np.mean(v)) for k, v in out.items()}


def distill_seconds(folder: Path) -> float | None:
    """Mean CPU-seconds of one distillation of a folder (None where it distils nothing)."""
    with sqlite3.connect(f"file:{folder / 'layermap.sqlite'}?mode=ro", uri=True) as db:
        rows = [json.loads(r) for (r,) in db.execute("SELECT record FROM cells WHERE status = 'complete' AND "
                                                      "kind = 'distill'").fetchall()]
    times = [float(r.get("timings", {}).get("total", 0)) for r in rows if r.get("steps", 0)]
    return float(np.mean(times)) if times else None


def selection_seconds(folder: Path) -> float:
    """Mean CPU-seconds a student family's rate selection costs (every grid rate on every task; the teacher's left
    out: later compares read it with --teacher-from)."""
    with sqlite3.connect(f"file:{folder / 'layermap.sqlite'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT mapping, record FROM cells WHERE status = 'complete' AND kind = 'select' AND "
                          "mapping != 'teacher'").fetchall()
    per_family: dict[str, float] = {}
    for mapping, record in rows:
        per_family[mapping] = per_family.get(mapping, 0.0) + float(json.loads(record).get("timings", {}).get("total", 0))
    return float(np.mean(list(per_family.values()))) if per_family else 0.0


def units_for(sd: float, target: float, most: int = 200) -> int | None:
    """The fewest verdict units whose detectable difference is at most ``target`` points (None beyond ``most``)."""
    return next((n for n in range(2, most + 1) if detectable_difference(sd, n) <= target), None)


def folder_resolution(folder: Path, students: dict, home: dict, tasks: list[str], draws: int) -> dict:
    """One folder on its own tasks: variance components, paired-difference std, the example bootstrap, the smallest
    detectable difference for 2..8 units, and the units and CPU time a 1.5- and a 1.0-point resolution cost."""
    own = {n: u for n, u in students.items() if home[n] == folder}
    scores = unit_scores(own, tasks)
    table = {(n.split(" ", 1)[1], d, s): v for n, by_unit in scores.items() if n != "teacher"
             for (d, s), v in by_unit.items()}
    out: dict = {"tasks": tasks}
    if table:
        out["components"] = variance_components(table).to_json()
    paired = paired_sd(scores, home).get(folder.name)
    out["paired_difference"] = paired
    # the design of one student per mapping (demo's compare.distill_seeds = 1): the unit is a fine-tuning seed
    cells = paired_sd(scores, home, by_cell=True).get(folder.name)
    out["paired_difference_per_cell"] = cells
    if cells:
        out["detectable_difference_per_cell"] = {str(n): detectable_difference(cells["sd"], n) for n in (2, 3, 4, 5, 6, 8)}
        seconds = cell_seconds({n: u for n, u in own.items() if n != "teacher"})
        cell = float(np.mean(list(seconds.values()))) if seconds else 0.0
        out["cost_per_cell"] = {str(target): {"units": (n := units_for(cells["sd"], target)), "cpu_seconds_per_mapping":
                                              None if n is None else selection_seconds(folder)
                                              + (distill_seconds(folder) or 0.0) + n * cell * len(tasks)}
                                for target in (1.5, 1.0)}
    out["examples"] = example_component(own, home, tasks, draws).get(folder.name)
    if paired:
        out["detectable_difference"] = {str(n): detectable_difference(paired["sd"], n) for n in (2, 3, 4, 5, 6, 8)}
        seconds = cell_seconds({n: u for n, u in own.items() if n != "teacher"})
        cell = float(np.mean(list(seconds.values()))) if seconds else 0.0
        finetune_seeds = max(len({s for _, s in u}) for n, u in own.items() if n != "teacher")
        distill_seeds = max(len({d for d, _ in u}) for n, u in own.items() if n != "teacher")
        per_unit = (distill_seconds(folder) or 0.0) + cell * len(tasks) * (finetune_seeds if distill_seeds >= 2 else 1)
        out["unit"] = ("a distillation seed (its mean over the fine-tuning seeds)" if distill_seeds >= 2
                       else "a fine-tuning seed")
        out["unit_cpu_seconds"] = per_unit
        out["selection_cpu_seconds"] = select = selection_seconds(folder)
        out["cost"] = {str(target): {"units": (n := units_for(paired["sd"], target)),
                                     "cpu_seconds_per_mapping": None if n is None else select + n * per_unit}
                       for target in (1.5, 1.0)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folders", nargs="+", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--draws", type=int, default=500)
    args = ap.parse_args(argv)
    folders = [Path(f) for f in args.folders]
    students, home, tasks = collect(folders)
    common = sorted(set.intersection(*(set(t) for t in tasks.values())))       # the tasks every folder measured
    scores = unit_scores(students, common)
    dev = unit_scores(students, common, "dev_score")
    seconds = cell_seconds(students)
    per_task = {n: {t: float(np.mean([r[t]["score"] for r in u.values() if t in r])) for t in tasks[home[n]]}
                for n, u in students.items()}
    result = {
        "tasks": common, "scored_on": "the scoring split (held-out training examples)",
        "students": {n: {"mean": float(np.mean(list(v.values()))), "units": len(v), "per_task": per_task[n],
                         "dev_mean": float(np.mean(list(dev[n].values()))) if n in dev else None,
                         "folder": home[n].name, "cell_seconds": seconds.get(n)} for n, v in sorted(scores.items())},
        "folders": {f.name: folder_resolution(f, students, home, tasks[f], args.draws) for f in folders},
        "split_half": split_half(scores), "split_half_dev": split_half(dev),
        # within one folder (one regime: the teacher left out), where the students are closer together
        "split_half_within": {f.name: split_half({n: v for n, v in scores.items() if home[n] == f and n != "teacher"})
                              for f in folders},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "judge.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    _plot(result, out / "judge.png")
    _print(result)
    return 0


def _print(result: dict) -> None:
    print(f"tasks: {', '.join(result['tasks'])}; scores on {result['scored_on']}")
    for n, s in sorted(result["students"].items(), key=lambda kv: -kv[1]["mean"]):
        dev = f"{s['dev_mean']:.2f}" if s["dev_mean"] is not None else "-"
        print(f"  {n:<28} {s['mean']:6.2f}  (dev {dev}; {s['units']} units; {s['cell_seconds'] or 0:.0f} s a cell)")
    for f, r in result["folders"].items():
        print(f"{f} ({', '.join(r['tasks'])}):")
        if c := r.get("components"):
            ds = "-" if c["distill_seed"] is None else f"{c['distill_seed']:.2f}"
            print(f"  sigma fine-tuning seed {c['finetune_seed']:.2f}, distillation seed {ds}")
        if p := r.get("paired_difference"):
            print(f"  paired-difference std {p['sd']:.2f} over {p['pairs']} pairs ({p['units']} units of "
                  f"{r['unit']}); detectable at 80 %: "
                  + ", ".join(f"n={n} {v:.2f}" for n, v in r["detectable_difference"].items()))
            for target, c in r["cost"].items():
                cost = "-" if c["units"] is None else f"{c['units']} units, {c['cpu_seconds_per_mapping'] / 3600:.1f} " \
                                                      "CPU-hours a mapping"
                print(f"  a {target}-point resolution: {cost}")
        if p := r.get("paired_difference_per_cell"):
            print(f"  one student per mapping (unit: a fine-tuning seed): paired-difference std {p['sd']:.2f}; "
                  "detectable at 80 %: " + ", ".join(f"n={n} {v:.2f}"
                                                     for n, v in r["detectable_difference_per_cell"].items()))
            for target, c in r["cost_per_cell"].items():
                cost = "-" if c["units"] is None else f"{c['units']} fine-tuning seeds, " \
                                                      f"{c['cpu_seconds_per_mapping'] / 3600:.1f} CPU-hours a mapping"
                print(f"    a {target}-point resolution: {cost}")
        if e := r.get("examples"):
            print(f"  the scoring split's examples add a std {e['sd']:.2f} to a paired difference")
    t = result["split_half"]
    if t is None:
        print("split-half: fewer than three students with two halves of seeds")
        return
    print(f"split-half Kendall tau over {len(t['students'])} students: {t['tau']:.2f}"
          + (f" (dev sets: {result['split_half_dev']['tau']:.2f})" if result.get("split_half_dev") else ""))
    for f, w in result["split_half_within"].items():
        if w:
            print(f"  within {f}: Kendall tau {w['tau']:.2f} over {len(w['students'])} students")


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result["split_half"] or {"students": [], "first": [0.0], "second": [0.0], "tau": float("nan")}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    ax = axes[0]
    colours = ["black" if n == "teacher" else "tab:orange" if n.startswith("extracted") else "tab:blue"
               for n in t["students"]]
    ax.scatter(t["first"], t["second"], color=colours)
    for name, x, y in zip(t["students"], t["first"], t["second"]):
        ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    lo = min(t["first"] + t["second"]) - 1
    hi = max(t["first"] + t["second"]) + 1
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=0.8, ls="--")
    ax.set_xlabel("first half of the seeds: average score")
    ax.set_ylabel("second half of the seeds: average score")
    ax.set_title(f"Split-half repeatability, Kendall tau {t['tau']:.2f}")
    ax = axes[1]
    for name, r in result["folders"].items():
        if not r.get("detectable_difference"):
            continue
        by_n = r["detectable_difference"]
        ns = [int(n) for n in by_n]
        ax.plot(ns, [by_n[str(n)] for n in ns], marker="o", label=f"{name}, {'+'.join(r['tasks'])} (paired std "
                f"{r['paired_difference']['sd']:.2f})")
    ax.axhline(1.5, color="0.5", ls=":", lw=1)
    ax.set_xlabel("verdict units (distillation seeds, or fine-tuning seeds of one student)")
    ax.set_ylabel("smallest difference detected at 80 % power (points)")
    ax.set_title("Resolution of the final stage")
    ax.legend(fontsize=8)
    fig.suptitle(f"The judge: scores on {result['scored_on']}; repeatability on {', '.join(result['tasks'])} "
                 "(blue: random students, orange: teacher-extracted, black: the teacher)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
