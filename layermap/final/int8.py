"""``compare --quantize``: each student quantised to int8 and timed beside fp32, written into the table.  May import
``jobs``, ``report``, ``deploy`` and the top-level modules.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from .comparison import write_table
from ..config import Config
from ..logs import get_logger
from .jobs import CompareError, QUANTIZE_FORMAT, student_dir
from .report import _header

_log = get_logger(__name__)


def quantize_students(config: Config, out: Path, mappings: Sequence[str], tasks: Sequence[str], *,
                      progress: bool = True) -> dict:
    """``compare --quantize``: each distilled student ``DIR/students/<m>/`` (distillation seed 0) through
    :func:`layermap.deploy.quantize.quantize_student` into ``DIR/onnx/<m>/`` (ONNX fp32 and dynamic int8, latency
    under ``[latency]``, the probe-head dev scores of fp32 and int8 on the compare's tasks with
    ``compare.max_train`` examples, and their agreement); a student whose ``quantize.json`` was written under the
    same settings is read back, not measured again.  Returns mapping -> its ``quantize.json`` payload."""
    from dataclasses import asdict

    from ..deploy.quantize import check_int8_device, quantize_student

    check_int8_device(config.latency)
    settings = config.latency
    c = config.compare
    wanted = {"settings": asdict(settings), "tasks": list(tasks), "max_train": c.max_train or None,
              "max_eval": c.max_eval or None, "max_seq_len": c.finetune_seq_len, "format": QUANTIZE_FORMAT}
    reports: dict = {}
    for m in mappings:
        folder, dest = student_dir(out, m, 0), out / "onnx" / m
        saved = dest / "quantize.json"
        if saved.is_file():
            payload = json.loads(saved.read_text("utf-8"))
            if payload.get("request") == wanted:
                reports[m] = payload
                continue
        if progress:
            _log.info(f"quantize {m}: ONNX export, int8, latency and probe scores of fp32 and int8")
        report = quantize_student(folder, dest, settings=settings, tasks=tuple(tasks), glue_dir=config.proxy.glue_dir or None,
                                  max_train=wanted["max_train"], max_eval=wanted["max_eval"],
                                  max_seq_len=wanted["max_seq_len"])
        payload = {**report.to_dict(), "request": wanted}
        payload["student"], payload["out_dir"] = f"students/{m}", f"onnx/{m}"     # no machine path in a table
        saved.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        reports[m] = payload
    return reports


def _quantize_into(table: dict, config: Config, out: Path, mappings: Sequence[str], tasks: Sequence[str],
                   progress: bool) -> None:
    """``--quantize`` once the table is written: the int8 columns added and the table written again; a failure leaves
    the table as written, with a sentence saying why, and ends in one sentence (:class:`CompareError`)."""
    try:
        table["quantized"] = quantize_students(config, out, mappings, tasks, progress=progress)
    except Exception as exc:  # noqa: BLE001 - whatever broke, the comparison itself is done and kept
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        table["quantize_error"] = reason
        write_table(out, table, header=_header(table))
        raise CompareError(f"the comparison is written to {out / 'comparison.md'}, but --quantize failed: {reason}") from None
    write_table(out, table, header=_header(table))
