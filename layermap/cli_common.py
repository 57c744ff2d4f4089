"""Arguments shared by the commands that need a full config (fitness, evolve, compare)."""

from __future__ import annotations

import argparse

from .config import Config, load_config


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="preset (smoke, demo, paper) or a TOML file")
    parser.add_argument("--teacher", default=None, help="teacher: hub name or local directory")
    parser.add_argument("--corpus", default=None, help="corpus text file (one paragraph per line) or a datasets name")
    parser.add_argument("--glue-dir", default=None, help="local GLUE folder in the standard layout (SST-2/train.tsv, ...)")
    parser.add_argument("--tasks", default=None, help="comma-separated proxy tasks, e.g. sst2,mrpc,rte")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one setting, e.g. --set search.population=12 (repeatable)")


def config_from_args(args: argparse.Namespace) -> Config:
    """Preset/file <- explicit flags (--teacher, --corpus, --glue-dir, --tasks, --device) <- --set."""
    proxy: dict = {}
    if args.glue_dir is not None:
        proxy["glue_dir"] = args.glue_dir
    if args.tasks is not None:
        proxy["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
    return load_config(
        args.config,
        args.overrides,
        teacher={"name": args.teacher} if args.teacher else {},
        corpus={"path": args.corpus} if args.corpus else {},
        proxy=proxy,
        run={"device": args.device} if args.device else {},
    )
