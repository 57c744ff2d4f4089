"""Read the TSV files of an official GLUE download.

The files are tab-separated and *unquoted* (sentences may contain ``"``), so every line
is split on ``'\\t'``; no CSV quote parser is used. Lines are split on ``'\\n'`` only
(a trailing ``'\\r'`` is dropped), never on other Unicode line breaks that a sentence
may contain. Files are decoded as UTF-8; a leading byte-order mark (MRPC) is removed.

Column layout per task (GLUE download, ``download_glue_data.py``):

=====  ==========================================================  =================
task   columns used                                                header row
=====  ==========================================================  =================
CoLA   position 3 (sentence), position 1 (label); exactly 4 fields  none
SST-2  ``sentence``, ``label``                                      yes
MRPC   ``#1 String``, ``#2 String``, ``Quality``                    yes (UTF-8 BOM)
QQP    ``question1``, ``question2``, ``is_duplicate``               yes
STS-B  ``sentence1``, ``sentence2``, ``score`` (a float)            yes
MNLI   ``sentence1``, ``sentence2``, ``gold_label``                 yes
QNLI   ``question``, ``sentence``, ``label``                        yes
RTE    ``sentence1``, ``sentence2``, ``label``                      yes
WNLI   ``sentence1``, ``sentence2``, ``label``                      yes
=====  ==========================================================  =================

Columns of files with a header are found by name, so extra columns are harmless. Each
data row must have as many fields as the header (or 4 for CoLA). One blank final line
is skipped; any other blank line or a row with the wrong number of fields is an error
naming the file and the 1-based line number.

QQP exception: the QQP train file of some GLUE downloads has a few rows with fields
missing. A QQP row with *fewer* fields than the header is skipped (as the
``transformers`` GLUE processor does) and one :class:`UserWarning` per file reports how
many rows were skipped. A QQP row with the right field count but an unparseable label
is still an error.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from .registry import TaskError, TaskSpec

__all__ = ["Row", "read_split", "resolve_split_paths"]

Row = tuple[str, "str | None", "int | float"]
"""One parsed example: ``(text_a, text_b or None, class id or score)``."""


@dataclass(frozen=True)
class _Columns:
    """Where a task's fields are in its TSV files.

    ``texts`` and ``label`` hold, for each field, the accepted header names (first
    match wins) or, for a header-less file, a 0-based position.
    """

    texts: tuple[tuple[str, ...] | int, ...]
    label: tuple[str, ...] | int
    num_fields: int | None = None  # fixed field count of a header-less file


_LAYOUTS: dict[str, _Columns] = {
    "cola": _Columns(texts=(3,), label=1, num_fields=4),
    "sst2": _Columns(texts=(("sentence",),), label=("label",)),
    "mrpc": _Columns(texts=(("#1 String",), ("#2 String",)), label=("Quality",)),
    "qqp": _Columns(texts=(("question1",), ("question2",)), label=("is_duplicate",)),
    "stsb": _Columns(texts=(("sentence1",), ("sentence2",)), label=("score",)),
    "mnli": _Columns(texts=(("sentence1",), ("sentence2",)), label=("gold_label",)),
    "qnli": _Columns(texts=(("question", "sentence1"), ("sentence", "sentence2")), label=("label",)),
    "rte": _Columns(texts=(("sentence1",), ("sentence2",)), label=("label",)),
    "wnli": _Columns(texts=(("sentence1",), ("sentence2",)), label=("label",)),
}


def resolve_split_paths(task: TaskSpec, glue_dir: str | os.PathLike) -> dict[str, Path]:
    """Return the TSV path of every split a task uses: ``'train'`` then its dev splits.

    Raises:
        TaskError: ``glue_dir`` is not a folder, or a split file is missing.
    """
    root = Path(glue_dir).expanduser()
    if not root.is_dir():
        raise TaskError(
            f"GLUE directory {str(root)!r} does not exist or is not a folder; point "
            f"--glue-dir at a folder in the standard GLUE layout "
            f"({task.glue_dir_name}/train.tsv, ...)"
        )
    paths: dict[str, Path] = {}
    for split in ("train", *task.dev_splits):
        path = root / task.glue_dir_name / f"{split}.tsv"
        if not path.is_file():
            raise TaskError(
                f"GLUE directory {str(root)!r} has no {task.glue_dir_name}/{split}.tsv; "
                f"point --glue-dir at a folder in the standard GLUE layout "
                f"({task.glue_dir_name}/train.tsv, {task.glue_dir_name}/"
                f"{task.dev_splits[0]}.tsv, ...)"
            )
        paths[split] = path
    return paths


def read_split(task: TaskSpec, path: str | os.PathLike) -> list[Row]:
    """Parse one GLUE TSV file of ``task`` into ``(text_a, text_b, label)`` rows.

    Classification labels become class ids (the index in ``task.labels``); STS-B
    scores become floats. See the module docstring for the layout rules.

    Raises:
        TaskError: the file cannot be read or decoded, its header lacks a needed
            column, or a row is malformed (message names the file and line).
    """
    path = Path(path)
    lines = _read_lines(path)
    columns = _LAYOUTS[task.name]
    if columns.num_fields is not None:
        text_idx = tuple(int(i) for i in columns.texts)  # type: ignore[arg-type]
        label_idx = int(columns.label)  # type: ignore[arg-type]
        num_fields = columns.num_fields
        first_row = 0
    else:
        if not lines:
            raise TaskError(
                f"{path} is empty; it should start with a GLUE header row, "
                f"re-download or regenerate the {task.glue_dir_name} files"
            )
        header = [name.strip() for name in lines[0].split("\t")]
        text_idx = tuple(_find_column(header, names, path) for names in columns.texts)  # type: ignore[arg-type]
        label_idx = _find_column(header, columns.label, path)  # type: ignore[arg-type]
        num_fields = len(header)
        first_row = 1
    label_ids = {label: i for i, label in enumerate(task.labels)}
    rows: list[Row] = []
    skipped: list[int] = []
    for index in range(first_row, len(lines)):
        line_no = index + 1
        fields = lines[index].split("\t")
        if len(fields) != num_fields:
            if task.name == "qqp" and len(fields) < num_fields:
                skipped.append(line_no)
                continue
            _raise_field_count(path, line_no, lines[index], len(fields), num_fields)
        label = _parse_label(task, label_ids, fields[label_idx], path, line_no)
        texts = [fields[i] for i in text_idx]
        rows.append((texts[0], texts[1] if len(texts) > 1 else None, label))
    if skipped:
        warnings.warn(
            f"{path}: skipped {len(skipped)} QQP row(s) with missing fields "
            f"(first at line {skipped[0]})",
            UserWarning,
            stacklevel=2,
        )
    return rows


def _read_lines(path: Path) -> list[str]:
    """Return the lines of ``path`` without line ends, minus one blank final line."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as err:
        raise TaskError(f"cannot read GLUE file {path} ({err}); check the path and its permissions") from err
    except UnicodeDecodeError as err:
        raise TaskError(
            f"GLUE file {path} is not valid UTF-8 (byte {err.start}); "
            f"re-download or regenerate it as UTF-8"
        ) from err
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()  # the piece after the final newline
    if lines and not lines[-1].strip():
        lines.pop()  # one blank final line
    return lines


def _find_column(header: list[str], names: tuple[str, ...], path: Path) -> int:
    """Return the position of the first of ``names`` found in ``header``."""
    for name in names:
        if name in header:
            return header.index(name)
    raise TaskError(
        f"the header (line 1) of {path} has no column {names[0]!r} "
        f"(found: {', '.join(header)}); use the GLUE file with its original header row"
    )


def _raise_field_count(path: Path, line_no: int, line: str, found: int, expected: int) -> None:
    """Raise the :class:`TaskError` for a row with the wrong number of fields."""
    if not line.strip():
        raise TaskError(
            f"{path} line {line_no} is blank; remove blank lines (only a blank final "
            f"line is allowed)"
        )
    raise TaskError(
        f"{path} line {line_no} has {found} tab-separated field(s) but {expected} are "
        f"expected; fix or remove that row (fields must be separated by tabs, unquoted)"
    )


def _parse_label(
    task: TaskSpec, label_ids: dict[str, int], raw: str, path: Path, line_no: int
) -> int | float:
    """Turn a label field into a class id, or a finite float score for regression."""
    value = raw.strip()
    if task.is_regression:
        try:
            score = float(value)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise TaskError(
                f"{path} line {line_no}: score {raw!r} is not a finite number; fix the "
                f"{task.glue_dir_name} row so its score column holds a number such as 3.8"
            )
        return score
    if value not in label_ids:
        expected = ", ".join(repr(label) for label in task.labels)
        raise TaskError(
            f"{path} line {line_no}: label {raw!r} is not a {task.name} label "
            f"(expected one of {expected}); fix the row or check that the file "
            f"belongs to {task.glue_dir_name}"
        )
    return label_ids[value]
