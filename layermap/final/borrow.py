"""``--teacher-from`` and ``--recipe-from``: cells and rates borrowed from another compare folder, when what keys
them (teacher identity, fine-tuning settings, device class, library versions) is this compare's.  May import ``jobs``,
``fingerprints``, ``recipe``, ``storage`` and the top-level modules.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

from . import recipe
from ..config import Config, digest
from ..versions import library_versions, major_minor
from ..storage.store import STORE_NAME, Store
from ..logs import get_logger
from ..mapping import baseline
from .fingerprints import _TEACHER_SHAPING, _folder_settings
from .jobs import (CompareError, INFO_NAME, Job, LOYALTY_SEED, TRUNCATION, _folder_settings_of, _outputs_path,
                   teacher_outputs)

_log = get_logger(__name__)


def _borrow_rates(sources: Sequence[Path], config: Config, families: Sequence[str], tasks: Sequence[str]) -> dict:
    """family -> task -> rate chosen in the compare folders ``sources`` (``--recipe-from``, repeatable: e.g. the same
    undistilled students judged on SST-2 in one folder and on MRPC in another), for the families that have a rate
    for every task among them; where two folders chose a rate for one family and task, the first given wins.  Each
    source must have been made with this fine-tuning recipe (the teacher, the task data sizes, ``finetune_*`` and the
    recipe keys); else one sentence."""
    merged: dict[str, dict[str, float]] = {}
    for source in sources:
        for family, by_task in _rates_of(Path(source), config).items():
            for task, rate in by_task.items():
                merged.setdefault(family, {}).setdefault(task, rate)
    given = {f: dict(merged[undistilled_self(f, merged)]) for f in families
             if all(t in merged.get(undistilled_self(f, merged), {}) for t in tasks)}
    names = ", ".join(str(s) for s in sources)
    _log.info(f"learning rates of {len(given)} of {len(families)} student famil{'y' if len(families) == 1 else 'ies'} "
              f"read from {names}")
    return given


def _rates_of(source: Path, config: Config) -> dict:
    """family -> task -> rate that compare folder ``source`` chose (the bottom-layers genome also under the truncation
    row's rate, :func:`_with_truncation_genes`); one sentence where it is not such a folder or chose under another
    recipe."""
    recorded = _folder_settings_of(source)
    if not recorded or not (source / recipe.RECIPE_NAME).is_file():
        raise CompareError(f"--recipe-from {source} is not a compare folder that chose learning rates (no {INFO_NAME} "
                           f"and {recipe.RECIPE_NAME}); give a folder written by layermap compare with a rate grid")
    ours = _folder_settings(config)
    keys = ["teacher.name", *(f"compare.{k}" for k in (*_TEACHER_SHAPING, *recipe.RECIPE_DEFAULTS))]
    differ = [k for k in keys if recorded.get(k) != ours.get(k)]
    if differ:
        raise CompareError(f"--recipe-from {source} chose its rates under another recipe ({', '.join(differ)} "
                           "differ); give a folder with this compare's fine-tuning settings")
    return _with_truncation_genes(source, recorded, recipe.read_choices(source))


def undistilled_self(family: str, known) -> str:
    """The family whose rate (and undistilled score) ``family`` reads among ``known``: its own, else for a split genome
    (``1-2-3+2-4-6``) the genes it starts from (``1-2-3``), the student it is before distillation."""
    if family in known or "+" not in family:
        return family
    return family.split("+", 1)[0]


def truncation_genes(folder: Path) -> str | None:
    """The genes of the plain truncation (the bottom layers, ``1-2-3`` for 3 of 6) of a teacher-initialised compare
    folder: the genome its ``truncation`` reference row is; None for a folder of random students or one without a
    table."""
    try:
        table = json.loads((Path(folder) / "comparison.json").read_text("utf-8"))
        init = table["student"].get("init") or (_folder_settings_of(Path(folder)) or {}).get("compare.init")
        if init != "teacher":                       # (a table from before it recorded the initialisation: the settings)
            return None
        return "-".join(map(str, baseline("bottom", int(table["student"]["layers"]), int(table["teacher"]["layers"]))))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _with_truncation_genes(source: Path, recorded: Mapping, chosen: dict) -> dict:
    """``chosen`` with the source's ``truncation`` family also under its genes (``1-2-3`` for 3 of 6 layers): in a
    teacher-initialised folder the plain truncation is the bottom-layers extraction, so a folder that distils that
    genome reads the rate its undistilled self was given (the table records where each rate came from)."""
    genes = truncation_genes(source) if recorded.get("compare.init") == "teacher" else None
    if genes is None or TRUNCATION not in chosen:
        return chosen
    return {genes: chosen[TRUNCATION], **chosen}


def _borrow_teacher_cells(source: Path, store: Store, config: Config, jobs: Sequence[Job], fp_of, data_fp: Mapping,
                          out: Path) -> dict:
    """Copy the teacher fine-tuning cells ``jobs`` from compare folder ``source`` into ``store`` (and their dev outputs,
    for loyalty); returns job -> record for those found.  A cell is found under the teacher's own key (same teacher,
    fine-tuning settings, task data, versions and device class); in a folder from before that key, under its cell key,
    when its recorded teacher identity, fine-tuning settings and device class are this compare's and its record's
    library versions match.  A folder that is not a compare folder is one sentence; cells it lacks are computed."""
    from ..distill.models import teacher_identity

    info = source / INFO_NAME
    if not (info.is_file() and (source / STORE_NAME).is_file()):
        raise CompareError(f"--teacher-from {source} is not a compare folder (no {INFO_NAME} and {STORE_NAME}); give a "
                           "folder written by layermap compare")
    if source.resolve() == out.resolve():
        return {}
    recorded = json.loads(info.read_text("utf-8"))
    legacy_fp = None
    table_path = source / "comparison.json"
    settings = recorded.get("settings", {})
    ours = _folder_settings(config)
    same_settings = all(settings.get(f"compare.{k}") == ours.get(f"compare.{k}") for k in _TEACHER_SHAPING) and \
        settings.get("device") == ours.get("device")
    if same_settings and table_path.is_file():
        table = json.loads(table_path.read_text("utf-8"))
        if table.get("teacher", {}).get("identity") == teacher_identity(config.teacher.name, config.teacher.revision):
            legacy_fp = recorded.get("fingerprint")
    versions = library_versions()
    found: dict = {}
    other = Store(source / STORE_NAME)
    try:
        for job in jobs:
            record = other.lookup_cell(fp_of(job), job)
            if record is None and legacy_fp is not None:
                record = other.lookup_cell(digest([legacy_fp, job.task, data_fp[job.task]])[:32], job)
                env = (record or {}).get("environment", {})
                if record is not None and any(major_minor(env.get(k)) != v for k, v in versions.items()):
                    record = None
            if record is None:
                continue
            src, dst = _outputs_path(source, job), _outputs_path(out, job)
            if job.seed == LOYALTY_SEED:               # also an old folder's one file per task, where it is seed 0's
                src = teacher_outputs(source, [job.task], borrowed=bool(record.get("borrowed_from")))[0][job.task] or src
            record = {**record, "borrowed_from": source.name}
            store.save_cell(fp_of(job), job, record)
            if src.is_file() and not dst.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(src.read_bytes())
            found[job] = record
    finally:
        other.close()
    _log.info(f"teacher row: {len(found)} of {len(jobs)} fine-tuning cell(s) read from {source}")
    return found
