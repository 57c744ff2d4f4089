"""layermap's messages go through ``logging.getLogger("layermap")``: silenced, redirected or shown as a user likes."""

from __future__ import annotations

import logging

from layermap.cli.main import main
from layermap.logs import console, get_logger, log_to_stderr


def _handlers():
    return list(logging.getLogger("layermap").handlers)


def test_console_prints_progress_lines_and_warnings_and_quiet_keeps_only_warnings(capsys):
    before = _handlers()
    log = get_logger("layermap.searching.run")
    with console():
        log.info("gen 1/3  eval 1/4  1-2-3  fitness 61.00")
        log.warning("corpus 'x' has 3 bytes that are not UTF-8")
    err = capsys.readouterr().err
    assert err == "gen 1/3  eval 1/4  1-2-3  fitness 61.00\nlayermap: warning: corpus 'x' has 3 bytes that are not UTF-8\n"
    with console(quiet=True):
        log.info("a progress line")
        log.warning("a warning")
    assert capsys.readouterr().err == "layermap: warning: a warning\n"
    assert _handlers() == before                                   # restored after each command
    log.info("after the command: not shown (no handler, INFO)")
    assert capsys.readouterr().err == ""


def test_a_notebook_can_show_silence_or_redirect_the_messages(capsys, caplog):
    logger = logging.getLogger("layermap")
    level = logger.level
    handler = log_to_stderr()
    try:
        assert log_to_stderr() is not handler and sum(type(h).__name__ == "StderrHandler" for h in _handlers()) == 1
        get_logger("x").info("shown")
        assert capsys.readouterr().err == "shown\n"
        logger.setLevel(logging.ERROR)
        get_logger("x").warning("silenced")
        assert capsys.readouterr().err == ""
    finally:
        for h in _handlers():
            if type(h).__name__ == "StderrHandler":
                logger.removeHandler(h)
        logger.setLevel(level)
    with caplog.at_level(logging.INFO, logger="layermap"):        # any handler sees the records (here pytest's)
        get_logger("layermap.searching.run").info("redirected")
    assert caplog.records[-1].name == "layermap.searching.run" and caplog.records[-1].getMessage() == "redirected"


def test_the_cli_prints_a_library_warning_as_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["evolve", "--synthetic", "6", "--set", "search.generations=1", "--set", "search.population=2",
                 "--set", "run.shared_cache=false", "--quiet", "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["layermap: warning: run.shared_cache in --set is the old name of run.shared_fitness; it still works, "
                   "but write run.shared_fitness"]
