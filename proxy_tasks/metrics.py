"""GLUE metrics, in percent, with numpy only.

Every metric returns a python ``float`` in percent: accuracy and F1 in [0, 100], the
correlations (MCC, Pearson, Spearman) in [-100, 100]. Degenerate inputs give 0.0
rather than NaN, so a fitness value is always a number:

* :func:`f1` with no predicted and no true positives (tp + fp + fn == 0) is 0.0
  (as ``sklearn`` with ``zero_division=0``);
* :func:`matthews_corrcoef` with a zero denominator (only one class predicted or
  present) is 0.0 (as ``sklearn``);
* :func:`pearson` / :func:`spearman` with a constant input are 0.0.

:func:`compute_metrics` maps a task's dev predictions to its named metrics, and
:func:`task_score` averages them into one number per task (GLUE style).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .registry import TaskError, TaskSpec

__all__ = [
    "accuracy",
    "compute_metrics",
    "f1",
    "matthews_corrcoef",
    "pearson",
    "spearman",
    "split_metrics",
    "task_score",
]


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Percentage of predictions equal to the labels."""
    pred, gold = _as_pair(predictions, labels)
    return float(np.mean(pred == gold) * 100.0)


def f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Binary F1 (percent) of the positive class 1; 0.0 if there is no positive at all."""
    pred, gold = _as_pair(predictions, labels)
    pred_pos, gold_pos = pred == 1, gold == 1
    tp = int(np.sum(pred_pos & gold_pos))
    fp = int(np.sum(pred_pos & ~gold_pos))
    fn = int(np.sum(~pred_pos & gold_pos))
    if tp + fp + fn == 0:
        return 0.0
    return float(200.0 * tp / (2 * tp + fp + fn))


def matthews_corrcoef(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Matthews correlation coefficient (percent), multi-class form (Gorodkin 2004).

    Equal to the usual binary MCC for two classes; 0.0 when the denominator is zero.
    """
    pred, gold = _as_pair(predictions, labels)
    classes, encoded = np.unique(np.concatenate([gold, pred]), return_inverse=True)
    gold_ids, pred_ids = encoded[: len(gold)], encoded[len(gold) :]
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.float64)  # rows: gold, columns: predicted
    np.add.at(confusion, (gold_ids, pred_ids), 1.0)
    true_counts = confusion.sum(axis=1)
    pred_counts = confusion.sum(axis=0)
    correct = np.trace(confusion)
    total = confusion.sum()
    numerator = correct * total - float(np.dot(true_counts, pred_counts))
    denominator = (total**2 - float(np.dot(pred_counts, pred_counts))) * (
        total**2 - float(np.dot(true_counts, true_counts))
    )
    if denominator <= 0.0:
        return 0.0
    return float(np.clip(numerator / np.sqrt(denominator), -1.0, 1.0) * 100.0)


def pearson(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Pearson correlation (percent); 0.0 if either input is constant."""
    x, y = _as_pair(predictions, labels, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    denominator = float(np.sqrt(np.dot(dx, dx) * np.dot(dy, dy)))
    if denominator == 0.0:
        return 0.0
    return float(np.clip(np.dot(dx, dy) / denominator, -1.0, 1.0) * 100.0)


def spearman(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Spearman rank correlation (percent): Pearson of the ranks, ties get average ranks."""
    x, y = _as_pair(predictions, labels, dtype=np.float64)
    return pearson(_average_ranks(x), _average_ranks(y))


_METRIC_FUNCTIONS = {
    "accuracy": accuracy,
    "f1": f1,
    "mcc": matthews_corrcoef,
    "pearson": pearson,
    "spearman": spearman,
}


def compute_metrics(
    task: TaskSpec,
    predictions: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
) -> dict[str, float]:
    """Compute the task's metrics (``task.metrics``) from dev-split predictions.

    Args:
        task: the task.
        predictions: dev split name -> predictions. For classification either class ids
            of shape ``(n,)`` or scores/logits of shape ``(n, num_labels)`` (argmax is
            taken); for regression values of shape ``(n,)`` or ``(n, 1)``.
        labels: dev split name -> gold class ids or scores, shape ``(n,)``.

    A metric name ``<base>_<suffix>`` (mnli's ``accuracy_matched``) is computed on split
    ``dev_<suffix>``; a plain name on the task's only dev split.

    Returns:
        metric name -> value in percent, in ``task.metrics`` order.

    Raises:
        TaskError: a needed split is missing, or shapes do not match.
    """
    results: dict[str, float] = {}
    for name in task.metrics:
        base, _, suffix = name.partition("_")
        split = f"dev_{suffix}" if suffix else task.dev_splits[0]
        if split not in predictions or split not in labels:
            raise TaskError(
                f"metric {name!r} of task {task.name} needs predictions and labels for "
                f"split {split!r}; pass both dicts keyed by {', '.join(task.dev_splits)}"
            )
        pred = _to_predictions(task, np.asarray(predictions[split]))
        results[name] = _METRIC_FUNCTIONS[base](pred, np.asarray(labels[split]))
    return results


def split_metrics(task: TaskSpec, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The task's metrics on one split that is not an official dev split (a held-out part of the training file):
    each distinct base metric once (mnli's ``accuracy_matched`` / ``accuracy_mismatched`` -> ``accuracy``)."""
    pred = _to_predictions(task, np.asarray(predictions))
    bases = dict.fromkeys(name.partition("_")[0] for name in task.metrics)
    return {base: _METRIC_FUNCTIONS[base](pred, np.asarray(labels)) for base in bases}


def task_score(metrics: Mapping[str, float]) -> float:
    """Return one score per task: the mean of its metric values (GLUE style).

    Raises:
        TaskError: ``metrics`` is empty.
    """
    if not metrics:
        raise TaskError("task_score got no metrics; pass the dict returned by compute_metrics")
    return float(np.mean([float(value) for value in metrics.values()]))


def _to_predictions(task: TaskSpec, values: np.ndarray) -> np.ndarray:
    """Turn model outputs into 1-D predictions: argmax of logits, or squeezed scores."""
    if values.ndim == 2:
        if task.is_regression and values.shape[1] == 1:
            return values[:, 0]
        if not task.is_regression:
            return values.argmax(axis=1)
    return values


def _as_pair(
    predictions: np.ndarray, labels: np.ndarray, dtype: type | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return both inputs as equal-length, non-empty 1-D arrays (finite if float)."""
    pred = np.asarray(predictions, dtype=dtype)
    gold = np.asarray(labels, dtype=dtype)
    if pred.ndim != 1 or gold.ndim != 1 or pred.shape != gold.shape:
        raise TaskError(
            f"predictions {pred.shape} and labels {gold.shape} must be 1-D arrays of "
            f"the same length; pass one value per example"
        )
    if pred.size == 0:
        raise TaskError("cannot compute a metric on zero examples; pass a non-empty dev split")
    for name, array in (("predictions", pred), ("labels", gold)):
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise TaskError(f"{name} contain NaN or infinite values; check the model outputs")
    return pred, gold


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Return 1-based ranks of ``values``; tied values share their average rank."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts  # 0-based position of each distinct value
    average = starts + (counts + 1) / 2.0
    return average[inverse.ravel()]
