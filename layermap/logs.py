"""Where layermap's messages go: the ``layermap`` logger, and the stderr handler the command line installs.

Library code never prints to stderr; it logs through ``logging.getLogger("layermap")`` or a child
(``layermap.searching.run``, ``layermap.config``, ...): progress lines at INFO, warnings and deprecations
at WARNING.  Nothing is configured on import, so by Python's defaults a notebook shows the warnings
and drops the progress lines; to see those too, or to silence or redirect everything::

    import logging
    layermap.log_to_stderr()                                 # INFO and up on stderr, as the CLI shows them
    logging.getLogger("layermap").setLevel(logging.ERROR)    # silence warnings and progress lines
    logging.getLogger("layermap").addHandler(my_handler)     # send them elsewhere

``layermap`` commands call :func:`console` around each command: INFO lines (``--quiet``: warnings
only) on stderr, a warning as ``layermap: warning: <message>``, the same lines the tool printed
before it logged.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator

ROOT = "layermap"


def get_logger(name: str = "") -> logging.Logger:
    """``layermap`` or ``layermap.<name>`` (a module passes its ``__name__``)."""
    if not name or name == ROOT:
        return logging.getLogger(ROOT)
    return logging.getLogger(name if name.startswith(ROOT + ".") else f"{ROOT}.{name}")


class _Formatter(logging.Formatter):
    """A progress line as it is; a warning or error as ``layermap: warning: ...``."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"layermap: error: {text}"
        if record.levelno >= logging.WARNING:
            return f"layermap: warning: {text}"
        return text


class StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (pytest's capture, a redirected
    stream), one line per record, flushed."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging must not raise (logging.Handler.handleError's contract)
            self.handleError(record)


def live_progress() -> bool:
    """Whether a progress bar can be drawn live: stderr is a terminal, or this is a Jupyter kernel (where
    ``tqdm.auto`` draws a widget).  Elsewhere (a log file, CI) layermap logs one line per finished item instead."""
    try:
        if sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    return "ipykernel" in sys.modules


def log_to_stderr(level: int | str = logging.INFO) -> StderrHandler:
    """Show layermap's messages of ``level`` and up on stderr, formatted as the command line shows them
    (for notebooks and scripts); returns the handler (``logging.getLogger("layermap").removeHandler(h)``
    undoes it).  Calling it again replaces the earlier handler instead of adding a second."""
    logger = get_logger()
    for old in [h for h in logger.handlers if isinstance(h, StderrHandler)]:
        logger.removeHandler(old)
    handler = StderrHandler(level)
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > handler.level:
        logger.setLevel(handler.level)
    return handler


@contextlib.contextmanager
def console(quiet: bool = False) -> Iterator[None]:
    """For one command: layermap's INFO lines (``quiet``: WARNING and up) on stderr; afterwards the
    logger is as it was (``main`` may run many times in one process, e.g. in tests)."""
    logger = get_logger()
    level, handlers = logger.level, list(logger.handlers)
    log_to_stderr(logging.WARNING if quiet else logging.INFO)
    try:
        yield
    finally:
        for handler in list(logger.handlers):
            if handler not in handlers:
                logger.removeHandler(handler)
        for handler in handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)
        logger.setLevel(level)
