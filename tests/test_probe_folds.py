"""The probe's cross-validation of C scores only the examples a fitted fold predicted (proxy_tasks.probe._fit_quietly)."""

from __future__ import annotations

import numpy as np

import proxy_tasks.probe as probe
from proxy_tasks import get_task
from proxy_tasks.metrics import compute_metrics, task_score


def _rare_class_data():
    """24 examples, one of class 1: it lands in fold 0, whose training part is then all class 0 (a skipped fold)."""
    rng = np.random.default_rng(3)
    y = np.zeros(24, dtype=np.int64)
    y[5] = 1
    x = rng.normal(size=(24, 6)) + y[:, None]
    return x, y


def test_a_skipped_fold_leaves_no_unset_prediction_in_the_cross_validation_score(monkeypatch):
    task = get_task("sst2")
    x, y = _rare_class_data()
    settings = probe.ProbeSettings(folds=4, c_grid=(0.01, 1.0))
    folds = probe._folds(y, settings.folds, False)
    skipped = folds == folds[5]
    assert len(np.unique(y[~skipped])) == 1                      # the fold of the rare example cannot be fitted
    seen = []
    real = probe.compute_metrics

    def spy(task_, predictions, labels):
        seen.append((dict(predictions), dict(labels)))
        return real(task_, predictions, labels)

    monkeypatch.setattr(probe, "compute_metrics", spy)
    _, chosen = probe._fit_quietly(task, x, y, settings)
    assert len(seen) == len(settings.c_grid)
    for predictions, labels in seen:
        (pred,), (gold,) = predictions.values(), labels.values()
        assert len(pred) == len(gold) == int((~skipped).sum())    # the skipped fold's examples are not scored
        assert np.isin(pred, (0, 1)).all()                        # every scored value is a class the probe predicted
    by_hand = {}
    for c in settings.c_grid:
        pred = np.concatenate([probe._model(task, c, settings).fit(x[folds != k], y[folds != k]).predict(x[folds == k])
                               for k in range(settings.folds) if k != folds[5]])
        gold = np.concatenate([y[folds == k] for k in range(settings.folds) if k != folds[5]])
        split = task.dev_splits[0]
        by_hand[c] = task_score(compute_metrics(task, {split: pred}, {split: gold}))
    assert chosen == max(settings.c_grid, key=lambda c: (by_hand[c], -c))   # ties go to the smaller C


def test_no_fold_that_can_be_fitted_keeps_the_strongest_regularisation():
    task = get_task("sst2")
    x = np.random.default_rng(0).normal(size=(2, 4))
    y = np.array([0, 1])
    settings = probe.ProbeSettings(folds=4, c_grid=(0.01, 0.1, 1.0))    # both examples in fold 0, the others empty
    model, chosen = probe._fit_quietly(task, x, y, settings)
    assert chosen == 0.01 and set(model.classes_) == {0, 1}
