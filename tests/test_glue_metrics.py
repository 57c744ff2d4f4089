"""Tests of proxy_tasks.metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from proxy_tasks import (
    TASKS,
    TaskError,
    accuracy,
    compute_metrics,
    f1,
    matthews_corrcoef,
    pearson,
    spearman,
    task_score,
)


def test_accuracy_percent():
    assert accuracy(np.array([1, 0, 1, 1]), np.array([1, 1, 1, 0])) == 50.0
    assert isinstance(accuracy(np.array([1]), np.array([1])), float)


def test_f1_hand_computed():
    # tp=1 fp=1 fn=1 -> 2/4
    assert f1(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])) == pytest.approx(50.0)
    # tp=2 fp=1 fn=0 -> 4/5
    assert f1(np.array([1, 1, 1, 0]), np.array([1, 1, 0, 0])) == pytest.approx(80.0)


def test_f1_without_any_positive_is_zero():
    assert f1(np.array([0, 0, 0]), np.array([0, 0, 0])) == 0.0
    # true positives exist but none predicted -> 0 as well
    assert f1(np.array([0, 0]), np.array([1, 0])) == 0.0


def test_mcc_hand_computed():
    # tp=2 fp=1 tn=2 fn=0 -> (2*2 - 1*0) / sqrt(3*2*3*2) = 4/6
    value = matthews_corrcoef(np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 0, 1]))
    assert value == pytest.approx(400.0 / 6.0)
    assert matthews_corrcoef(np.array([0, 1, 1]), np.array([0, 1, 1])) == pytest.approx(100.0)
    assert matthews_corrcoef(np.array([1, 0, 0]), np.array([0, 1, 1])) == pytest.approx(-100.0)


def test_mcc_one_class_is_zero():
    assert matthews_corrcoef(np.array([1, 1, 1]), np.array([1, 1, 1])) == 0.0
    assert matthews_corrcoef(np.array([1, 1, 1, 1]), np.array([0, 1, 0, 1])) == 0.0


def test_pearson_hand_computed_and_constant():
    # dx=[-1,0,1], dy=[-7/3,-1/3,8/3]: r = 5 / sqrt(2 * 114/9)
    expected = 5.0 / math.sqrt(2.0 * 114.0 / 9.0) * 100.0
    assert pearson(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0])) == pytest.approx(expected)
    assert pearson(np.array([2.0, 2.0, 2.0]), np.array([1.0, 2.0, 3.0])) == 0.0
    assert pearson(np.array([1.0, 2.0, 3.0]), np.array([5.0, 5.0, 5.0])) == 0.0


def test_spearman_with_ties_uses_average_ranks():
    # ranks x=[1,2.5,2.5,4], y=[1,3,2,4] -> 4.5 / sqrt(4.5 * 5)
    value = spearman(np.array([1.0, 2.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0, 4.0]))
    assert value == pytest.approx(4.5 / math.sqrt(22.5) * 100.0)
    assert spearman(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 8.0, 27.0, 1000.0])) == pytest.approx(100.0)
    assert spearman(np.array([3.0, 3.0, 3.0]), np.array([1.0, 2.0, 3.0])) == 0.0


def test_metric_input_errors():
    with pytest.raises(TaskError, match="same length"):
        accuracy(np.array([1, 0]), np.array([1]))
    with pytest.raises(TaskError, match="zero examples"):
        accuracy(np.array([]), np.array([]))
    with pytest.raises(TaskError, match="NaN"):
        pearson(np.array([1.0, np.nan]), np.array([1.0, 2.0]))


def test_compute_metrics_mrpc_accepts_logits():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])  # argmax 1,0,1,0
    labels = np.array([1, 0, 0, 0])
    metrics = compute_metrics(TASKS["mrpc"], {"dev": logits}, {"dev": labels})
    assert list(metrics) == ["accuracy", "f1"]
    assert metrics["accuracy"] == pytest.approx(75.0)
    assert metrics["f1"] == pytest.approx(200.0 / 3.0)  # tp=1 fp=1 fn=0
    assert task_score(metrics) == pytest.approx((75.0 + 200.0 / 3.0) / 2)


def test_compute_metrics_mnli_uses_matching_splits():
    predictions = {"dev_matched": np.array([0, 1, 2, 2]), "dev_mismatched": np.array([2, 2])}
    labels = {"dev_matched": np.array([0, 1, 2, 0]), "dev_mismatched": np.array([2, 0])}
    metrics = compute_metrics(TASKS["mnli"], predictions, labels)
    assert metrics == {"accuracy_matched": 75.0, "accuracy_mismatched": 50.0}
    with pytest.raises(TaskError, match="dev_mismatched"):
        compute_metrics(TASKS["mnli"], {"dev_matched": predictions["dev_matched"]}, labels)


def test_compute_metrics_stsb_and_cola():
    stsb = compute_metrics(
        TASKS["stsb"], {"dev": np.array([[1.0], [2.0], [3.0]])}, {"dev": np.array([2.0, 4.0, 7.0])}
    )
    assert list(stsb) == ["pearson", "spearman"]
    assert stsb["spearman"] == pytest.approx(100.0)
    cola = compute_metrics(TASKS["cola"], {"dev": np.array([1, 1, 1])}, {"dev": np.array([0, 1, 1])})
    assert cola == {"mcc": 0.0}


def test_task_score_requires_metrics():
    assert task_score({"mcc": 40.0}) == 40.0
    with pytest.raises(TaskError):
        task_score({})
