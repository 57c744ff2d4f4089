"""The judge's fine-tuning recipe: the task data each cell sees, and each student family's learning rate.

One learning rate does not fit every student: a student that starts from teacher layers stays at chance at 5e-5 with a
[CLS] head and 94 steps, and a random one needs ten times the rate a pretrained one takes.  GLUE practice chooses the
rate per model on held-out data, so the final stage does (``compare.finetune_learning_rates``, a grid):

* a **family** is the set of students that share a rate: the teacher; the student with no distillation; and each
  mapping (all its distillation seeds: the rate is chosen on distillation seed 0's student);
* for each family and task, every rate of the grid fine-tunes once with the selection seed (:data:`SELECT_SEED`, never
  a measuring seed, so no measured cell is the one that won the choice) and is scored on the task's **selection
  split** (``compare.select_examples`` training examples kept out of fine-tuning,
  :func:`proxy_tasks.holdout.hold_out`); the best rate wins (the smaller on a tie);
* the measured cells then fine-tune with the winner.  They are read on the **scoring split**
  (``compare.score_examples`` other held-out training examples) when there is one, the official dev score beside it.

The choices live in ``DIR/recipe.json`` (written by the driver after the selection cells, read by every worker), and
every cell's record carries the rate it used.  Selection cells are ``("select", family, 0, task, i)`` for the grid's
``i``-th rate, keyed by the cell fingerprint and that rate.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence

from ..config import Config, digest

__all__ = ["RECIPE_NAME", "SELECT", "SELECT_SEED", "choose_rates", "grid", "load_task_data", "read_choices",
           "recipe_settings", "select_fingerprint", "select_jobs", "write_choices"]

SELECT = "select"
SELECT_SEED = 1000          # the selection runs' fine-tuning seed: measured cells use seeds 0 .. compare.seeds - 1
RECIPE_NAME = "recipe.json"
# [compare] keys of the recipe, with the value that keeps a folder from before them on its own fingerprint
RECIPE_DEFAULTS = {"finetune_learning_rates": (), "select_examples": 0, "score_examples": 0, "finetune_pooling": "cls"}


def grid(config: Config) -> tuple[float, ...]:
    """The learning rates a family chooses from (one: ``compare.finetune_learning_rate`` without a grid)."""
    c = config.compare
    return tuple(c.finetune_learning_rates) or (c.finetune_learning_rate,)


def recipe_settings(config: Config) -> dict:
    """The recipe keys that differ from :data:`RECIPE_DEFAULTS` (what enters a fingerprint: none for an old folder)."""
    c = config.compare
    return {k: (list(v) if isinstance(v, tuple) else v) for k in RECIPE_DEFAULTS
            if (v := getattr(c, k)) != RECIPE_DEFAULTS[k]}


def load_task_data(config: Config, name: str):
    """The task's data as every cell sees it: ``compare.max_train`` fine-tuning examples and the dev set, and with
    ``compare.score_examples`` / ``select_examples`` the held-out splits (fine-tuning examples then drawn from the
    rest).  Raises ``TaskError`` (one sentence) where the training file cannot spare them."""
    from proxy_tasks import load_task
    from proxy_tasks.holdout import hold_out

    c = config.compare
    glue = config.proxy.glue_dir or None
    if not (c.score_examples or c.select_examples):          # as every folder before the recipe: seed-0 subsets
        return load_task(name, glue, max_train=c.max_train or None, max_eval=c.max_eval or None, seed=0)
    full = load_task(name, glue, max_eval=c.max_eval or None, seed=0)
    return hold_out(full, score=c.score_examples, select=c.select_examples, max_train=c.max_train or None, seed=0)


def select_fingerprint(cell_fp: str, rate: float) -> str:
    """The key of a selection cell: its cell fingerprint (teacher or student) and the rate it tried."""
    return digest([cell_fp, SELECT, float(rate)])[:32]


def select_jobs(families: Sequence[str], tasks: Sequence[str], rates: Sequence[float]) -> list[tuple]:
    """One selection cell per family, task and rate (none with a grid of one)."""
    if len(rates) < 2:
        return []
    return [(SELECT, f, 0, t, i) for f in families for t in tasks for i in range(len(rates))]


def choose_rates(done: Mapping[tuple, dict | None], families: Sequence[str], tasks: Sequence[str],
                 rates: Sequence[float]) -> dict[str, dict[str, float]]:
    """family -> task -> the rate whose selection cell scored best (the first of the grid on a tie; the grid's
    first where every selection cell of the family failed, recorded so)."""
    chosen: dict[str, dict[str, float]] = {}
    for f in families:
        for t in tasks:
            scores = [(done.get((SELECT, f, 0, t, i)) or {}).get("select_score") for i in range(len(rates))]
            valid = [(s, -i) for i, s in enumerate(scores) if s is not None]
            chosen.setdefault(f, {})[t] = float(rates[-max(valid)[1]]) if valid else float(rates[0])
    return chosen


def write_choices(out: Path, chosen: Mapping[str, Mapping[str, float]]) -> None:
    """``DIR/recipe.json``, merged with what is there (atomic replace; the driver is the only writer)."""
    path = out / RECIPE_NAME
    data = read_choices(out)
    for family, by_task in chosen.items():
        data.setdefault(family, {}).update({t: float(r) for t, r in by_task.items()})
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def read_choices(out: Path) -> dict[str, dict[str, float]]:
    """The chosen rates of a compare folder (empty without a grid)."""
    path = Path(out) / RECIPE_NAME
    return json.loads(path.read_text("utf-8")) if path.is_file() else {}


def recipe_entry(config: Config, out: Path, families: Sequence[str]) -> dict:
    """The table's ``recipe``: pooling, grid, held-out sizes, steps and each family's chosen rate per task."""
    c = config.compare
    rates = grid(config)
    chosen = read_choices(out) if len(rates) > 1 else {}
    return {"pooling": c.finetune_pooling, "rates": list(rates), "select_examples": c.select_examples,
            "score_examples": c.score_examples, "max_train": c.max_train, "epochs": c.finetune_epochs,
            "batch_size": c.finetune_batch_size, "scored_on": "score" if c.score_examples else "dev",
            "chosen": {f: chosen[f] for f in families if f in chosen}}


def recipe_lines(table: Mapping) -> list[str]:
    """The recipe in words (nothing for a folder from before it)."""
    r = table.get("recipe")
    if not r or (len(r["rates"]) == 1 and not r["score_examples"] and r["pooling"] == "cls"):
        return []
    words = [f"Fine-tuning recipe: the head reads the {'mean of the token states' if r['pooling'] == 'mean' else '[CLS] token'}"]
    if len(r["rates"]) > 1:
        words.append(f"the learning rate of each student family (the teacher, the undistilled student, each mapping) "
                     f"is chosen from {{{', '.join(f'{x:g}' for x in r['rates'])}}} on {r['select_examples']} held-out "
                     f"training examples per task (one fine-tuning with seed {SELECT_SEED} a rate), never on the examples "
                     "that score")
    if r["scored_on"] == "score":
        words.append(f"scores are read on {r['score_examples']} other held-out training examples per task (as long as "
                     "the dev set's, none overlapping a fine-tuning example), the official dev score beside them")
    lines = ["; ".join(words) + "."]
    if r.get("chosen"):
        tasks = sorted({t for by_task in r["chosen"].values() for t in by_task})
        lines += ["", f"| family | {' | '.join(tasks)} |", "|---|" + "---|" * len(tasks)]
        for family, by_task in r["chosen"].items():
            lines.append(f"| {family} | {' | '.join(f'{by_task[t]:g}' if t in by_task else '–' for t in tasks)} |")
    return lines
