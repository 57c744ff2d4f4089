"""The compare table read into rows and written as text: cells with their loyalty, the yardstick rows (teacher,
reference students, constant), the dev rows, headroom and floors, and the Markdown lines of ``comparison.md`` (header,
dev table, yardsticks, int8 table, the not-learnt sentence).  May import ``jobs``, ``comparison``, ``evaluators``
(reference rows' arithmetic), ``storage`` and the top-level modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from . import recipe
from .comparison import AVERAGE, Cell, loyalty, rivals_text
from ..config import Config
from ..distill.identity import teacher_label
from ..extraction import gene_legend
from .jobs import Job, LOYALTY_SEED, REFERENCE_STUDENTS, TRUNCATION, _outputs_path

if TYPE_CHECKING:
    from .worker import CompareWorker


def _cells(out: Path, wanted: Sequence[Job], done: Mapping[Job, dict | None],
           teacher: Mapping[str, Path | None]) -> list[Cell]:
    """Finished cells, with loyalty to the teacher's dev outputs ``teacher`` (task -> file, :func:`teacher_outputs`)."""
    cells = []
    for job in wanted:
        record = done.get(job)
        if record is None:
            continue
        loy = _loyalty(teacher.get(job.task), _outputs_path(out, job))
        cells.append(Cell(mapping=job.mapping, distill_seed=job.distill_seed, task=job.task, seed=job.seed, score=float(record["score"]),
                          metrics=dict(record.get("metrics", {})), loyalty=loy))
    return cells


def _loyalty(teacher_path: Path | None, student_path: Path) -> dict[str, float]:
    if teacher_path is None or not (teacher_path.is_file() and student_path.is_file()):
        return {}
    with np.load(teacher_path) as t, np.load(student_path) as s:
        splits = [k for k in t.files if k in s.files]
        if not splits:
            return {}
        return loyalty(np.concatenate([s[k] for k in splits]), np.concatenate([t[k] for k in splits]))


def _loyalty_entry(teacher: Mapping[str, Path | None], ambiguous: Sequence[str]) -> dict:
    """The table's ``loyalty_teacher``: which teacher loyalty is measured against, the tasks whose teacher outputs are an
    ambiguous old file, and those whose seed-0 teacher outputs are not in the folder at all (a failed cell, or a
    teacher row read with ``--teacher-from`` from a folder that had no unambiguous copy)."""
    absent = [t for t, path in teacher.items() if path is None and t not in ambiguous]
    return {"seed": LOYALTY_SEED, "ambiguous": list(ambiguous), "absent": absent}


def reference_rows(config: Config, tasks: Sequence[str], done: Mapping[Job, dict | None], teacher_jobs: Sequence[Job],
                   reference_jobs: Sequence[Job], worker: "CompareWorker") -> dict:
    """The compare table's yardsticks, per task and on the average: the fine-tuned teacher and the fine-tuned students
    with no distillation (mean and std over their seed units: ``no distillation``, or with teacher initialisation
    ``truncation`` and ``random``, :data:`REFERENCE_STUDENTS`), and the best constant predictor of each dev set."""
    from ..evaluators.references import constant_scores

    rows: dict[str, dict] = {}
    groups = [("teacher", teacher_jobs)] + [(REFERENCE_STUDENTS[key], [j for j in reference_jobs if j.mapping == key])
                                           for key in dict.fromkeys(j.mapping for j in reference_jobs)]
    for name, jobs in groups:
        per_task = {t: {j.seed: done[j]["score"] for j in sorted(jobs, key=lambda j: j.seed)
                        if j.task == t and done.get(j) is not None} for t in tasks}
        rows[name] = {t: {"mean": float(np.mean(list(v.values()))) if v else None,
                          "std": float(np.std(list(v.values()), ddof=1)) if len(v) > 1 else None, "n": len(v),
                          "scores": {str(seed): score for seed, score in v.items()}}   # by fine-tuning seed: to pair
                      for t, v in per_task.items()}
    constant = {}
    for t in tasks:
        data = worker._task(t)
        constant[t] = {"mean": _constant(data, scored=True), "std": None, "n": 1}
    rows["constant"] = constant
    for row in rows.values():
        means = [row[t]["mean"] for t in tasks]
        row[AVERAGE] = {"mean": float(np.mean(means)) if all(m is not None for m in means) else None, "std": None,
                        "n": min(row[t]["n"] for t in tasks)}
    return rows


def _constant(data, *, scored: bool) -> float:
    """The best constant predictor's score where the table reads its scores: the scoring split when there is one and
    ``scored``, else the dev splits."""
    from proxy_tasks.holdout import SCORE

    from ..evaluators.references import constant_scores

    if scored and SCORE in data.held_out:
        labels = np.asarray([e.label for e in data.held_out[SCORE]])
        return constant_scores(data.task, {split: labels for split in data.task.dev_splits})
    return constant_scores(data.task, {split: np.asarray([e.label for e in ex]) for split, ex in data.dev.items()})


def dev_rows(config: Config, tasks: Sequence[str], done: Mapping[Job, dict | None], wanted: Sequence[Job],
             teacher_jobs: Sequence[Job], reference_jobs: Sequence[Job], worker: "CompareWorker") -> dict:
    """The official dev scores of the same fine-tuned cells (a table whose verdicts read the scoring split): row ->
    task (and average) -> mean and std over its cells, for every mapping and the reference rows."""
    groups: dict[str, list[Job]] = {}
    for job in wanted:
        groups.setdefault(job.mapping, []).append(job)
    groups["teacher"] = list(teacher_jobs)
    if not reference_jobs:                          # as every folder before the teacher-initialised rows
        groups["no distillation"] = []
    for job in reference_jobs:
        groups.setdefault(REFERENCE_STUDENTS[job.mapping], []).append(job)
    rows: dict[str, dict] = {}
    for name, jobs in groups.items():
        per_task = {t: [done[j]["dev_score"] for j in jobs if j.task == t and (done.get(j) or {}).get("dev_score") is not None]
                    for t in tasks}
        row = {t: {"mean": float(np.mean(v)) if v else None, "std": float(np.std(v, ddof=1)) if len(v) > 1 else None}
               for t, v in per_task.items()}
        means = [row[t]["mean"] for t in tasks]
        row[AVERAGE] = {"mean": float(np.mean(means)) if None not in means else None, "std": None}
        rows[name] = row
    constant = {t: {"mean": _constant(worker._task(t), scored=False), "std": None} for t in tasks}
    constant[AVERAGE] = {"mean": float(np.mean([constant[t]["mean"] for t in tasks])), "std": None}
    rows["constant"] = constant
    return rows


def dev_lines(table: Mapping) -> list[str]:
    """The official dev scores' table (a table read on the scoring split), else nothing."""
    from proxy_tasks import get_task

    dev = table.get("dev")
    if not dev:
        return []
    tasks = table["tasks"]
    names = [get_task(t).glue_dir_name for t in tasks]
    lines = ["Official dev sets, the same fine-tuned students (mean ± std over the same seed units; the verdicts above "
             "read the scoring split, whose examples are more):", "",
             f"| row | {' | '.join(names)} | average |", "|---|" + "---|" * (len(tasks) + 1)]
    for name, row in dev.items():
        cells = [_fmt_cell(row[t]) for t in (*tasks, AVERAGE)]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines


def _fmt_cell(cell: Mapping) -> str:
    if cell.get("mean") is None:
        return "–"
    return f"{cell['mean']:.2f}" + (f" ± {cell['std']:.2f}" if cell.get("std") is not None else "")


def headroom_rows(table: Mapping) -> dict:
    """mapping -> task (and average) -> headroom recovered, (mean - floor) / (teacher - floor); a task's floor is
    the best non-teacher row (max(no distillation, constant), or max(truncation, random, constant)), the average's the mean
    over tasks of each task's floor (:func:`reference_floor`); None where the teacher does not beat the floor (no headroom) or a row is missing."""
    refs = table["references"]
    out: dict[str, dict] = {}
    for r in table["rows"]:
        t = r["task"]
        teacher, floor = refs["teacher"].get(t, {}).get("mean"), reference_floor(refs, table["tasks"], t)
        if None in (teacher, floor, r["mean"]):
            value = None
        else:
            value = (r["mean"] - floor) / (teacher - floor) if teacher > floor else None
        out.setdefault(r["mapping"], {})[t] = value
    return out


def reference_floor(refs: Mapping, tasks: Sequence[str], column: str) -> float | None:
    """The floor of a column of the table: a task's best non-teacher row, max(no distillation, constant) or with
    teacher initialisation max(truncation, random, constant); for the average, the mean over ``tasks`` of each task's
    floor (:func:`layermap.evaluators.references.average_floor`, as the proxy takes it), never the max of the rows'
    averages.  None where a row is missing."""
    from ..evaluators.references import average_floor

    columns = tasks if column == AVERAGE else [column]
    values = {name: {t: refs[name].get(t, {}).get("mean") for t in columns} for name in floor_names(refs)}
    if any(v is None for row in values.values() for v in row.values()):
        return None
    return average_floor(*values.values())


def floor_names(refs: Mapping) -> list[str]:
    """The rows of a table's ``references`` whose best is the floor: every row but the teacher."""
    return [name for name in refs if name != "teacher"]


def _floor_words(refs: Mapping) -> str:
    """``max(no distillation, constant)``, or ``max(truncation, random, constant)``."""
    return f"max({', '.join(floor_names(refs))})"


def quantized_lines(table: Mapping) -> list[str]:
    """The int8 columns of ``compare --quantize`` as a Markdown table."""
    q = table.get("quantized") or {}
    if table.get("quantize_error") and not q:
        return [f"Int8 students: not measured, `--quantize` failed ({table['quantize_error']})."]
    if not q:
        return []
    first = next(iter(q.values()))
    s = first["settings"]
    lines = [f"Int8 students (`--quantize`: ONNX Runtime dynamic int8 of each distilled student; latency on "
             f"{first['device']}, {s['threads']} thread(s), batch {s['batch_size']} × {s['seq_len']} tokens, median of "
             f"{s['repeats']}, PyTorch fp32 / ONNX fp32 / ONNX int8, so the runtime's change and int8's are apart; sizes "
             "of the same ONNX graph in fp32 and int8; scores through the linear probe head on the frozen encoder, not "
             "fine-tuned, its C cross-validated once on fp32's features and used for int8 too, with the share of equal "
             "dev predictions of fp32 and int8):", "",
             "| mapping | size ONNX fp32 → int8 (MB) | latency PyTorch fp32 / ONNX fp32 / ONNX int8 (ms) | "
             "probe average fp32 → int8 | agreement |", "|---|---|---|---|---|"]
    for m, r in q.items():
        tasks = r.get("tasks") or []
        fp32 = float(np.mean([t["fp32"] for t in tasks])) if tasks else None
        int8 = float(np.mean([t["int8"] for t in tasks])) if tasks else None
        agree = float(np.mean([t["agreement"] for t in tasks])) if tasks else None
        lat = r["latency"]
        lines.append(f"| {m} | {r['size_mb']['onnx_fp32']:.1f} → {r['size_mb']['onnx_int8']:.1f} | "
                     + " / ".join(f"{lat[k]['median_ms']:.2f}" for k in ("torch-fp32", "onnx-fp32", "onnx-int8")) + " | "
                     + (f"{fp32:.2f} → {int8:.2f} | {agree:.1f} % |" if fp32 is not None else "– | – |"))
    return lines


def _teacher_from_entry(records: Sequence[dict | None]) -> dict | None:
    """The folder the teacher row's cells (``records``) were read from and how many (None when all were computed
    here)."""
    names = [r["borrowed_from"] for r in records if r is not None and r.get("borrowed_from")]
    return {"folder": names[0], "cells": len(names)} if names else None


def _slice_entry(config: Config, teacher_cfg, init: str) -> dict:
    """``{"slice": ...}`` where the students are cut from the teacher and narrower than it (``student.slice`` chose
    which of its units they keep); nothing otherwise."""
    from ..extraction import slice_matters

    s = config.student
    return {"slice": s.slice} if slice_matters(init, s.hidden_size, s.heads, s.ffn, teacher_cfg) else {}


def _budget(config: Config) -> dict:
    c = config.compare
    return {"max_steps": c.max_steps, "epochs": c.epochs, "batch_size": c.batch_size, "seq_len": c.seq_len,
            "learning_rate": c.learning_rate, "max_segments": c.max_segments, "fraction": c.fraction,
            "finetune": {"max_train": c.max_train, "max_eval": c.max_eval, "epochs": c.finetune_epochs,
                         "batch_size": c.finetune_batch_size, "learning_rate": c.finetune_learning_rate,
                         "seq_len": c.finetune_seq_len}}


def _header(table: dict) -> list[str]:
    b, s = table["budget"], table["student"]
    steps = f"{b['max_steps']} steps" if b["max_steps"] else f"{b['epochs']:g} epochs"
    distilled = bool(b["max_steps"] or b["epochs"])
    ft = b["finetune"]
    avg = [r["std"] for r in table["rows"] if r["task"] == AVERAGE and r["std"] is not None]
    noise = (f"Seed noise: the standard deviation of a mapping's average over seeds is {min(avg):.2f}–{max(avg):.2f} points."
             if avg else "Seed noise: not measured (one seed).")
    n_units = len(table["units"])
    rec = table.get("recipe") or {}
    rate = (f"learning rate {ft['learning_rate']:g}" if len(rec.get("rates", [0])) < 2
            else "learning rate chosen per student family (below)")
    where = (f"the scoring split ({rec['score_examples']} held-out training examples per task; the dev sets below)"
             if rec.get("scored_on") == "score" else "GLUE dev metrics")
    lines = [
        f"# Final-stage comparison ({len(table['mappings'])} mappings, {len(table['tasks'])} tasks, {n_units} seed units)",
        "",
        f"Teacher `{teacher_label(table['teacher']['name'])}` ({table['teacher']['layers']} layers"
        + (f", {table['teacher']['identity']}" if table["teacher"].get("identity") else "") + f") → {s['layers']}-layer, "
        f"{s['hidden_size']}-wide student, initialisation `{s['init']}`"
        + (f" ({SLICE_WORDS[s['slice']]})" if s.get("slice") in SLICE_WORDS else "") + ". "
        + (_gene_words(table) if s["init"] == "teacher" else "")
        + (f"Full distillation: {steps} of {b['batch_size']} × {b['seq_len']} tokens, learning rate "
           f"{b['learning_rate']:g}. " if distilled else "No distillation: each student is its initialisation. ")
        + "Fine-tuning: "
        f"{ft['max_train'] or 'all'} training examples per task, {ft['epochs']:g} epochs, {rate}, "
        f"{table['seeds']} seeds × {table['distill_seeds']} distillation seed(s). "
        f"Scores: {where} in percent (two-metric tasks: their mean), mean ± std over seed units.",
        "",
        f"{noise} Each mapping is compared with the reference ({table['reference_kind']}: {table['reference']}) "
        f"by the paired difference over the shared {_unit_words(table)}, with a 95 % Student-t interval; "
        f"'better' only when paired t-tests against {rivals_text(table)} all find it above (Holm–Bonferroni-adjusted p "
        "below 0.05 within each task, and for the average), 'worse' only when the test against the reference finds "
        "it below (the note under the table says how).",
    ]
    if recipe.recipe_lines(table):
        lines += ["", *recipe.recipe_lines(table)]
    if table.get("references"):
        lines += ["", *reference_lines(table)]
    if table.get("quantized") or table.get("quantize_error"):
        lines += ["", *quantized_lines(table)]
    elif table.get("teacher_scores"):
        lines += ["", "Fine-tuned teacher (seed 0): " + ", ".join(f"{t} {v:.2f}" for t, v in table["teacher_scores"].items())]
    return lines


SLICE_WORDS = {"leading": "cut from the teacher by the leading slice: its first heads, FFN units and residual dimensions",
               "importance": "cut from the teacher by the importance slice: the heads, FFN units and residual dimensions "
                             "its weights rank highest"}


def _gene_words(table: Mapping) -> str:
    """What a compared mapping's genes mean with teacher initialisation (:func:`layermap.extraction.gene_legend`: a
    mapping's gene, gene 0 and a split mapping ``i+k``)."""
    legend = gene_legend("teacher", "coupled")
    return f"Mappings: {legend}. "


def reference_lines(table: Mapping) -> list[str]:
    """The yardsticks as a Markdown table (teacher, no distillation or truncation and random, constant; mean ± std
    over seed units) and each
    mapping's headroom recovered on the average, with a sentence when the students have not learnt."""
    from ..evaluators.references import format_headroom

    refs, tasks = table["references"], [*table["tasks"], AVERAGE]

    def cell(d):
        if d.get("mean") is None:
            return "–"
        return f"{d['mean']:.2f}" + (f" ± {d['std']:.2f}" if d.get("std") is not None else "")

    students = ("for a student with no distillation" if TRUNCATION not in refs else
                f"for the plain truncation (the bottom {table['student']['layers']} teacher layers copied, no distillation) "
                "and a random student with no distillation")
    lines = [f"Reference rows (the same fine-tuning for the teacher and {students}; the constant "
             "is the best constant prediction on each dev set):", "",
             "| reference | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for name in refs:
        lines.append(f"| {name} | " + " | ".join(cell(refs[name].get(t, {})) for t in tasks) + " |")
    floors = [reference_floor(refs, table["tasks"], t) for t in tasks]
    lines.append(f"| floor: {_floor_words(refs)}; average: mean of the task floors | "
                 + " | ".join("–" if f is None else f"{f:.2f}" for f in floors) + " |")
    borrowed = table.get("teacher_from")
    if borrowed:
        lines += ["", f"The teacher row's {borrowed['cells']} fine-tuning cell(s) were read from the compare folder "
                      f"`{borrowed['folder']}` (the same teacher, fine-tuning settings, task data, library versions and "
                      "device class; `--teacher-from`)."]
    room = table.get("headroom", {})
    lines += ["", "Headroom recovered on the average, (mapping − floor) / (teacher − floor) with the floor the mean over "
              f"tasks of each task's {_floor_words(refs)}: "
              + ", ".join(f"{m} {format_headroom(room.get(m, {}).get(AVERAGE))}" for m in table["mappings"]) + "."]
    sentence = not_learnt_sentence(table)
    return lines + (["", sentence] if sentence else [])


def not_learnt_sentence(table: Mapping) -> str | None:
    """The sentence a table carries when its students cannot be ranked (:func:`layermap.evaluators.references.not_learnt`,
    the proxy's rule): it names the condition that fired, the teacher's average less than the noise margin above the
    floor, or the best mapping's (the teacher then given with its own distance from the floor)."""
    from ..evaluators.references import noise_margin, not_learnt

    refs = table["references"]
    best = max((r["mean"] for r in table["rows"] if r["task"] == AVERAGE and r["mean"] is not None), default=None)
    teacher, floor = refs["teacher"][AVERAGE]["mean"], reference_floor(refs, table["tasks"], AVERAGE)
    if None in (best, teacher, floor):
        return None
    avg_std = [r["std"] for r in table["rows"] if r["task"] == AVERAGE and r["std"] is not None]
    noise = max(avg_std) if avg_std else 0.0
    where = f"the floor {floor:.2f} (the mean over tasks of each task's {_floor_words(refs)})"
    margin = (f"less than the noise margin {noise_margin(noise):.2f} (1.96 × √2 × the largest seed std of an average, "
              f"{noise:.2f})")
    sentences = {
        "teacher": (f"**The students cannot be ranked at this budget:** the teacher's average {teacher:.2f} is "
                    f"{teacher - floor:+.2f} from {where}, {margin}, so no student can be told from the floor; the "
                    "ranking of the mappings is noise."),
        "best": (f"**The students have not learnt at this budget:** the best mapping's average {best:.2f} is "
                 f"{best - floor:+.2f} from {where}, {margin}, while the teacher's {teacher:.2f} is "
                 f"{teacher - floor:+.2f} from it; the ranking of the mappings is noise."),
    }
    return sentences.get(not_learnt(teacher, best, floor, noise))


def _unit_words(table: dict) -> str:
    """What the table's verdicts pair over, in words."""
    if table.get("unit") == "distillation seed":
        return "distillation seeds (each a student's mean over its fine-tuning seeds)"
    if table.get("unit") == "fine-tuning seed":
        return "fine-tuning seeds of one distilled student per mapping"
    return "seed units"
