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
                   ``complete`` row is never computed again, a ``failed`` one is retried;
* ``claims``       one row per ``(fingerprint, genome)`` some driver is computing now: its owner
                   (``host:pid:run_id``) and a heartbeat time (see *Claims* below).
* ``latency``      measured latencies of student shapes (:mod:`layermap.deploy.latency`), keyed by
                   ``(device identity, shape, settings)`` and never by a fitness fingerprint: accuracy records
                   stay shareable across devices, a latency belongs to the device that measured it.  The table
                   is additive and needs no schema bump: a new store has it, an older one gets it (created if
                   missing) the first time a latency is saved, and a store without it reads no latency.

The fitness cache is keyed by ``(fingerprint, genome)``: :meth:`Store.lookup` returns a complete
record from any run.  Each statement commits on its own (autocommit), so a ``kill -9`` right after
an evaluation finished loses nothing; ``synchronous=NORMAL`` in WAL mode is safe against process
death (only a power cut may lose the last commits).

Claims (schema 3), as Optuna's heartbeat does for trials: two searches with the same settings that
share a fitness cache, started together, compute every genome once between them.  Before computing
genome G under fingerprint F a driver claims (F, G) in the shared store (:meth:`Store.claim`, one
transaction: ``known`` when a complete record exists, ``claimed`` when no one else holds a live claim,
else ``busy``).  A background thread (:class:`ClaimHeartbeat`, its own connection) refreshes the
driver's claims every ``CLAIM_HEARTBEAT_SECONDS`` (10 s); a claim whose heartbeat is older than
``CLAIM_STALE_SECONDS`` (60 s; the variable ``LAYERMAP_CLAIM_STALE_SECONDS`` overrides it) is taken
over, and so at once is the claim of a dead process on the same host or of an earlier driver of the
same run (``run.lock`` proves it gone).  A finished or failed evaluation releases its claim (a failure
leaves no record in the cache, so the next claimant computes it); a driver killed with ``kill -9``
leaves claims that go stale.  A driver that finds a genome ``busy`` computes the rest of its
generation first, then polls every ``CLAIM_POLL_SECONDS`` until the owner's complete record appears
(it is recorded as cached, ``computed = 0``) or the claim can be taken over.  Only the driver touches
claims; workers never open the store.  Heartbeats are wall-clock times: hosts that share a cache
need clocks that agree to within the stale limit.

Reading does not write: ``Store(path, upgrade=False)`` (what :func:`open_run` gives ``show``, ``export``,
``plot`` and ``compare RUN_DIR``) reads a store of an older schema as it is; a driver that writes
(``evolve``, ``--resume``, ``compare``, the shared cache) upgrades it in place first.
Run folders (``run.json``, the run lock, :func:`open_run`) live in :mod:`layermap.storage.runs`; a driver's claim owner
id and heartbeat thread in :mod:`layermap.storage.claims`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import LayermapError
from ..logs import get_logger
from .records import COMPLETE, FAILED, RUNNING, EvaluationRecord, json_safe

_log = get_logger(__name__)

SCHEMA_VERSION = 4
# 1: runs, evaluations, generations (layermap 0.1 later added the cache table without a bump);
# 2: the cache and cells tables are guaranteed; 3: the claims table; 4: the reference_rows table.  Older versions listed here are
# upgraded in place by a store opened for writing (only tables are added; no row is touched).
UPGRADABLE_VERSIONS = ("1", "2", "3")
STORE_NAME = "layermap.sqlite"

CLAIM_HEARTBEAT_SECONDS = 10.0      # how often a driver refreshes its claims
CLAIM_STALE_SECONDS = 60.0          # a claim not refreshed for this long is taken over (LAYERMAP_CLAIM_STALE_SECONDS)
CLAIM_POLL_SECONDS = 0.5            # how often a driver waiting for another's genome looks again
CLAIMED, BUSY, KNOWN = "claimed", "busy", "known"

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
CREATE TABLE IF NOT EXISTS claims (
    fingerprint TEXT NOT NULL, genome TEXT NOT NULL, owner TEXT NOT NULL, heartbeat REAL NOT NULL, created TEXT NOT NULL,
    PRIMARY KEY (fingerprint, genome)
);
CREATE INDEX IF NOT EXISTS claims_owner ON claims (owner);
CREATE TABLE IF NOT EXISTS cells (
    fingerprint TEXT NOT NULL, kind TEXT NOT NULL, mapping TEXT NOT NULL, distill_seed INTEGER NOT NULL,
    task TEXT NOT NULL, seed INTEGER NOT NULL, status TEXT NOT NULL, score REAL, record TEXT NOT NULL,
    wall_time REAL, error TEXT, created TEXT NOT NULL,
    PRIMARY KEY (fingerprint, kind, mapping, distill_seed, task, seed)
);
CREATE TABLE IF NOT EXISTS reference_rows (
    fingerprint TEXT PRIMARY KEY, payload TEXT NOT NULL, created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS latency (
    device TEXT NOT NULL, shape TEXT NOT NULL, settings TEXT NOT NULL, median_ms REAL NOT NULL,
    spread_ms REAL NOT NULL, record TEXT NOT NULL, created TEXT NOT NULL,
    PRIMARY KEY (device, shape, settings)
);
"""
_LATENCY_TABLE = _SCHEMA[_SCHEMA.index("CREATE TABLE IF NOT EXISTS latency"):]


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
class ClaimRow:
    fingerprint: str
    genome: str
    owner: str              # host:pid:run_id
    heartbeat: float        # time.time() of the last refresh


@dataclass(frozen=True)
class EvaluationCounts:
    computed: int   # evaluated by this run and complete
    cached: int     # taken from the shared cache (computed by another run)
    failed: int     # evaluated by this run and failed


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    """The driver's handle on one store file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, *, upgrade: bool = True) -> None:
        """Open (or create) the store at ``path``.  ``upgrade=False`` reads a store of an older schema version
        as it is, writing nothing into it (for commands that only read)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        try:
            self.journal_mode = self._use_wal_or_fall_back()
            self._db.execute("PRAGMA synchronous=NORMAL")
            self.schema_version = self._check_schema(upgrade)
            self._tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{self.path} is not a layermap store ({exc}); point --store at a store file or a new path") from None
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
        _log.warning(f"{self.path} cannot use SQLite's WAL mode ({why}; a network file system?), so it uses "
                     "journal_mode=DELETE; this works, but put LAYERMAP_CACHE and run folders on a local disk where you can")
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
        row = self._complete_record(fingerprint, genome)
        return EvaluationRecord.from_json(row) if row else None

    def _complete_record(self, fingerprint: str, genome: str) -> str | None:
        row = self._db.execute(
            "SELECT metrics FROM evaluations WHERE fingerprint = ? AND genome = ? AND status = ? ORDER BY id LIMIT 1",
            (fingerprint, genome, COMPLETE),
        ).fetchone()
        if row is None and "cache" in self._tables:          # a version-1 store read as it is may lack the table
            row = self._db.execute("SELECT record FROM cache WHERE fingerprint = ? AND genome = ?",
                                   (fingerprint, genome)).fetchone()
        return row[0] if row else None

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

    # -- claims (two drivers sharing a cache compute a genome once) ------------------------------
    def claim(self, fingerprint: str, genome: str, owner: str, *, stale_after: float | None = None) -> str:
        """Claim ``(fingerprint, genome)`` for ``owner`` in one transaction: :data:`KNOWN` when a complete record
        exists (nothing to compute), :data:`CLAIMED` when the genome is free, already ``owner``'s, or held by a
        claim that is stale or whose owner is gone (taken over), else :data:`BUSY`."""
        stale_after = claim_stale_seconds() if stale_after is None else stale_after
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self._complete_record(fingerprint, genome) is not None:
                result = KNOWN
            else:
                row = self._db.execute("SELECT owner, heartbeat FROM claims WHERE fingerprint = ? AND genome = ?",
                                       (fingerprint, genome)).fetchone()
                stamp = time.time()
                if row is None or row[0] == owner or stamp - row[1] > stale_after or _owner_gone(row[0], owner):
                    self._db.execute("INSERT OR REPLACE INTO claims (fingerprint, genome, owner, heartbeat, created)"
                                     " VALUES (?, ?, ?, ?, ?)", (fingerprint, genome, owner, stamp, now()))
                    result = CLAIMED
                else:
                    result = BUSY
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return result

    def release(self, owner: str, fingerprint: str | None = None, genome: str | None = None) -> int:
        """Drop ``owner``'s claim on ``(fingerprint, genome)``, or all its claims; returns how many."""
        if fingerprint is None:
            return self._db.execute("DELETE FROM claims WHERE owner = ?", (owner,)).rowcount
        return self._db.execute("DELETE FROM claims WHERE owner = ? AND fingerprint = ? AND genome = ?",
                                (owner, fingerprint, genome)).rowcount

    def claims(self, fingerprint: str | None = None) -> list[ClaimRow]:
        """The live and stale claims (of one fingerprint, or all)."""
        sql = "SELECT fingerprint, genome, owner, heartbeat FROM claims"
        rows = self._db.execute(sql + " WHERE fingerprint = ? ORDER BY genome", (fingerprint,)) if fingerprint \
            else self._db.execute(sql + " ORDER BY fingerprint, genome")
        return [ClaimRow(*r) for r in rows]

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
            (fingerprint, *key, status, record.get("score"), json.dumps(json_safe(record), sort_keys=True),
             record.get("timings", {}).get("total"), record.get("error"), now()))

    # -- reference rows (teacher, no distillation, constant) --------------------------------------
    def lookup_references(self, fingerprint: str) -> dict | None:
        """The reference rows measured under a reference fingerprint (``References.to_json``), else ``None``."""
        try:
            row = self._db.execute("SELECT payload FROM reference_rows WHERE fingerprint = ?", (fingerprint,)).fetchone()
        except sqlite3.OperationalError:         # a store of schema 3 or older, opened read-only: no reference rows
            return None
        return json.loads(row[0]) if row else None

    def save_references(self, fingerprint: str, payload: dict) -> None:
        self._db.execute("INSERT OR REPLACE INTO reference_rows (fingerprint, payload, created) VALUES (?, ?, ?)",
                         (fingerprint, json.dumps(json_safe(payload), sort_keys=True), now()))

    # -- latency (per device; never mixed with accuracy records) ----------------------------------
    def lookup_latency(self, device: str, shape: str, settings: str) -> dict | None:
        """The measured latency record of ``shape`` on ``device`` under ``settings`` (canonical JSON), else ``None``."""
        if "latency" not in self._tables:
            return None
        row = self._db.execute("SELECT record FROM latency WHERE device = ? AND shape = ? AND settings = ?",
                               (device, shape, settings)).fetchone()
        return json.loads(row[0]) if row else None

    def save_latency(self, device: str, shape: str, settings: str, record: dict) -> None:
        """Keep a measured latency (a later measurement of the same key replaces it); the table is created if the
        store predates it."""
        if "latency" not in self._tables:
            self._db.execute(_LATENCY_TABLE)
            self._tables.add("latency")
        self._db.execute("INSERT OR REPLACE INTO latency (device, shape, settings, median_ms, spread_ms, record, created)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", (device, shape, settings, record["median_ms"],
                                                           record["spread_ms"], json.dumps(record), now()))

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
    def _check_schema(self, upgrade: bool = True) -> str:
        """Create the schema in a new file, upgrade an older one (``upgrade``) or refuse a file of another schema
        version; returns the version the store now has."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            found = str(SCHEMA_VERSION)
            if "meta" in tables:
                row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                found = row[0] if row else "none"
                if found in UPGRADABLE_VERSIONS and upgrade:
                    self._upgrade(found)
                    found = str(SCHEMA_VERSION)
                elif found not in UPGRADABLE_VERSIONS and found != str(SCHEMA_VERSION):
                    raise StoreError(
                        f"store {self.path} has schema version {found}, but this layermap reads version {SCHEMA_VERSION}; "
                        "use the layermap version that wrote it, or start a new store (a new --out or --store path)"
                    )
            elif tables:
                raise StoreError(f"{self.path} is an SQLite file but not a layermap store; point --store at a new path")
            else:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(statement)
                self._db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return found

    def _upgrade(self, found: str) -> None:
        """Bring an older store to this schema in place (inside the caller's transaction): every table and
        index is created if missing, then the version is bumped; no row is touched."""
        for statement in filter(str.strip, _SCHEMA.split(";")):
            self._db.execute(statement)
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))


def claim_stale_seconds() -> float:
    """``CLAIM_STALE_SECONDS``, or the variable ``LAYERMAP_CLAIM_STALE_SECONDS`` when it is set."""
    text = os.environ.get("LAYERMAP_CLAIM_STALE_SECONDS", "").strip()
    if not text:
        return CLAIM_STALE_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise StoreError(f"LAYERMAP_CLAIM_STALE_SECONDS = {text!r} is not a positive number of seconds; unset it or give "
                         f"e.g. {CLAIM_STALE_SECONDS:g}")
    return value


def _owner_gone(holder: str, owner: str) -> bool:
    """Whether the claim of ``holder`` can be taken over at once by ``owner``: it comes from an earlier driver of
    the same run (the run lock proves that driver dead), or from a process of this host that no longer exists."""
    host, pid, run_id = (holder.rsplit(":", 2) + ["", ""])[:3]
    my_host, _, my_run = (owner.rsplit(":", 2) + ["", ""])[:3]
    if run_id and run_id == my_run:
        return True
    if host != my_host or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:          # e.g. another user's process: alive
        return False
    return False


def _record_json(record: EvaluationRecord) -> str:
    """The record as JSON; non-finite floats become null so that every reader can parse it."""
    return json.dumps(json_safe(record.to_dict()), sort_keys=True)
