"""The SQLite store: schema version, WAL, the fitness cache, immediate commits, run bookkeeping."""

from __future__ import annotations

import logging
import math
import sqlite3

import pytest

from layermap.storage.records import EvaluationRecord, TaskScore
from layermap.storage.store import SCHEMA_VERSION, Store, StoreError
from layermap.storage.runs import RunInfo, open_run, read_run_info, write_run_info


def _warnings(caplog) -> list[str]:
    """The warnings layermap logged since the last call (library code logs; it does not print)."""
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("layermap")]
    caplog.clear()
    return lines


def record(genome: str, fitness: float = 80.0) -> EvaluationRecord:
    return EvaluationRecord(genome=genome, fitness=fitness,
                            tasks={"sst2": TaskScore(metrics={"accuracy": fitness}, score=fitness)},
                            timings={"total": 1.5}, distill_loss=0.25)


def new_run(store: Store, run_id: str = "r1", fingerprint: str = "fp") -> None:
    store.create_run(run_id, fingerprint=fingerprint, config_toml="", config={"search": {}}, description={"teacher": "t"},
                     teacher_layers=6, student_layers=3, run_dir="/tmp/x")


def test_a_new_store_is_wal_and_versioned(tmp_path):
    with Store(tmp_path / "s.sqlite"):
        pass
    db = sqlite3.connect(tmp_path / "s.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    with Store(tmp_path / "s.sqlite"):            # reopening an up-to-date store is fine
        pass


def test_a_store_of_another_schema_version_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match=f"schema version 99.*reads version {SCHEMA_VERSION}"):
        Store(path)


def test_files_that_are_not_stores_are_refused(tmp_path):
    (tmp_path / "junk.sqlite").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a layermap store"):
        Store(tmp_path / "junk.sqlite")
    with sqlite3.connect(tmp_path / "other.sqlite") as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(StoreError, match="not a layermap store"):
        Store(tmp_path / "other.sqlite")


def test_lookup_returns_only_complete_results_under_the_same_fingerprint(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        new_run(store)
        running = store.start_evaluation("r1", "fp", "1-2-3", 0)
        assert store.lookup("fp", "1-2-3") is None
        store.finish_evaluation(running, EvaluationRecord.failure("1-2-3", "RuntimeError: boom"))
        assert store.lookup("fp", "1-2-3") is None
        done = store.start_evaluation("r1", "fp", "2-4-6", 0)
        store.finish_evaluation(done, record("2-4-6", 91.5))
        assert store.lookup("fp", "2-4-6") == record("2-4-6", 91.5)
        assert store.lookup("other-fp", "2-4-6") is None
        counts = store.count_evaluations("r1")
        assert (counts.computed, counts.cached, counts.failed) == (1, 0, 1)


def test_a_finished_evaluation_is_committed_at_once(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        new_run(store)
        row = store.start_evaluation("r1", "fp", "1-2-3", 0)
        store.finish_evaluation(row, record("1-2-3"))
        other = sqlite3.connect(tmp_path / "s.sqlite")          # another process's view, store still open
        assert other.execute("SELECT status, fitness FROM evaluations").fetchall() == [("complete", 80.0)]


def test_cached_rows_count_as_cached_and_unfinished_rows_are_discarded(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        new_run(store, "a")
        new_run(store, "b")
        store.finish_evaluation(store.start_evaluation("a", "fp", "1-2-3", 0), record("1-2-3"))
        store.record_cached("b", "fp", 2, record("1-2-3"))
        store.start_evaluation("b", "fp", "3-3-3", 2)
        store.start_evaluation("a", "fp", "4-4-4", 1)
        counts = store.count_evaluations("b", generation=2)
        assert (counts.computed, counts.cached, counts.failed) == (0, 1, 0)
        assert store.discard_unfinished("b") == 1
        assert [r.genome for r in store.run_evaluations("b")] == ["1-2-3"]
        assert [r.status for r in store.run_evaluations("a")] == ["complete", "running"]


def test_non_finite_numbers_are_stored_as_readable_json(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        new_run(store)
        row = store.start_evaluation("r1", "fp", "1-2-3", 0)
        store.finish_evaluation(row, EvaluationRecord(genome="1-2-3", fitness=math.nan, distill_loss=math.inf))
        (stored,) = store.run_evaluations("r1")
        assert stored.status == "failed" and stored.record.fitness is None and stored.record.distill_loss is None


def test_generations_and_run_info_round_trip(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        new_run(store)
        checkpoint = {"generation": 0, "population": [[1, 2, 3]], "rng_state": [3, [1, 2], None]}
        store.save_generation("r1", 0, population=["1-2-3"], fitnesses=[None], stats={"best": None}, checkpoint=checkpoint)
        assert store.last_generation("r1").checkpoint == checkpoint
        with pytest.raises(StoreError, match="no run 'nope'"):
            store.get_run("nope")
    with pytest.raises(StoreError, match="not a layermap run folder"):
        read_run_info(tmp_path)
    write_run_info(tmp_path, RunInfo(run_id="r1", store=str(tmp_path / "s.sqlite"), created="now"))
    info, store, row = open_run(tmp_path)
    with store:
        assert (info.run_id, row.teacher_layers, row.description) == ("r1", 6, {"teacher": "t"})


def test_wal_failure_on_a_network_file_system_falls_back_to_a_rollback_journal(tmp_path, monkeypatch, caplog):
    """Issue 9.10: PRAGMA journal_mode=WAL fails over NFS; the store falls back with one warning line."""
    import sqlite3 as sqlite3_mod

    from layermap.storage import store as store_mod

    real_connect = sqlite3_mod.connect

    class NoWal:
        def __init__(self, *a, **k):
            self._db = real_connect(*a, **k)

        def execute(self, sql, *args):
            if sql.strip().upper() == "PRAGMA JOURNAL_MODE=WAL":
                raise sqlite3_mod.OperationalError("disk I/O error")
            return self._db.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self._db, name)

    monkeypatch.setattr(store_mod.sqlite3, "connect", NoWal)
    with store_mod.Store(tmp_path / "nfs.sqlite") as store:
        assert store.journal_mode == "delete"
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        store.create_run("r", fingerprint="f", config_toml="", config={}, description={}, teacher_layers=6,
                         student_layers=3, run_dir=str(tmp_path))
        assert store.get_run("r").run_id == "r"
    err = _warnings(caplog)
    assert len(err) == 1 and "journal_mode=DELETE" in err[0] and "disk I/O error" in err[0]
    monkeypatch.undo()
    with store_mod.Store(tmp_path / "local.sqlite") as store:
        assert store.journal_mode == "wal"
    assert _warnings(caplog) == []


def test_the_previous_demo_runs_store_is_upgraded_in_place_and_keeps_every_row(tmp_path):
    """tests/data/store_v1_demo_run.sqlite is results/demo-run/layermap.sqlite as committed by layermap 0.1:
    schema version 1 without the cache table (``--cache`` on it used to end in 'no such table: cache')."""
    import shutil
    import sqlite3
    from pathlib import Path

    path = tmp_path / "old.sqlite"
    shutil.copy(Path(__file__).parent / "data" / "store_v1_demo_run.sqlite", path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "1"
        assert "cache" not in {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        before = db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    with Store(path) as store:
        run = store.get_run("20261122-154753-d71055")
        assert store.lookup(run.fingerprint, "1-2-3").fitness == pytest.approx(63.51, abs=0.01)
        store.remember("f" * 32, store.lookup(run.fingerprint, "1-2-3"))        # the cache table exists now
        assert store.lookup_cell("x", ("finetune", "1-2-3", 0, "sst2", 0)) is None
        assert len(store.run_evaluations(run.run_id)) == before
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)


# -- schema 3: claims; reading does not write ---------------------------------------------------------------
def _demo_v1(tmp_path):
    import shutil
    from pathlib import Path

    path = tmp_path / "old.sqlite"
    shutil.copy(Path(__file__).parent / "data" / "store_v1_demo_run.sqlite", path)
    return path


def _as_version_2(path):
    """The v1 demo store as layermap 0.2 left it: the cache and cells tables, schema version 2, no claims."""
    with Store(path):
        pass
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TABLE claims")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    db.close()                                   # the last connection: the WAL is folded into the file
    return path


def _version(path) -> str:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    finally:
        db.close()


@pytest.mark.parametrize("old", ["1", "2"])
def test_an_older_store_is_read_as_it_is_and_upgraded_only_for_writing(tmp_path, old):
    import hashlib

    path = _demo_v1(tmp_path) if old == "1" else _as_version_2(_demo_v1(tmp_path))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    run_id = "20261122-154753-d71055"
    with Store(path, upgrade=False) as store:                          # show, export, plot, compare RUN_DIR
        assert store.schema_version == old
        run = store.get_run(run_id)
        assert store.lookup(run.fingerprint, "1-2-3").fitness == pytest.approx(63.51, abs=0.01)
        assert len(store.run_evaluations(run_id)) > 0 and store.generations(run_id)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before and _version(path) == old
    with Store(path) as store:                                         # a driver: upgraded in place
        assert store.schema_version == str(SCHEMA_VERSION) == "4"
        assert store.lookup_references("none") is None
        assert store.claim("f", "1-2-3", "h:1:r") == "claimed" and len(store.claims()) == 1
        assert store.lookup(store.get_run(run_id).fingerprint, "1-2-3").fitness == pytest.approx(63.51, abs=0.01)
    assert _version(path) == "4"


def test_show_of_a_version_2_run_folder_does_not_write_its_store(tmp_path, capsys):
    import hashlib
    import json

    from layermap.cli.main import main

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = _as_version_2(_demo_v1(tmp_path))
    path.rename(run_dir / "layermap.sqlite")
    (run_dir / "run.json").write_text(json.dumps({"run_id": "20261122-154753-d71055", "store": "layermap.sqlite",
                                                  "created": "2026-11-22T15:47:53+00:00"}))
    before = hashlib.sha256((run_dir / "layermap.sqlite").read_bytes()).hexdigest()
    assert main(["show", str(run_dir)]) == 0
    assert "1-2-3" in capsys.readouterr().out
    assert hashlib.sha256((run_dir / "layermap.sqlite").read_bytes()).hexdigest() == before
    assert _version(run_dir / "layermap.sqlite") == "2"


def test_claims_are_exclusive_until_released_stale_or_their_owner_is_gone(tmp_path, monkeypatch):
    import os
    import time

    from layermap.storage import claims as claims_mod

    a, b = "node1:11:run-a", "node2:22:run-b"
    with Store(tmp_path / "s.sqlite") as store:
        assert store.claim("fp", "1-2-3", a) == "claimed"
        assert store.claim("fp", "1-2-3", a) == "claimed"                  # its own claim again
        assert store.claim("fp", "1-2-3", b) == "busy"
        assert store.claim("other", "1-2-3", b) == "claimed"               # another fingerprint is another genome
        assert store.release(a, "fp", "1-2-3") == 1                        # finished or failed: released
        assert store.claim("fp", "1-2-3", b) == "claimed"
        assert [(c.genome, c.owner) for c in store.claims("fp")] == [("1-2-3", b)]
        store.remember("fp", record("1-2-3"))                              # the owner's complete record
        assert store.claim("fp", "1-2-3", a) == "known"
        # stale: a heartbeat older than the limit (constant, or LAYERMAP_CLAIM_STALE_SECONDS)
        assert store.claim("fp", "4-5-6", a) == "claimed"
        store._db.execute("UPDATE claims SET heartbeat = ? WHERE genome = '4-5-6'", (time.time() - 61,))
        assert store.claim("fp", "4-5-6", b) == "claimed" and store.claims("fp")[-1].owner == b
        monkeypatch.setenv("LAYERMAP_CLAIM_STALE_SECONDS", "1000")
        store._db.execute("UPDATE claims SET heartbeat = ? WHERE genome = '4-5-6'", (time.time() - 61,))
        assert store.claim("fp", "4-5-6", a) == "busy"
        monkeypatch.setenv("LAYERMAP_CLAIM_STALE_SECONDS", "soon")
        with pytest.raises(StoreError, match="LAYERMAP_CLAIM_STALE_SECONDS"):
            store.claim("fp", "4-5-6", a)
        monkeypatch.delenv("LAYERMAP_CLAIM_STALE_SECONDS")
        # gone: an earlier driver of the same run (run.lock proves it dead), or a dead process on this host
        assert store.claim("fp", "7-7-7", "node9:33:run-a") == "claimed"
        assert store.claim("fp", "7-7-7", a) == "claimed"
        dead = subprocess_pid()
        me = claims_mod.claim_owner("run-c")
        assert me.split(":")[1:] == [str(os.getpid()), "run-c"]
        host = me.rsplit(":", 2)[0]
        assert store.claim("fp", "8-8-8", f"{host}:{dead}:run-d") == "claimed"
        assert store.claim("fp", "8-8-8", me) == "claimed"
        assert store.claim("fp", "9-9-9", f"{host}:{os.getpid()}:run-e") == "claimed"   # alive: not taken
        assert store.claim("fp", "9-9-9", me) == "busy"
        assert store.release(me) == 1 and {c.owner for c in store.claims("fp")} == {a, b, f"{host}:{os.getpid()}:run-e"}


def subprocess_pid() -> int:
    """The pid of a process that has exited."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_heartbeat_keeps_claims_live_from_its_own_thread(tmp_path):
    import time

    from layermap.storage.claims import ClaimHeartbeat

    with Store(tmp_path / "s.sqlite") as store:
        store.claim("fp", "1-2-3", "h:1:a")
        store.claim("fp", "3-2-1", "h:2:b")
        store._db.execute("UPDATE claims SET heartbeat = 0")
        beat = ClaimHeartbeat(store.path, "h:1:a", interval=0.05).start()
        time.sleep(0.4)
        beat.stop()
        beats = {c.owner: c.heartbeat for c in store.claims()}
        assert time.time() - beats["h:1:a"] < 5 and beats["h:2:b"] == 0
        assert store.claim("fp", "1-2-3", "h:2:b", stale_after=60) == "busy"


def test_json_safe_writes_strict_json_through_dicts_lists_and_tuples():
    import json as _json

    from layermap.storage.records import json_safe

    value = {"a": float("nan"), "b": [1.0, float("inf"), (2.0, float("-inf"))], "c": "x", "d": 3}
    assert json_safe(value) == {"a": None, "b": [1.0, None, [2.0, None]], "c": "x", "d": 3}
    _json.loads(_json.dumps(json_safe(value), allow_nan=False))
