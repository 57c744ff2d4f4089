"""The one route from command-line flags to settings (``layermap.cli.common``), walked over every subcommand."""

from __future__ import annotations

import argparse
import logging
import typing

import pytest

from layermap.cli.main import build_parser, main
from layermap.cli.common import (FLAG_SETTINGS, NOT_SETTINGS, SETTINGS_COMMANDS, config_from_args, flag_table)
from layermap.config import Config, ConfigError
from layermap.errors import LayermapError

# commands without settings flags: each must be named here, so that a new command is classified
OTHER_COMMANDS = {"baselines", "show", "export", "plot", "bench"}
REQUIRED = {
    "distill": ["--teacher", "t", "--student-layers", "2", "--mapping", "1-2", "--corpus", "c.txt", "--out", "o"],
    "compare": ["--out", "o"],
    "fitness": ["--mapping", "1-2"],
    "quantize": ["student-dir"],
}


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _flag(action: argparse.Action) -> str:
    return max(action.option_strings, key=len)


def _setting_type(key: str):
    section, name = key.split(".")
    return typing.get_type_hints(typing.get_type_hints(Config)[section])[name]


def _sample(action: argparse.Action, key: str) -> tuple[list[str], object]:
    """A command-line value for the flag (not the setting's default) and the value the setting must get."""
    kind = _setting_type(key)
    if isinstance(action, argparse._StoreTrueAction):
        return [], True
    if action.choices:
        return [action.choices[-1]], action.choices[-1]
    if kind is int:
        return ["9"], 9
    if kind is float:
        return ["0.25"], 0.25
    if typing.get_origin(kind) is tuple:
        return ["cola, wnli"], ("cola", "wnli")
    if key == "run.device":
        return ["cpu"], "cpu"
    return ["some-value"], "some-value"


def _parse(command: str, *argv: str) -> argparse.Namespace:
    return build_parser().parse_args([command, *REQUIRED.get(command, []), *argv])


def test_every_subcommand_is_classified():
    assert set(_subcommands()) == set(SETTINGS_COMMANDS) | OTHER_COMMANDS


@pytest.mark.parametrize("command", SETTINGS_COMMANDS)
def test_every_settings_flag_is_in_the_table_and_lands_on_its_key(command):
    parser = _subcommands()[command]
    table = flag_table(command)
    checked = 0
    for action in parser._actions:
        if not action.option_strings:
            continue                                       # positionals (RUN_DIR) are no settings
        flag = _flag(action)
        if flag in NOT_SETTINGS:
            continue
        assert flag in table, f"layermap {command} {flag} is neither in FLAG_SETTINGS nor in NOT_SETTINGS"
        for key in table[flag]:
            argv, expected = _sample(action, key)
            config = config_from_args(_parse(command, flag, *argv))
            section, name = key.split(".")
            assert getattr(getattr(config, section), name) == expected, f"layermap {command} {flag} -> {key}"
        checked += 1
    assert checked >= 2


def test_the_table_names_real_settings_and_every_flag_exists_somewhere():
    flags = {_flag(a) for p in _subcommands().values() for a in p._actions if a.option_strings}
    for flag, keys in FLAG_SETTINGS.items():
        assert flag in flags, f"{flag} is in FLAG_SETTINGS but no command has it"
        for key in keys:
            _setting_type(key)                             # raises KeyError for a key that is no setting


def test_tasks_means_the_proxy_tasks_except_in_compare():
    assert config_from_args(_parse("fitness", "--tasks", "cola")).proxy.tasks == ("cola",)
    compare = config_from_args(_parse("compare", "--tasks", "cola"))
    assert compare.compare.tasks == ("cola",) and compare.proxy.tasks == Config().proxy.tasks


def test_settings_resolve_preset_then_flags_then_set():
    args = _parse("evolve", "--config", "smoke", "--workers", "2", "--set", "run.workers=3", "--teacher", "t")
    config = config_from_args(args)
    assert config.run.workers == 3 and config.teacher.name == "t"          # --set beats the flag, as everywhere
    assert config_from_args(_parse("evolve", "--config", "smoke", "--workers", "2")).run.workers == 2
    base = {"teacher": {"name": "run-teacher"}, "compare": {"seeds": 5}}     # compare RUN_DIR: the run's settings
    config = config_from_args(_parse("compare", "--seeds", "2"), base=base)
    assert config.teacher.name == "run-teacher" and config.compare.seeds == 2


def test_distill_settings_are_what_the_command_built_by_hand_before():
    """``layermap distill`` now reads its flags through the table; the settings (and so its checkpoint digest)
    are those it used to construct itself."""
    from layermap.config import CorpusSettings, DistillSettings, StudentSettings, TeacherSettings

    args = _parse("distill", "--seq-len", "64", "--max-segments", "32", "--max-steps", "4", "--batch-size", "8",
                  "--lr", "1e-3", "--seed", "5", "--init", "teacher", "--max-documents", "7")
    config = config_from_args(args)
    old = Config(teacher=TeacherSettings(name=args.teacher),
                 student=StudentSettings(layers=2, init=args.init),
                 corpus=CorpusSettings(path=args.corpus, seq_len=args.seq_len, max_segments=args.max_segments,
                                       max_documents=args.max_documents, seed=args.seed),
                 distill=DistillSettings(max_steps=args.max_steps, epochs=args.epochs, batch_size=args.batch_size,
                                         learning_rate=args.lr, seed=args.seed, checkpoint_every=args.checkpoint_every))
    assert {k: v for k, v in config.to_dict().items() if k != "run"} == {k: v for k, v in old.to_dict().items() if k != "run"}
    assert config.distill.checkpoint_every == 500 and config.corpus.seed == config.distill.seed == 5


def test_resume_applies_the_same_table_and_refuses_shaping_flags():
    from layermap.searching.run import RESUMABLE_RUN_KEYS
    from layermap.cli.search import _resume_overrides

    args = _parse("evolve", "--resume", "r", "--workers", "4", "--executor", "process", "--device", "cpu",
                  "--retry-failed", "--set", "run.threads=2")
    assert _resume_overrides(args) == ['run.device="cpu"', "run.workers=4", 'run.executor="process"',
                                       "run.retry_failed=true", "run.threads=2"]       # table order, then --set
    for action in _subcommands()["evolve"]._actions:
        flag = action.option_strings and _flag(action)
        if not flag or flag in NOT_SETTINGS or flag == "--resume":
            continue
        argv, _ = _sample(action, FLAG_SETTINGS[flag][0])
        keys = flag_table("evolve")[flag]
        resumable = all(k.startswith("run.") and k[4:] in RESUMABLE_RUN_KEYS for k in keys)
        args = _parse("evolve", "--resume", "r", flag, *argv)
        if resumable:
            assert _resume_overrides(args)
        else:
            with pytest.raises(LayermapError, match=f"{flag} cannot be used with --resume"):
                _resume_overrides(args)
    for flag, value in (("--config", "smoke"), ("--synthetic", "6"), ("--out", "o")):
        with pytest.raises(LayermapError, match=f"{flag} cannot be used with --resume"):
            _resume_overrides(_parse("evolve", "--resume", "r", flag, value))


def test_old_flag_name_cache_is_store_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="layermap"):
        config = config_from_args(_parse("evolve", "--cache", "shared.sqlite"))
    assert config.run.store_path == "shared.sqlite"
    assert "--cache is the old name of --store" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="layermap"):
        assert config_from_args(_parse("evolve", "--store", "s.sqlite")).run.store_path == "s.sqlite"
    assert not caplog.records
    with pytest.raises(LayermapError, match="give only --store"):
        config_from_args(_parse("evolve", "--store", "a", "--cache", "b"))


def test_a_bad_flag_value_is_the_settings_error():
    with pytest.raises(ConfigError, match="run.workers must be at least 1"):
        config_from_args(_parse("compare", "--workers", "0"))
    assert main(["validate", "--teacher", "t", "--corpus", "c", "--tasks", ""]) == 2
