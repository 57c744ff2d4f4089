"""The nine GLUE tasks: their files, fields, label names and metrics.

Every other module of :mod:`proxy_tasks` looks a task up here. A :class:`TaskSpec`
records, for one task, both the layout of the official GLUE download (folder name,
dev split file stems, label strings as they appear in the TSV files) and the
Hugging Face ``datasets`` coordinates of the same task (``hub_path`` and the field
names in ``text_fields``).

Label order
-----------
``TaskSpec.labels[i]`` is the TSV label string of class id ``i``. The order is the one
the Hugging Face ``glue`` datasets use, so ids read from a local TSV and ids read from
the hub agree:

* rte, qnli: ``entailment`` = 0, ``not_entailment`` = 1;
* mnli: ``entailment`` = 0, ``neutral`` = 1, ``contradiction`` = 2 (GLUE's own order,
  contradiction/entailment/neutral, is *not* used);
* cola, sst2, mrpc, qqp, wnli: the integer labels ``'0'`` and ``'1'`` keep their value;
* stsb is a regression task and has no labels (``labels == ()``).

All user-caused errors in the package raise :class:`TaskError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["TASKS", "TaskError", "TaskSpec", "get_task", "parse_task_list"]

_HUB_REPO = "nyu-mll/glue"
_BINARY = ("0", "1")
_ENTAILMENT_2 = ("entailment", "not_entailment")
_ENTAILMENT_3 = ("entailment", "neutral", "contradiction")


class TaskError(ValueError):
    """A user-caused problem with a task name, a data folder, a file or a setting.

    The message is one sentence that names the offending input and says how to fix it.
    """


@dataclass(frozen=True)
class TaskSpec:
    """Static description of one GLUE task.

    Attributes:
        name: short lower-case name, e.g. ``'sst2'``.
        glue_dir_name: folder of the task in a GLUE download, e.g. ``'SST-2'``.
        text_fields: names of the text fields in the Hugging Face dataset:
            one field for single-sentence tasks, two for sentence-pair tasks.
        labels: label strings as they appear in the GLUE TSV files; the index is the
            class id. Empty for the regression task (stsb).
        metrics: names of the metrics reported for the task (see
            :func:`proxy_tasks.metrics.compute_metrics`).
        dev_splits: stems of the dev TSV files (``('dev',)``; for mnli
            ``('dev_matched', 'dev_mismatched')``).
        hub_path: positional arguments for ``datasets.load_dataset``.
    """

    name: str
    glue_dir_name: str
    text_fields: tuple[str, ...]
    labels: tuple[str, ...]
    metrics: tuple[str, ...]
    dev_splits: tuple[str, ...]
    hub_path: tuple[str, str]

    @property
    def is_regression(self) -> bool:
        """True for tasks with a real-valued target (stsb)."""
        return not self.labels

    @property
    def num_labels(self) -> int:
        """Number of outputs of a prediction head: the class count, or 1 for regression."""
        return 1 if self.is_regression else len(self.labels)

    @property
    def is_pair(self) -> bool:
        """True when an example has two texts (a sentence pair)."""
        return len(self.text_fields) == 2


def _make_spec(
    name: str,
    glue_dir_name: str,
    text_fields: tuple[str, ...],
    labels: tuple[str, ...],
    metrics: tuple[str, ...] = ("accuracy",),
    dev_splits: tuple[str, ...] = ("dev",),
) -> TaskSpec:
    """Build a :class:`TaskSpec` whose hub path is the ``nyu-mll/glue`` config ``name``."""
    return TaskSpec(
        name=name,
        glue_dir_name=glue_dir_name,
        text_fields=text_fields,
        labels=labels,
        metrics=metrics,
        dev_splits=dev_splits,
        hub_path=(_HUB_REPO, name),
    )


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        _make_spec("cola", "CoLA", ("sentence",), _BINARY, ("mcc",)),
        _make_spec("sst2", "SST-2", ("sentence",), _BINARY),
        _make_spec("mrpc", "MRPC", ("sentence1", "sentence2"), _BINARY, ("accuracy", "f1")),
        _make_spec("qqp", "QQP", ("question1", "question2"), _BINARY, ("accuracy", "f1")),
        _make_spec("stsb", "STS-B", ("sentence1", "sentence2"), (), ("pearson", "spearman")),
        _make_spec(
            "mnli",
            "MNLI",
            ("premise", "hypothesis"),
            _ENTAILMENT_3,
            ("accuracy_matched", "accuracy_mismatched"),
            ("dev_matched", "dev_mismatched"),
        ),
        _make_spec("qnli", "QNLI", ("question", "sentence"), _ENTAILMENT_2),
        _make_spec("rte", "RTE", ("sentence1", "sentence2"), _ENTAILMENT_2),
        _make_spec("wnli", "WNLI", ("sentence1", "sentence2"), _BINARY),
    )
}
"""All nine GLUE tasks, keyed by their short name, in the usual GLUE order."""


def _normalize_name(name: str) -> str:
    """Fold a task name to a lookup key: lower case, without '-', '_' and spaces."""
    return "".join(ch for ch in name.strip().lower() if ch not in "-_ ")


_ALIASES: dict[str, str] = {
    _normalize_name(alias): spec.name
    for spec in TASKS.values()
    for alias in (spec.name, spec.glue_dir_name)
}


def get_task(name: str | TaskSpec) -> TaskSpec:
    """Return the :class:`TaskSpec` for a task name.

    The lookup ignores case, '-', '_' and surrounding spaces, so ``'sst2'``, ``'SST-2'``
    and ``'sst_2'`` all name the same task. A :class:`TaskSpec` is returned unchanged.

    Raises:
        TaskError: the name is not one of the nine GLUE tasks.
    """
    if isinstance(name, TaskSpec):
        return name
    if not isinstance(name, str):
        raise TaskError(
            f"task name must be a string, got {type(name).__name__} {name!r}; "
            f"choose one of: {', '.join(TASKS)}"
        )
    key = _ALIASES.get(_normalize_name(name))
    if key is None:
        raise TaskError(f"unknown GLUE task {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[key]


def parse_task_list(text: str | Sequence[str | TaskSpec]) -> tuple[TaskSpec, ...]:
    """Parse a list of task names such as ``'sst2,mrpc,rte'`` into task specs.

    ``text`` is either one comma-separated string or a sequence of names (each of which
    may itself be comma-separated, e.g. from ``argparse`` ``nargs='+'``). Spaces around
    names are ignored; the order is kept.

    Raises:
        TaskError: a name is unknown, a task is listed twice, or the list is empty.
    """
    items = [text] if isinstance(text, (str, TaskSpec)) else list(text)
    specs: list[TaskSpec] = []
    for item in items:
        parts = [item] if isinstance(item, TaskSpec) else str(item).split(",")
        for part in parts:
            if isinstance(part, str) and not part.strip():
                continue
            spec = get_task(part)
            if spec in specs:
                raise TaskError(
                    f"task {spec.name!r} is listed twice in {text!r}; list each task once"
                )
            specs.append(spec)
    if not specs:
        raise TaskError(
            f"the task list {text!r} names no task; give a comma-separated list "
            f"such as 'sst2,mrpc,rte' (choose from: {', '.join(TASKS)})"
        )
    return tuple(specs)
