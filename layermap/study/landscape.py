"""Landscape tables: the proxy fitness of every genome of a small search space under one or more seed sets, read
from a landscape CSV (``results/benchmarks/landscape.csv``) or from the SQLite store of a ``search.strategy =
"enumerate"`` run, and written as CSV (``layermap bench table``).  The table's fitness of a genome is its mean over
the seed sets; :mod:`layermap.study.replay` replays searches against it.  Imports ``storage.records``, ``mapping``
and ``errors``.
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import LayermapError
from ..mapping import format_genes, parse_genes, satisfies
from ..storage.records import EvaluationRecord

Genes = tuple[int, ...]


class TableError(LayermapError):
    """A landscape table that cannot be read or is empty."""


@dataclass(frozen=True)
class LandscapeRow:
    """One genome under one seed set: its fitness and per-task scores."""

    genome: str
    seed_set: str
    fitness: float
    tasks: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    """A landscape: every genome's fitness (mean over seed sets) and the raw rows."""

    rows: tuple[LandscapeRow, ...]
    fitness: dict[Genes, float]              # genome -> mean fitness over its seed sets (complete genomes only)
    seed_sets: tuple[str, ...]
    tasks: tuple[str, ...]
    teacher_layers: int
    student_layers: int
    dropped: tuple[str, ...] = ()            # genomes missing a seed set (partial table), left out

    @property
    def genomes(self) -> list[Genes]:
        return sorted(self.fitness)

    @property
    def size(self) -> int:
        return len(self.fitness)

    @property
    def constraint(self) -> str:
        """The strictest order constraint every genome of the table satisfies (the GA replay's constraint)."""
        for constraint in ("increasing", "non-decreasing"):
            if all(satisfies(g, constraint) for g in self.fitness):
                return constraint
        return "free"

    def ranked(self) -> list[Genes]:
        """Genomes from best to worst (ties by genome text)."""
        return sorted(self.fitness, key=lambda g: (-self.fitness[g], g))

    def target(self, quantile: float | None) -> set[Genes]:
        """The optimum (``None``) or the ``ceil(q N)`` best genomes, with every genome tied with the last one."""
        ranked = self.ranked()
        k = 1 if quantile is None else max(1, math.ceil(quantile * len(ranked)))
        threshold = self.fitness[ranked[k - 1]]
        return {g for g in ranked if self.fitness[g] >= threshold}


def build_table(rows: Iterable[LandscapeRow], *, teacher_layers: int | None = None) -> Table:
    """A :class:`Table` from rows; a genome missing one of the seed sets is dropped (and listed)."""
    rows = tuple(rows)
    if not rows:
        raise TableError("the landscape table has no rows")
    seed_sets = tuple(dict.fromkeys(r.seed_set for r in rows))
    by_genome: dict[Genes, dict[str, float]] = {}
    for r in rows:
        by_genome.setdefault(parse_genes(r.genome), {})[r.seed_set] = r.fitness
    fitness = {g: statistics.fmean(v.values()) for g, v in by_genome.items() if len(v) == len(seed_sets)}
    dropped = tuple(sorted(format_genes(g) for g, v in by_genome.items() if len(v) != len(seed_sets)))
    if not fitness:
        raise TableError("no genome of the landscape table has a fitness under every seed set")
    lengths = {len(g) for g in fitness}
    if len(lengths) != 1:
        raise TableError(f"the landscape table mixes genomes of {sorted(lengths)} genes")
    tasks = tuple(dict.fromkeys(t for r in rows for t in r.tasks))
    n = teacher_layers or max(max(g) for g in fitness)
    return Table(rows, fitness, seed_sets, tasks, int(n), lengths.pop(), dropped)


def read_csv_rows(path: str | Path) -> list[LandscapeRow]:
    """Rows of a landscape CSV: ``genome, seed_set, fitness`` and one column per task score."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"genome", "seed_set", "fitness"} - set(reader.fieldnames or ())
        if missing:
            raise TableError(f"{path} is not a landscape CSV: it lacks the column(s) {', '.join(sorted(missing))}")
        rows = []
        for line in reader:
            if not line["fitness"]:
                continue
            tasks = {k: float(v) for k, v in line.items() if k not in ("genome", "seed_set", "fitness") and v not in ("", None)}
            rows.append(LandscapeRow(line["genome"], line["seed_set"], float(line["fitness"]), tasks))
    return rows


def read_store_rows(path: str | Path) -> tuple[list[LandscapeRow], int | None]:
    """Rows of every complete evaluation in a layermap store, one seed set per fingerprint, labelled by the
    run's seeds (``d<distill.seed>-p<proxy.seed>``); and the teacher's depth."""
    try:
        db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
        runs = db.execute("SELECT fingerprint, config_json, teacher_layers FROM runs ORDER BY created").fetchall()
        evals = db.execute("SELECT fingerprint, genome, fitness, metrics FROM evaluations WHERE status = 'complete' "
                           "ORDER BY id").fetchall()
    except sqlite3.DatabaseError as exc:
        raise TableError(f"{path} is not a readable layermap store ({exc})") from None
    labels: dict[str, str] = {}
    teacher = None
    for fp, config_json, teacher_layers in runs:
        teacher = teacher or teacher_layers
        if fp not in labels:
            cfg = json.loads(config_json)
            label = f"d{cfg.get('distill', {}).get('seed', 0)}-p{cfg.get('proxy', {}).get('seed', 0)}"
            labels[fp] = label if label not in labels.values() else f"{label}-{fp[:6]}"
    rows, seen = [], set()
    for fp, genome, fitness, metrics in evals:
        if (fp, genome) in seen or fitness is None:
            continue
        seen.add((fp, genome))
        record = EvaluationRecord.from_json(metrics)
        rows.append(LandscapeRow(genome, labels.get(fp, fp[:8]), float(fitness),
                                 {t: float(s.score) for t, s in sorted(record.tasks.items())}))
    return rows, teacher


def load_table(path: str | Path) -> Table:
    """A landscape CSV or a layermap store (recognised by its SQLite header)."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"landscape table {path} does not exist; give a landscape CSV or a layermap store file")
    with open(path, "rb") as f:
        is_sqlite = f.read(16) == b"SQLite format 3\x00"
    if is_sqlite:
        rows, teacher = read_store_rows(path)
        return build_table(rows, teacher_layers=teacher)
    return build_table(read_csv_rows(path))


def write_csv(rows: Sequence[LandscapeRow], path: str | Path) -> None:
    """``genome, seed_set, fitness, <task>...`` sorted by genome then seed set."""
    tasks = list(dict.fromkeys(t for r in rows for t in r.tasks))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["genome", "seed_set", "fitness", *tasks])
        for r in sorted(rows, key=lambda r: (parse_genes(r.genome), r.seed_set)):
            writer.writerow([r.genome, r.seed_set, f"{r.fitness:.4f}", *(f"{r.tasks[t]:.4f}" if t in r.tasks else "" for t in tasks)])
