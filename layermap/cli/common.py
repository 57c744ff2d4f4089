"""The one route from command-line flags to settings, and the arguments shared by the commands that take settings.

:data:`FLAG_SETTINGS` says which settings key each flag sets; every command that takes settings (``distill``,
``fitness``, ``evolve`` and ``evolve --resume``, ``compare``, ``validate``, ``quantize``) turns its flags into settings through
:func:`flag_settings_given` and nothing else.  Settings resolve in one order everywhere::

    defaults <- --config preset or TOML file (or a run's own settings) <- flags <- --set section.key=value

Flags that name no setting (``--out``, ``--quiet``, ``--mapping``, ...) are listed in :data:`NOT_SETTINGS`; a
test walks every subcommand's parser and checks that each flag is in one of the two tables.
"""

from __future__ import annotations

import argparse
from typing import Any, NamedTuple

from ..config import Config, load_config, read_toml

# flag -> the settings keys it sets, in every command that has the flag
FLAG_SETTINGS: dict[str, tuple[str, ...]] = {
    "--teacher": ("teacher.name",),
    "--corpus": ("corpus.path",),
    "--glue-dir": ("proxy.glue_dir",),
    "--tasks": ("proxy.tasks",),
    "--device": ("run.device",),
    "--workers": ("run.workers",),
    "--executor": ("run.executor",),
    "--store": ("run.store_path",),
    "--cache": ("run.store_path",),                  # the old name of --store
    "--retry-failed": ("run.retry_failed",),
    "--cache-dir": ("run.cache_dir",),
    "--seeds": ("compare.seeds",),
    # layermap distill takes no --config: its flags are its settings
    "--student-layers": ("student.layers",),
    "--hidden-size": ("student.hidden_size",),
    "--heads": ("student.heads",),
    "--ffn": ("student.ffn",),
    "--init": ("student.init",),
    "--slice": ("student.slice",),
    "--seq-len": ("corpus.seq_len",),
    "--max-segments": ("corpus.max_segments",),
    "--max-documents": ("corpus.max_documents",),
    "--max-steps": ("distill.max_steps",),
    "--epochs": ("distill.epochs",),
    "--batch-size": ("distill.batch_size",),
    "--lr": ("distill.learning_rate",),
    "--seed": ("distill.seed", "corpus.seed"),
    "--checkpoint-every": ("distill.checkpoint_every",),
}

# where one command gives a flag another key
COMMAND_FLAG_SETTINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "compare": {"--tasks": ("compare.tasks",)},     # the final stage's tasks, not the proxy's
    "quantize": {"--device": ("latency.device",), "--batch-size": ("latency.batch_size",),   # the latency objective's
                 "--seq-len": ("latency.seq_len",), "--threads": ("latency.threads",),
                 "--warmup": ("latency.warmup",), "--repeats": ("latency.repeats",),
                 "--max-train": ("proxy.max_train",), "--max-eval": ("proxy.max_eval",)},
}

# the commands whose flags go through the table
SETTINGS_COMMANDS = ("distill", "fitness", "evolve", "compare", "validate", "quantize")

# flags of those commands that name no setting
NOT_SETTINGS = frozenset({"-h", "--help", "--config", "--set", "--out", "--resume", "--synthetic", "--quiet", "--json",
                          "--mapping", "--mappings", "--top", "--no-baselines", "--teacher-finetune", "--render-only",
                          "--no-references", "--teacher-from", "--recipe-from", "--quantize"})

# old flag name -> new
RENAMED_FLAGS = {"--cache": "--store"}

# flag values that need more than argparse's type
_CONVERT = {"--tasks": lambda text: [t.strip() for t in text.split(",") if t.strip()]}


class FlagSetting(NamedTuple):
    flag: str
    key: str             # "section.name"
    value: Any


def flag_table(command: str) -> dict[str, tuple[str, ...]]:
    """Flag -> settings keys for one command."""
    return {**FLAG_SETTINGS, **COMMAND_FLAG_SETTINGS.get(command, {})}


def flag_dest(flag: str) -> str:
    """argparse's attribute name for a flag (``--glue-dir`` -> ``glue_dir``)."""
    return flag.lstrip("-").replace("-", "_")


def flag_settings_given(args: argparse.Namespace, command: str | None = None) -> list[FlagSetting]:
    """Every (flag, settings key, value) the command line sets, in table order.  A flag counts when its
    value is not None (and, for an on/off flag, when it is on); an old flag name is reported in one warning."""
    from ..errors import LayermapError
    from ..logs import get_logger

    command = command or args.command
    given = []
    for flag, keys in flag_table(command).items():
        value = getattr(args, flag_dest(flag), None)
        if value is None or value is False:
            continue
        new = RENAMED_FLAGS.get(flag)
        if new is not None:
            if getattr(args, flag_dest(new), None) is not None:
                raise LayermapError(f"{flag} is the old name of {new}; give only {new}")
            get_logger(__name__).warning(f"{flag} is the old name of {new}; it still works, but write {new}")
        value = _CONVERT.get(flag, lambda v: v)(value)
        given.extend(FlagSetting(flag, key, value) for key in keys)
    return given


def flag_sections(given: list[FlagSetting]) -> dict[str, dict[str, Any]]:
    """``[FlagSetting('--workers', 'run.workers', 2)]`` -> ``{'run': {'workers': 2}}``."""
    sections: dict[str, dict[str, Any]] = {}
    for item in given:
        section, name = item.key.split(".", 1)
        sections.setdefault(section, {})[name] = item.value
    return sections


def config_from_args(args: argparse.Namespace, base: dict | None = None) -> Config:
    """A command's settings: ``base`` (e.g. a run's own settings) or the ``--config`` preset/file <- flags
    (:data:`FLAG_SETTINGS`) <- ``--set``."""
    source = base if base is not None else (read_toml(args.config) if getattr(args, "config", None) else None)
    return load_config(source, getattr(args, "overrides", ()), **flag_sections(flag_settings_given(args)))


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """``--config``, the flags of the settings every proxy command shares, and ``--set``."""
    parser.add_argument("--config", default=None, help="preset (smoke, demo, paper, gpu) or a TOML file")
    parser.add_argument("--teacher", default=None, help="teacher: hub name or local directory (teacher.name)")
    parser.add_argument("--corpus", default=None, help="corpus text file (one paragraph per line) or a datasets name "
                                                       "(corpus.path)")
    parser.add_argument("--glue-dir", default=None, help="local GLUE folder in the standard layout (SST-2/train.tsv, ...) "
                                                         "(proxy.glue_dir)")
    parser.add_argument("--tasks", default=None, help="comma-separated proxy tasks, e.g. sst2,mrpc,rte (proxy.tasks)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (run.device)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one setting, e.g. --set search.population=12 (repeatable)")
