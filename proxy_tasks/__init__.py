"""GLUE proxy tasks for scoring distilled BERT students.

* :mod:`proxy_tasks.registry` - the nine GLUE tasks (:class:`TaskSpec`, :func:`get_task`).
* :mod:`proxy_tasks.data` - load a task from a local GLUE download or the hub.
* :mod:`proxy_tasks.metrics` - GLUE metrics in percent, numpy only.
* :mod:`proxy_tasks.finetune` - fine-tune a copy of an encoder and score it.

Every user-caused error raises :class:`TaskError` (a ``ValueError``).  Imports nothing of ``layermap`` (it sits below
every layer of it, docs/architecture.md).  The fine-tuning names load on first use (they need torch), so importing
the package, or :mod:`proxy_tasks.hub` below it, stays light (``layermap --help`` imports no torch).
"""

from .data import Example, TaskData, data_fingerprint, load_task
from .metrics import (
    accuracy,
    compute_metrics,
    f1,
    matthews_corrcoef,
    pearson,
    spearman,
    task_score,
)
from .registry import TASKS, TaskError, TaskSpec, get_task, parse_task_list

_FINETUNE = ("FinetuneSettings", "TaskResult", "finetune_and_score", "finetune_tasks")


def __getattr__(name: str):
    """The fine-tuning names, imported from :mod:`proxy_tasks.finetune` on first use (it imports torch)."""
    if name in _FINETUNE:
        from . import finetune

        return getattr(finetune, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "TASKS",
    "Example",
    "FinetuneSettings",
    "TaskData",
    "TaskError",
    "TaskResult",
    "TaskSpec",
    "accuracy",
    "compute_metrics",
    "data_fingerprint",
    "f1",
    "finetune_and_score",
    "finetune_tasks",
    "get_task",
    "load_task",
    "matthews_corrcoef",
    "parse_task_list",
    "pearson",
    "spearman",
    "task_score",
]
