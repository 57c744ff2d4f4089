"""A run folder: ``run.json`` (which run of which store the folder holds), the run lock, the run it opens, its status.

``RUN_DIR/run.json`` names the store (relative to the folder, so the folder can move) and the run id; ``RUN_DIR/
run.lock`` is held by the one driver working on the run (released even by ``kill -9``); :func:`open_run` gives the
folder's run row with its store opened, and :func:`run_status` says whether a ``running`` run's driver is gone.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .store import RunRow, Store, StoreError


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


def open_run(run_dir: str | os.PathLike, *, upgrade: bool = False) -> tuple[RunInfo, Store, RunRow]:
    """The run a folder holds: its run.json, its store (opened) and its run row.  The store of an older schema
    is read as it is unless ``upgrade`` (a driver about to write it)."""
    info = read_run_info(run_dir)
    path = info.store_path(run_dir)
    if not path.is_file():
        raise StoreError(f"the store {path} of run folder {os.fspath(run_dir)!r} is missing; restore it or start a new run")
    if path.stat().st_size == 0:        # opening would write a new, empty schema into it: reading must not write
        raise StoreError(f"the store {path} of run folder {os.fspath(run_dir)!r} is empty (0 bytes); restore it from a "
                         "backup or start a new run")
    store = Store(path, upgrade=upgrade)
    try:
        return info, store, store.get_run(info.run_id)
    except BaseException:
        store.close()
        raise


def run_status(run_dir: str | Path, row: RunRow) -> str:
    """The run's status as ``show`` should say it: a ``running`` run whose driver is gone (killed) is ``interrupted``."""
    if row.status != "running":
        return row.status
    lock = Path(run_dir) / "run.lock"
    try:
        import fcntl

        with open(lock, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)       # fails while a driver holds the lock
    except ImportError:  # pragma: no cover - not POSIX
        return row.status
    except OSError:
        return row.status if lock.exists() else "interrupted"
    return "interrupted"
