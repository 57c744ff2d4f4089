"""A driver's claims in a shared store: its owner id, and the thread that keeps its claims alive.

What a claim is and when it goes stale: :mod:`layermap.storage.store` (*Claims*).  Here the driver's side:
:func:`claim_owner` (``host:pid:run_id``) and :class:`ClaimHeartbeat`, which refreshes the owner's claims from a
background thread with a connection of its own.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from pathlib import Path

from .store import CLAIM_HEARTBEAT_SECONDS, claim_stale_seconds


def claim_owner(run_id: str) -> str:
    """The owner id of this process's claims for run ``run_id``: ``host:pid:run_id``."""
    return f"{socket.gethostname()}:{os.getpid()}:{run_id}"


class ClaimHeartbeat:
    """Refreshes ``owner``'s claims in the store at ``path`` from a background thread with its own connection,
    every ``interval`` seconds (default: ``CLAIM_HEARTBEAT_SECONDS``, at most a quarter of the stale limit).
    A missed beat (a locked database) is tried again at the next one."""

    def __init__(self, path: str | os.PathLike, owner: str, interval: float | None = None) -> None:
        self.path, self.owner = Path(path), owner
        self.interval = interval if interval is not None else min(CLAIM_HEARTBEAT_SECONDS, claim_stale_seconds() / 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"layermap-heartbeat-{owner}", daemon=True)

    def start(self) -> "ClaimHeartbeat":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def beat(self, db: sqlite3.Connection) -> int:
        return db.execute("UPDATE claims SET heartbeat = ? WHERE owner = ?", (time.time(), self.owner)).rowcount

    def _run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.beat(db)
                except sqlite3.Error:
                    pass
        finally:
            db.close()
