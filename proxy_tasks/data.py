"""Load a GLUE task, from a local GLUE download or from the Hugging Face Hub.

:func:`load_task` returns a :class:`TaskData`: the train examples and one tuple of
examples per dev split, with labels already turned into class ids (see
:mod:`proxy_tasks.registry` for the label order) or float scores (stsb).

* ``glue_dir`` given: read the official TSV layout (``<glue_dir>/SST-2/train.tsv`` ...);
  the parsing rules are in :mod:`proxy_tasks.glue_tsv`.
* ``glue_dir`` None: ``datasets.load_dataset(*task.hub_path)``; the hub split
  ``validation`` becomes ``dev`` and mnli's ``validation_matched`` /
  ``validation_mismatched`` become ``dev_matched`` / ``dev_mismatched``.

``max_train`` / ``max_eval`` take a seeded random subset (``numpy.random.default_rng``),
keeping the original order; ``max_eval`` applies to each dev split separately.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .glue_tsv import Row, read_split, resolve_split_paths
from .registry import TaskError, TaskSpec, get_task

__all__ = ["Example", "TaskData", "data_fingerprint", "load_task"]

_HUB_SPLITS = {"train": "train", "dev": "validation"}


@dataclass(frozen=True)
class Example:
    """One labelled example.

    Attributes:
        text_a: the (first) sentence.
        text_b: the second sentence of a pair task, else None.
        label: the class id (an ``int``) for classification, the score (a ``float``)
            for regression.
    """

    text_a: str
    text_b: str | None
    label: float


@dataclass(frozen=True)
class TaskData:
    """The examples of one task.

    Attributes:
        task: the task.
        train: training examples.
        dev: dev split name (``'dev'``, or ``'dev_matched'`` / ``'dev_mismatched'`` for
            mnli) -> examples, in ``task.dev_splits`` order.
        source: where the data came from, for provenance: the resolved GLUE directory,
            or ``'<hub repo>/<config>'`` such as ``'nyu-mll/glue/sst2'``.
        held_out: split name -> training examples kept out of ``train`` and scored like a dev
            split (:func:`proxy_tasks.holdout.hold_out`: ``'score'``, ``'select'``); empty by default.
    """

    task: TaskSpec
    train: tuple[Example, ...]
    dev: dict[str, tuple[Example, ...]]
    source: str
    held_out: dict[str, tuple[Example, ...]] = field(default_factory=dict)

    @property
    def num_eval(self) -> int:
        """Total number of examples over all dev splits."""
        return sum(len(examples) for examples in self.dev.values())


def load_task(
    task: str | TaskSpec,
    glue_dir: str | os.PathLike | None = None,
    *,
    max_train: int | None = None,
    max_eval: int | None = None,
    seed: int = 0,
) -> TaskData:
    """Load the train and dev splits of a GLUE task.

    Args:
        task: a task name (``'sst2'``, ``'SST-2'`` ...) or a :class:`TaskSpec`.
        glue_dir: a folder in the standard GLUE layout, or None for the Hugging Face Hub.
        max_train: keep at most this many training examples (a seeded random subset in
            the original order); None keeps all.
        max_eval: the same for each dev split.
        seed: seed of the subsets; the same seed always picks the same subset.

    Raises:
        TaskError: unknown task, bad ``max_*``, missing/malformed files, hub unreachable.
    """
    spec = get_task(task)
    _check_limit("max_train", max_train)
    _check_limit("max_eval", max_eval)
    limits = {split: (max_train if split == "train" else max_eval) for split in ("train", *spec.dev_splits)}
    if glue_dir is None:
        splits = _load_hub_splits(spec, limits, seed)
        source = _hub_source(spec)
    else:
        paths = resolve_split_paths(spec, glue_dir)
        splits = {
            split: _subsample(_to_examples(read_split(spec, path)), limits[split], seed)
            for split, path in paths.items()
        }
        source = str(Path(glue_dir).expanduser().resolve())
    return TaskData(
        task=spec,
        train=splits["train"],
        dev={split: splits[split] for split in spec.dev_splits},
        source=source,
    )


def data_fingerprint(task: str | TaskSpec, glue_dir: str | os.PathLike | None) -> str:
    """Return a string that changes whenever the data a task would load changes.

    For a local GLUE folder: the sha256 hex digest over the files used (train, then the
    dev splits in order), each framed by its split name and byte length; the files are read once
    per process for each version of them (keyed by their inode, size and times). For the hub
    (``glue_dir`` None): the hub path and the commit its ``main`` revision resolves to, such as
    ``'nyu-mll/glue/sst2@<sha>'`` (``...@main`` with one warning line when no commit can be found;
    see :mod:`proxy_tasks.hub`).
    Subsampling settings (``max_train`` ...) are *not* included; add them to a cache
    key yourself.

    Raises:
        TaskError: unknown task, or a missing folder or split file.
    """
    spec = get_task(task)
    if glue_dir is None:
        from .hub import hub_identity  # the hub's commit

        repo, config = spec.hub_path[0], (spec.hub_path[1] if len(spec.hub_path) > 1 else None)
        commit = hub_identity(repo, "main", "dataset", config=config, what=f"GLUE task {spec.name}").rpartition("@")[2]
        return f"{_hub_source(spec)}@{commit}"
    paths = resolve_split_paths(spec, glue_dir)
    try:
        key = (spec.name, tuple((str(path.resolve()), *_stat_key(path)) for path in paths.values()))
    except OSError as err:
        raise TaskError(f"cannot read the GLUE files of {spec.name} in {glue_dir} ({err}); check the path and its "
                        "permissions") from err
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = _hash_splits(spec, paths)
    return _FINGERPRINTS[key]


_FINGERPRINTS: dict[tuple, str] = {}


def _stat_key(path: Path) -> tuple[int, ...]:
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _hash_splits(spec: TaskSpec, paths: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    for split, path in paths.items():
        try:
            payload = path.read_bytes()
        except OSError as err:
            raise TaskError(f"cannot read GLUE file {path} ({err}); check the path and its permissions") from err
        digest.update(f"{spec.glue_dir_name}/{split}.tsv\0{len(payload)}\0".encode())
        digest.update(payload)
    return digest.hexdigest()


def _hub_source(spec: TaskSpec) -> str:
    """Return the provenance string of a hub dataset: ``'<repo>/<config>'``."""
    return "/".join(spec.hub_path)


def _check_limit(name: str, value: int | None) -> None:
    """Reject a ``max_*`` limit that is not None or a positive int."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise TaskError(f"{name} must be a positive integer or None, got {value!r}; pass e.g. {name}=1000")


def _to_examples(rows: Sequence[Row]) -> tuple[Example, ...]:
    """Wrap parsed ``(text_a, text_b, label)`` rows into :class:`Example` objects."""
    return tuple(Example(text_a, text_b, label) for text_a, text_b, label in rows)


def _subsample_indices(n: int, limit: int | None, seed: int) -> np.ndarray | None:
    """Return sorted indices of a seeded random subset of size ``limit`` of ``range(n)``.

    Returns None when no subsampling is needed (``limit`` None or ``>= n``).
    """
    if limit is None or limit >= n:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=limit, replace=False))


def _subsample(examples: tuple[Example, ...], limit: int | None, seed: int) -> tuple[Example, ...]:
    """Return a seeded random subset of ``examples`` in their original order."""
    indices = _subsample_indices(len(examples), limit, seed)
    if indices is None:
        return examples
    return tuple(examples[int(i)] for i in indices)


def _hub_split_name(split: str) -> str:
    """Map a GLUE file stem to the hub split name (``dev_matched`` -> ``validation_matched``)."""
    if split in _HUB_SPLITS:
        return _HUB_SPLITS[split]
    return split.replace("dev", "validation", 1)


def _load_hub_splits(
    spec: TaskSpec, limits: dict[str, int | None], seed: int
) -> dict[str, tuple[Example, ...]]:
    """Load the task's splits with ``datasets.load_dataset`` and convert them."""
    import datasets  # imported lazily: it is slow to import and only the hub path needs it

    try:
        dataset_dict = datasets.load_dataset(*spec.hub_path)
    except Exception as err:  # network, auth, cache and missing-config errors alike
        raise TaskError(
            f"could not load GLUE task {spec.name!r} from the Hugging Face Hub "
            f"({'/'.join(spec.hub_path)}: {type(err).__name__}: {err}); the hub may be "
            f"unreachable, so pass a local --glue-dir in the standard GLUE layout instead"
        ) from err
    splits: dict[str, tuple[Example, ...]] = {}
    for split, limit in limits.items():
        hub_split = _hub_split_name(split)
        if hub_split not in dataset_dict:
            raise TaskError(
                f"the hub dataset {'/'.join(spec.hub_path)} has no split {hub_split!r} "
                f"(found: {', '.join(dataset_dict)}); pass a local --glue-dir instead"
            )
        table = dataset_dict[hub_split]
        indices = _subsample_indices(len(table), limit, seed)
        if indices is not None:
            table = table.select(indices.tolist())
        splits[split] = _hub_examples(spec, table, hub_split, indices)
    return splits


def _hub_examples(
    spec: TaskSpec, table, hub_split: str, indices: np.ndarray | None
) -> tuple[Example, ...]:
    """Convert one hub ``datasets.Dataset`` into examples, checking fields and labels.

    ``indices`` are the original row numbers of a subsampled ``table`` (for messages).
    """
    wanted = [*spec.text_fields, "label"]
    missing = [field for field in wanted if field not in table.column_names]
    if missing:
        raise TaskError(
            f"the hub split {'/'.join(spec.hub_path)}[{hub_split}] lacks field(s) "
            f"{', '.join(missing)}; pass a local --glue-dir in the GLUE layout instead"
        )
    columns = table.select_columns(wanted).to_dict()
    texts_a = columns[spec.text_fields[0]]
    texts_b = columns[spec.text_fields[1]] if spec.is_pair else [None] * len(texts_a)
    examples = []
    for row, (text_a, text_b, label) in enumerate(zip(texts_a, texts_b, columns["label"])):
        original_row = row if indices is None else int(indices[row])
        examples.append(Example(text_a, text_b, _check_hub_label(spec, label, hub_split, original_row)))
    return tuple(examples)


def _check_hub_label(spec: TaskSpec, label, hub_split: str, row: int) -> int | float:
    """Validate a hub label: a finite float for regression, a class id otherwise."""
    if spec.is_regression:
        if isinstance(label, (int, float, np.number)) and not isinstance(label, bool) and np.isfinite(label):
            return float(label)
    elif not isinstance(label, bool) and isinstance(label, (int, np.integer)) and 0 <= label < spec.num_labels:
        return int(label)
    raise TaskError(
        f"the hub split {'/'.join(spec.hub_path)}[{hub_split}] row {row} has label "
        f"{label!r}, which is not valid for {spec.name}; unlabelled (test) splits cannot "
        f"be used, pass a local --glue-dir instead"
    )
