"""SQLite store of runs, evaluations and generations; the fitness cache shared across runs.

One file, WAL mode, written only by the driver process (workers return records).  Tables:

* ``meta``         ``schema_version`` (a store from another version is refused);
* ``runs``         one row per search: id, created, fingerprint, resolved config (TOML and JSON),
                   the evaluator's description (teacher, student spec, widths), layer counts, status;
* ``evaluations``  one row per genome a run needed: ``running`` -> ``complete`` | ``failed``, the
                   fitness, the full :class:`EvaluationRecord` JSON, wall time, error, timestamps and
                   ``computed`` (1 = evaluated by this run, 0 = copied from the cache);
* ``generations``  one row per finished generation: population, fitnesses, statistics and the JSON
                   checkpoint that ``resume`` continues from;
* ``cache``        complete records by ``(fingerprint, genome)`` alone, with no run attached: the
                   user-wide fitness cache (``<cache_dir>/fitness.sqlite``) keeps only this table
                   filled, so every run folder stays self-contained and still reuses earlier runs;
* ``cells``        the final stage (``layermap compare``): one row per finished (kind, mapping,
                   distillation seed, task, fine-tuning seed) under a compare fingerprint; a
                   ``complete`` row is never computed again, a ``failed`` one is retried.

The fitness cache is keyed by ``(fingerprint, genome)``: :meth:`Store.lookup` returns a complete
record from any run.  Each statement commits on its own (autocommit), so a ``kill -9`` right after
an evaluation finished loses nothing; ``synchronous=NORMAL`` in WAL mode is safe against process
death (only a power cut may lose the last commits).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from .errors import LayermapError
from .records import COMPLETE, FAILED, RUNNING, EvaluationRecord

SCHEMA_VERSION = 2
# 1: runs, evaluations, generations (layermap 0.1 later added the cache table without a bump);
# 2: the cache and cells tables are guaranteed.  Older versions listed here are upgraded in place.
UPGRADABLE_VERSIONS = ("1",)
STORE_NAME = "layermap.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created TEXT NOT NULL, fingerprint TEXT NOT NULL,
    config_toml TEXT NOT NULL, config_json TEXT NOT NULL, description TEXT NOT NULL,
    teacher_layers INTEGER NOT NULL, student_layers INTEGER NOT NULL,
    run_dir TEXT NOT NULL, status TEXT NOT NULL, finished TEXT
);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, fingerprint TEXT NOT NULL,
    genome TEXT NOT NULL, generation INTEGER NOT NULL, status TEXT NOT NULL, fitness REAL,
    metrics TEXT, wall_time REAL, error TEXT, started TEXT NOT NULL, finished TEXT,
    computed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_cache ON evaluations (fingerprint, genome, status);
CREATE INDEX IF NOT EXISTS evaluations_run ON evaluations (run_id, status);
CREATE TABLE IF NOT EXISTS generations (
    run_id TEXT NOT NULL, generation INTEGER NOT NULL, population TEXT NOT NULL,
    fitnesses TEXT NOT NULL, stats TEXT NOT NULL, checkpoint BLOB NOT NULL, created TEXT NOT NULL,
    PRIMARY KEY (run_id, generation)
);
CREATE TABLE IF NOT EXISTS cache (
    fingerprint TEXT NOT NULL, genome TEXT NOT NULL, record TEXT NOT NULL, created TEXT NOT NULL,
    PRIMARY KEY (fingerprint, genome)
);
CREATE TABLE IF NOT EXISTS cells (
    fingerprint TEXT NOT NULL, kind TEXT NOT NULL, mapping TEXT NOT NULL, distill_seed INTEGER NOT NULL,
    task TEXT NOT NULL, seed INTEGER NOT NULL, status TEXT NOT NULL, score REAL, record TEXT NOT NULL,
    wall_time REAL, error TEXT, created TEXT NOT NULL,
    PRIMARY KEY (fingerprint, kind, mapping, distill_seed, task, seed)
);
"""


class StoreError(LayermapError):
    """A store that cannot be used as asked (other schema, other fingerprint, missing run)."""


@dataclass(frozen=True)
class RunRow:
    run_id: str
    created: str
    fingerprint: str
    config_toml: str
    config: dict
    description: dict
    teacher_layers: int
    student_layers: int
    run_dir: str
    status: str
    finished: str | None


@dataclass(frozen=True)
class EvaluationRow:
    id: int
    run_id: str
    genome: str
    generation: int
    status: str
    fitness: float | None
    record: EvaluationRecord | None
    wall_time: float | None
    error: str | None
    started: str
    finished: str | None
    computed: bool


@dataclass(frozen=True)
class GenerationRow:
    generation: int
    population: list[str]
    fitnesses: list[float | None]
    stats: dict
    checkpoint: dict


@dataclass(frozen=True)
class EvaluationCounts:
    computed: int   # evaluated by this run and complete
    cached: int     # taken from the shared cache (computed by another run)
    failed: int     # evaluated by this run and failed


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    """The driver's handle on one store file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        try:
            self.journal_mode = self._use_wal_or_fall_back()
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._check_schema()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{self.path} is not a layermap store ({exc}); point --cache at a store file or a new path") from None
        except StoreError:
            self._db.close()
            raise

    def _use_wal_or_fall_back(self) -> str:
        """WAL where the file system supports it; else (NFS and other network file systems, where WAL's shared
        memory does not work) the rollback journal, with a one-line warning."""
        try:
            mode = str(self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
            why = f"SQLite kept journal_mode={mode}"
        except sqlite3.OperationalError as exc:
            mode, why = "", str(exc)
        if mode == "wal":
            return mode
        self._db.execute("PRAGMA journal_mode=DELETE")
        print(f"layermap: warning: {self.path} cannot use SQLite's WAL mode ({why}; a network file system?), so it uses "
              "journal_mode=DELETE; this works, but put LAYERMAP_CACHE and run folders on a local disk where you can",
              file=sys.stderr)
        return "delete"

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs -------------------------------------------------------------------------------
    def create_run(self, run_id: str, *, fingerprint: str, config_toml: str, config: dict, description: dict,
                   teacher_layers: int, student_layers: int, run_dir: str) -> None:
        self._db.execute(
            "INSERT INTO runs (run_id, created, fingerprint, config_toml, config_json, description, teacher_layers,"
            " student_layers, run_dir, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running')",
            (run_id, now(), fingerprint, config_toml, json.dumps(config, sort_keys=True), json.dumps(description, default=str),
             teacher_layers, student_layers, run_dir),
        )

    def get_run(self, run_id: str) -> RunRow:
        row = self._db.execute("SELECT run_id, created, fingerprint, config_toml, config_json, description, teacher_layers,"
                               " student_layers, run_dir, status, finished FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"store {self.path} has no run {run_id!r}; was the run folder copied without its store?")
        return RunRow(row[0], row[1], row[2], row[3], json.loads(row[4]), json.loads(row[5]), row[6], row[7], row[8], row[9], row[10])

    def set_run_status(self, run_id: str, status: str) -> None:
        finished = now() if status == "finished" else None
        self._db.execute("UPDATE runs SET status = ?, finished = ? WHERE run_id = ?", (status, finished, run_id))

    # -- evaluations --------------------------------------------------------------------------
    def lookup(self, fingerprint: str, genome: str) -> EvaluationRecord | None:
        """A complete record for ``genome`` under ``fingerprint`` from any run (or the cache table), else ``None``."""
        row = self._db.execute(
            "SELECT metrics FROM evaluations WHERE fingerprint = ? AND genome = ? AND status = ? ORDER BY id LIMIT 1",
            (fingerprint, genome, COMPLETE),
        ).fetchone() or self._db.execute(
            "SELECT record FROM cache WHERE fingerprint = ? AND genome = ?", (fingerprint, genome)
        ).fetchone()
        return EvaluationRecord.from_json(row[0]) if row else None

    def remember(self, fingerprint: str, record: EvaluationRecord) -> None:
        """Keep a complete record in the ``cache`` table (the first one for a genome wins)."""
        if record.ok:
            self._db.execute("INSERT OR IGNORE INTO cache (fingerprint, genome, record, created) VALUES (?, ?, ?, ?)",
                             (fingerprint, record.genome, _record_json(record), now()))

    def start_evaluation(self, run_id: str, fingerprint: str, genome: str, generation: int) -> int:
        """Insert a ``running`` row (committed) and return its id."""
        cur = self._db.execute(
            "INSERT INTO evaluations (run_id, fingerprint, genome, generation, status, started, computed)"
            " VALUES (?, ?, ?, ?, ?, ?, 1)",
            (run_id, fingerprint, genome, generation, RUNNING, now()),
        )
        return int(cur.lastrowid)

    def finish_evaluation(self, evaluation_id: int, record: EvaluationRecord) -> None:
        """Turn a ``running`` row into ``complete`` or ``failed`` (committed at once)."""
        status = COMPLETE if record.ok else FAILED
        self._db.execute(
            "UPDATE evaluations SET status = ?, fitness = ?, metrics = ?, wall_time = ?, error = ?, finished = ? WHERE id = ?",
            (status, record.fitness if record.ok else None, _record_json(record), record.timings.get("total"),
             record.error, now(), evaluation_id),
        )

    def record_cached(self, run_id: str, fingerprint: str, generation: int, record: EvaluationRecord) -> None:
        """Note in this run that ``record`` came from the cache (``computed = 0``)."""
        stamp = now()
        self._db.execute(
            "INSERT INTO evaluations (run_id, fingerprint, genome, generation, status, fitness, metrics, wall_time,"
            " error, started, finished, computed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, 0)",
            (run_id, fingerprint, record.genome, generation, COMPLETE, record.fitness, _record_json(record),
             record.timings.get("total"), stamp, stamp),
        )

    def discard_unfinished(self, run_id: str) -> int:
        """Delete this run's ``running`` rows (left by a killed process); they will be evaluated again."""
        return self._db.execute("DELETE FROM evaluations WHERE run_id = ? AND status = ?", (run_id, RUNNING)).rowcount

    def run_evaluations(self, run_id: str) -> list[EvaluationRow]:
        rows = self._db.execute(
            "SELECT id, run_id, genome, generation, status, fitness, metrics, wall_time, error, started, finished, computed"
            " FROM evaluations WHERE run_id = ? ORDER BY id", (run_id,),
        ).fetchall()
        return [EvaluationRow(r[0], r[1], r[2], r[3], r[4], r[5], EvaluationRecord.from_json(r[6]) if r[6] else None,
                              r[7], r[8], r[9], r[10], bool(r[11])) for r in rows]

    def count_evaluations(self, run_id: str, generation: int | None = None) -> EvaluationCounts:
        """Finished evaluations of a run (or of one of its generations): computed, cached, failed."""
        where, args = ("run_id = ?", (run_id,)) if generation is None else ("run_id = ? AND generation = ?", (run_id, generation))
        rows = {(computed, status): n for computed, status, n in self._db.execute(
            f"SELECT computed, status, COUNT(*) FROM evaluations WHERE {where} GROUP BY computed, status", args)}
        return EvaluationCounts(computed=rows.get((1, COMPLETE), 0), cached=rows.get((0, COMPLETE), 0),
                                failed=rows.get((1, FAILED), 0))

    # -- final-stage cells (layermap compare) -------------------------------------------------
    def lookup_cell(self, fingerprint: str, key: tuple) -> dict | None:
        """The record of a complete cell ``key = (kind, mapping, distill_seed, task, seed)``, else ``None``."""
        row = self._db.execute(
            "SELECT record FROM cells WHERE fingerprint = ? AND kind = ? AND mapping = ? AND distill_seed = ? AND task = ?"
            " AND seed = ? AND status = ?", (fingerprint, *key, COMPLETE)).fetchone()
        return json.loads(row[0]) if row else None

    def save_cell(self, fingerprint: str, key: tuple, record: dict) -> None:
        """Write a finished cell (committed at once); a later result for the same key replaces a failed one."""
        status = record.get("status", COMPLETE)
        self._db.execute(
            "INSERT OR REPLACE INTO cells (fingerprint, kind, mapping, distill_seed, task, seed, status, score, record,"
            " wall_time, error, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (fingerprint, *key, status, record.get("score"), json.dumps(_finite(record), sort_keys=True),
             record.get("timings", {}).get("total"), record.get("error"), now()))

    # -- generations ----------------------------------------------------------------------------
    def save_generation(self, run_id: str, generation: int, *, population: list[str], fitnesses: list[float | None],
                        stats: dict, checkpoint: dict) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO generations (run_id, generation, population, fitnesses, stats, checkpoint, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, generation, json.dumps(population), json.dumps(fitnesses), json.dumps(stats),
             json.dumps(checkpoint).encode(), now()),
        )

    def generations(self, run_id: str) -> list[GenerationRow]:
        rows = self._db.execute("SELECT generation, population, fitnesses, stats, checkpoint FROM generations"
                                " WHERE run_id = ? ORDER BY generation", (run_id,)).fetchall()
        return [GenerationRow(r[0], json.loads(r[1]), json.loads(r[2]), json.loads(r[3]), json.loads(r[4])) for r in rows]

    def last_generation(self, run_id: str) -> GenerationRow | None:
        rows = self.generations(run_id)
        return rows[-1] if rows else None

    # -- internals ---------------------------------------------------------------------------------
    def _check_schema(self) -> None:
        """Create the schema in a new file, or refuse a file of another schema version."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "meta" in tables:
                row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                found = row[0] if row else "none"
                if found in UPGRADABLE_VERSIONS:
                    self._upgrade(found)
                elif found != str(SCHEMA_VERSION):
                    raise StoreError(
                        f"store {self.path} has schema version {found}, but this layermap reads version {SCHEMA_VERSION}; "
                        "use the layermap version that wrote it, or start a new store (a new --out or --cache path)"
                    )
            elif tables:
                raise StoreError(f"{self.path} is an SQLite file but not a layermap store; point --cache at a new path")
            else:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(statement)
                self._db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise


    def _upgrade(self, found: str) -> None:
        """Bring an older store to this schema in place (inside the caller's transaction): every table and
        index is created if missing, then the version is bumped; no row is touched."""
        for statement in filter(str.strip, _SCHEMA.split(";")):
            self._db.execute(statement)
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))


def open_store(path: str | os.PathLike) -> Store:
    return Store(path)


RUN_INFO = "run.json"


@dataclass(frozen=True)
class RunInfo:
    """``RUN_DIR/run.json``: which run of which store this folder holds."""

    run_id: str
    store: str          # the store file: absolute, or relative to the run folder
    created: str

    def store_path(self, run_dir: str | os.PathLike) -> Path:
        return Path(run_dir) / self.store if not Path(self.store).is_absolute() else Path(self.store)


def write_run_info(run_dir: str | os.PathLike, info: RunInfo) -> None:
    path = Path(run_dir) / RUN_INFO
    path.write_text(json.dumps(dataclasses.asdict(info), indent=2) + "\n", encoding="utf-8")


def read_run_info(run_dir: str | os.PathLike) -> RunInfo:
    path = Path(run_dir) / RUN_INFO
    if not path.is_file():
        raise StoreError(f"{os.fspath(run_dir)!r} is not a layermap run folder (no {RUN_INFO}); give the --out folder of 'layermap evolve'")
    try:
        return RunInfo(**json.loads(path.read_text("utf-8")))
    except (ValueError, TypeError) as exc:
        raise StoreError(f"{path} is damaged ({exc}); it should hold run_id, store and created") from None


def lock_run(run_dir: str | os.PathLike) -> IO:
    """Hold ``RUN_DIR/run.lock`` for as long as the returned file stays open (released even by kill -9),
    so that two drivers never work on one run."""
    handle = open(Path(run_dir) / "run.lock", "a+")
    try:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # pragma: no cover - not POSIX: no lock
        pass
    except OSError:
        handle.close()
        raise StoreError(f"run folder {os.fspath(run_dir)} is in use by another layermap process; wait for it or stop it first") from None
    return handle


def open_run(run_dir: str | os.PathLike) -> tuple[RunInfo, Store, RunRow]:
    """The run a folder holds: its run.json, its store (opened) and its run row."""
    info = read_run_info(run_dir)
    path = info.store_path(run_dir)
    if not path.is_file():
        raise StoreError(f"the store {path} of run folder {os.fspath(run_dir)!r} is missing; restore it or start a new run")
    if path.stat().st_size == 0:        # opening would write a new, empty schema into it: reading must not write
        raise StoreError(f"the store {path} of run folder {os.fspath(run_dir)!r} is empty (0 bytes); restore it from a "
                         "backup or start a new run")
    store = Store(path)
    try:
        return info, store, store.get_run(info.run_id)
    except BaseException:
        store.close()
        raise


def _record_json(record: EvaluationRecord) -> str:
    """The record as JSON; non-finite floats become null so that every reader can parse it."""
    return json.dumps(_finite(record.to_dict()), sort_keys=True)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not (value == value and abs(value) != float("inf")):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
