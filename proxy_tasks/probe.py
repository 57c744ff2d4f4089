"""Score a frozen encoder on a GLUE task with a linear probe (``proxy.head = "probe"``).

:func:`probe_and_score` is the cheap, seedless alternative to :func:`proxy_tasks.finetune_and_score`:

1. the encoder is frozen (``eval()``, no gradients; it is not modified);
2. every train and dev example is encoded once (:func:`proxy_tasks.batching.encode_examples`) and run
   through the encoder in length-sorted batches;
3. the feature of a single-sentence example is the **concatenation of the final hidden state of [CLS]
   and the mean of the final hidden states over its real (non-padding) tokens**, ``2 * hidden_size``
   numbers.  A task-agnostically distilled student has no pre-trained pooler or [CLS] objective, so the
   [CLS] vector alone is a weak summary; the mean pool carries most of the signal and [CLS] adds
   what the first position learnt;
4. a sentence-pair example (``pairs = "apart"``, the default) is encoded as **two sequences, one per
   sentence**, each summarised by its masked mean ``u`` and ``v``, and its feature is SentEval's
   ``[u, v, |u - v|, u * v]`` (Conneau et al. 2017, the representation the literature uses for frozen
   sentence encoders), ``4 * hidden_size`` numbers.  A linear model on one joint ``[CLS] a [SEP] b [SEP]``
   sequence (``pairs = "joint"``, the fine-tuning input) cannot compare the two sentences: on MRPC the
   teacher's joint probe scored below the constant predictor (63.8 against 74.8);
5. features are standardised with the training set's mean and std, then a scikit-learn
   ``LogisticRegression`` (L2, lbfgs) is fitted — ``Ridge`` for the regression task STS-B.  Its strength
   is chosen by stratified ``folds``-fold cross-validation **on the training set** over ``c_grid``
   (``alpha_grid``), scored with the task's own metric; the dev set is never looked at.  A fixed ``c``
   (``alpha``) skips the search;
6. dev predictions are scored with the task's GLUE metrics (:func:`proxy_tasks.metrics.compute_metrics`).

The folds come from a fixed permutation (seed 0), so there is no free random number anywhere: the same encoder, data and thread count give the same score,
so a probe fitness has no fine-tuning seed (its only seed is the distillation's).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .batching import EncodedSplit, collate_batch, encode_examples
from .data import Example, TaskData
from .metrics import compute_metrics, task_score
from .registry import TaskError

PAIR_MODES = ("apart", "joint")

__all__ = ["PAIR_MODES", "ProbeSettings", "ProbeResult", "extract_features", "extract_features_many", "probe_and_score",
           "probe_and_score_many"]


@dataclass(frozen=True)
class ProbeSettings:
    """Settings of the linear probe.

    Attributes:
        max_seq_len: tokens per sequence after truncation (special tokens included); with ``pairs = "apart"``
            each sentence of a pair has its own ``max_seq_len`` tokens, so both are kept.
        batch_size: sequences per forward pass.
        c: inverse L2 strength of the logistic regression (classification); None = chosen by cross-validation
            on the training set over ``c_grid``.
        alpha: L2 strength of the ridge regression (regression); None = chosen over ``alpha_grid``.
        max_iter: lbfgs iterations.
        pairs: ``"apart"`` (each sentence encoded alone, features ``[u, v, |u-v|, u*v]``) or ``"joint"``
            (one ``[CLS] a [SEP] b [SEP]`` sequence, the fine-tuning input).
        folds: cross-validation folds of the regularisation search.
    """

    max_seq_len: int = 128
    batch_size: int = 128
    c: float | None = None
    alpha: float | None = None
    max_iter: int = 2000
    pairs: str = "apart"
    folds: int = 4
    c_grid: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)
    alpha_grid: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)

    def __post_init__(self) -> None:
        fixed = [v for v in (self.c, self.alpha) if v is not None]
        if (self.max_seq_len < 4 or self.batch_size < 1 or any(v <= 0 for v in fixed) or self.max_iter < 1
                or self.folds < 2 or not self.c_grid or not self.alpha_grid
                or any(v <= 0 for v in self.c_grid + self.alpha_grid)):
            raise TaskError(f"probe settings {self} are invalid; use max_seq_len >= 4, batch_size >= 1, "
                            "c and alpha > 0 (or None: cross-validated), max_iter >= 1, folds >= 2, positive grids")
        if self.pairs not in PAIR_MODES:
            raise TaskError(f"probe pairs must be one of {', '.join(PAIR_MODES)}, got {self.pairs!r}")


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of probing one task (the fields of :class:`proxy_tasks.TaskResult` and finer timings).

    ``train_seconds`` = tokenising + extracting the training features + fitting the probe;
    ``eval_seconds`` = tokenising + extracting the dev features + predicting + scoring.
    ``tokenize_seconds``, ``extract_seconds`` (encoder forward passes, train and dev) and
    ``fit_seconds`` split the same time by kind of work.  ``regularisation`` is the C (or ridge alpha) the
    probe was fitted with: the cross-validated choice, or the fixed setting.
    """

    task: str
    metrics: dict[str, float]
    score: float
    train_seconds: float
    eval_seconds: float
    num_train: int
    num_eval: int
    tokenize_seconds: float = 0.0
    extract_seconds: float = 0.0
    fit_seconds: float = 0.0
    regularisation: float = 0.0
    predictions: dict | None = None         # dev split -> the probe's predictions (class ids, or scores)


POOLS = ("cls_mean", "mean")


@torch.inference_mode()
def extract_features(encoder: nn.Module, split: EncodedSplit, *, batch_size: int = 128,
                     device: str | torch.device = "cpu", pool: str = "cls_mean") -> np.ndarray:
    """``(n, 2 * hidden)`` float64 features: [CLS] final hidden state ++ masked mean of the final hidden states
    (``pool = "cls_mean"``), or ``(n, hidden)``: the masked mean alone (``pool = "mean"``)."""
    return extract_features_many([encoder], split, batch_size=batch_size, device=device, pool=pool)[0]


def _pooled(out, attention_mask: torch.Tensor, pool: str = "cls_mean") -> torch.Tensor:
    """An encoder output's features: the [CLS] final hidden state ++ the masked mean of the final hidden states,
    or the masked mean alone."""
    hidden = (out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]).float()  # (B, T, H)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
    return mean if pool == "mean" else torch.cat([hidden[:, 0], mean], dim=-1)  # (B, H) or (B, 2H)


@torch.inference_mode()
def extract_features_many(encoders: list[nn.Module], split: EncodedSplit, *, batch_size: int = 128,
                          device: str | torch.device = "cpu", pool: str = "cls_mean") -> list[np.ndarray]:
    """:func:`extract_features` of K encoders of one config in one pass per batch: their parameters stacked
    (``torch.func.stack_module_state``) and the forward run under ``vmap``.  One array per encoder, equal to
    :func:`extract_features` up to float rounding."""
    import inspect

    from torch.func import functional_call, stack_module_state, vmap

    if pool not in POOLS:
        raise TaskError(f"probe pool must be one of {', '.join(POOLS)}, got {pool!r}")
    device = torch.device(device)
    accepted = set(inspect.signature(encoders[0].forward).parameters)
    modes = [e.training for e in encoders]
    for e in encoders:
        e.eval()
    if len(encoders) == 1:
        encoder = encoders[0].to(device)

        def batched(inputs):
            return _pooled(encoder(**inputs), inputs["attention_mask"], pool).unsqueeze(0)  # (1, B, F)
    else:
        params, buffers = stack_module_state([e.to(device) for e in encoders])        # each (K, ...)
        base = copy.deepcopy(encoders[0]).to("meta").eval()

        def features(p, b, inputs):
            return _pooled(functional_call(base, (p, b), (), inputs), inputs["attention_mask"], pool)  # (B, F)

        vmapped = vmap(features, in_dims=(0, 0, None))

        def batched(inputs):
            return vmapped(params, buffers, inputs)  # (K, B, F)
    lengths = np.array([len(ids) for ids in split.input_ids])
    by_length = np.argsort(-lengths, kind="stable")  # longest first: little padding per batch
    width = encoders[0].config.hidden_size * (1 if pool == "mean" else 2)
    out = np.empty((len(encoders), len(lengths), width), dtype=np.float64)
    try:
        for start in range(0, len(by_length), batch_size):
            indices = by_length[start:start + batch_size].tolist()
            inputs = collate_batch(split, indices, device, accepted)  # each (B, T)
            out[:, indices] = batched(inputs).cpu().numpy()  # (K, B, F)
    finally:
        for e, mode in zip(encoders, modes):
            e.train(mode)
    return list(out)


def _encode(tokenizer, examples, task, settings: ProbeSettings, vocab: int) -> list[EncodedSplit]:
    """The sequences of a split: one split (a single sentence, or a joint pair), or two (each sentence of a pair
    alone, ``pairs = "apart"``)."""
    if not (task.is_pair and settings.pairs == "apart"):
        return [encode_examples(tokenizer, examples, task, settings.max_seq_len, vocab)]
    single = dataclasses.replace(task, text_fields=task.text_fields[:1])
    firsts = [Example(text_a=e.text_a, text_b=None, label=e.label) for e in examples]
    seconds = [Example(text_a=e.text_b if e.text_b is not None else "", text_b=None, label=e.label) for e in examples]
    if any(e.text_b is None for e in examples):
        raise TaskError(f"an example of pair task {task.name} has no second text (text_b); "
                        "load the data with proxy_tasks.load_task")
    return [encode_examples(tokenizer, firsts, single, settings.max_seq_len, vocab),
            encode_examples(tokenizer, seconds, single, settings.max_seq_len, vocab)]


def _features(encoders: list[nn.Module], splits: list[EncodedSplit], settings: ProbeSettings,
              device) -> list[np.ndarray]:
    """Each encoder's feature matrix of a split: pooled features of one sequence per example, or SentEval's
    ``[u, v, |u - v|, u * v]`` of the two sentences encoded apart."""
    kw = dict(batch_size=settings.batch_size, device=device)
    if len(splits) == 1:
        return extract_features_many(encoders, splits[0], **kw)
    us = extract_features_many(encoders, splits[0], pool="mean", **kw)
    vs = extract_features_many(encoders, splits[1], pool="mean", **kw)
    return [np.concatenate([u, v, np.abs(u - v), u * v], axis=1) for u, v in zip(us, vs)]


def probe_and_score(encoder: nn.Module, tokenizer, data: TaskData, settings: ProbeSettings = ProbeSettings(), *,
                    device: str | torch.device = "cpu") -> ProbeResult:
    """Fit a linear probe on the frozen encoder's features of ``data.train``; score it on ``data.dev``.

    Raises:
        TaskError: an empty split, a single-class training set, a tokenizer/encoder mismatch.
    """
    return probe_and_score_many([encoder], tokenizer, data, settings, device=device)[0]


def probe_and_score_many(encoders: list[nn.Module], tokenizer, data: TaskData, settings: ProbeSettings = ProbeSettings(),
                         *, device: str | torch.device = "cpu") -> list[ProbeResult]:
    """:func:`probe_and_score` of K encoders of one config: the examples are tokenised once, the features of all K
    come from one batched pass per batch (:func:`extract_features_many`), and each encoder gets its own probe fit.
    Tokenising and extraction time is shared equally among the K results."""
    task = data.task
    if not data.train:
        raise TaskError(f"task {task.name} has no training examples; check the data folder or max_train")
    if not data.dev or any(not examples for examples in data.dev.values()):
        raise TaskError(f"task {task.name} has an empty dev split; check the data folder or max_eval")
    vocab = encoders[0].config.vocab_size
    t0 = time.perf_counter()
    train = _encode(tokenizer, data.train, task, settings, vocab)
    dev = {split: _encode(tokenizer, examples, task, settings, vocab) for split, examples in data.dev.items()}
    t_tok = time.perf_counter() - t0

    t0 = time.perf_counter()
    k = len(encoders)
    x_trains = _features(encoders, train, settings, device)
    x_devs = {split: _features(encoders, enc, settings, device) for split, enc in dev.items()}
    t_extract = (time.perf_counter() - t0) / k
    t_tok /= k
    results = []
    for i in range(k):
        x_train = x_trains[i]
        t0 = time.perf_counter()
        mean, std = x_train.mean(0), x_train.std(0)
        std[std < 1e-12] = 1.0
        model, strength = _fit(task, (x_train - mean) / std, train[0].labels, settings)
        predictions = {split: model.predict((x[i] - mean) / std) for split, x in x_devs.items()}
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        metrics = compute_metrics(task, predictions, {split: enc[0].labels for split, enc in dev.items()})
        t_score = time.perf_counter() - t0
        n_train, n_dev = len(data.train), sum(len(v) for v in data.dev.values())
        share = n_train / (n_train + n_dev)      # split tokenising / extraction time between train and eval by examples
        results.append(ProbeResult(task=task.name, metrics=metrics, score=task_score(metrics),
                                   train_seconds=share * (t_tok + t_extract) + t_fit,
                                   eval_seconds=(1 - share) * (t_tok + t_extract) + t_score,
                                   num_train=n_train, num_eval=data.num_eval,
                                   tokenize_seconds=t_tok, extract_seconds=t_extract, fit_seconds=t_fit,
                                   regularisation=float(strength), predictions=predictions))
    return results


def _fit(task, x: np.ndarray, y: np.ndarray, settings: ProbeSettings):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _fit_quietly(task, x, y, settings)


def _fit_quietly(task, x: np.ndarray, y: np.ndarray, settings: ProbeSettings):
    """The fitted linear model and its regularisation strength: the fixed one, or the best of the grid by
    stratified k-fold cross-validation on the training set (the task's own score; ties go to the stronger
    regularisation, the smaller C or the larger alpha).

    A fold that cannot be fitted (it is empty, it holds every example, or the examples outside it have a single
    class, e.g. the only member of a rare class is in it) is skipped for every strength alike, and the score is
    the task's score of the held-out predictions of the folds that were fitted: a skipped fold's examples are not
    scored (there is no prediction to score).  Where no fold can be fitted, the grid's strongest regularisation is
    kept."""
    fixed = settings.alpha if task.is_regression else settings.c
    if not task.is_regression and len(np.unique(y)) < 2:
        raise TaskError(f"task {task.name}: the probe's training set has a single class; raise max_train")
    if fixed is not None:
        return _model(task, fixed, settings).fit(x, y), fixed
    grid = sorted(settings.alpha_grid, reverse=True) if task.is_regression else sorted(settings.c_grid)
    folds = _folds(y, settings.folds, task.is_regression)
    split = task.dev_splits[0]
    fitted = [k for k in range(settings.folds) if _fold_can_be_fitted(folds == k, y, task.is_regression)]
    scored = np.isin(folds, fitted)                                 # the examples that get a held-out prediction
    one_split = dataclasses.replace(task, metrics=tuple(dict.fromkeys(m.partition("_")[0] for m in task.metrics)),
                                    dev_splits=(split,))            # mnli's two dev metrics -> one on the folds
    best, best_score = grid[0], -np.inf
    for strength in grid if fitted else ():
        predictions = np.full(len(y), np.nan)
        for k in fitted:
            held = folds == k
            predictions[held] = _model(task, strength, settings).fit(x[~held], y[~held]).predict(x[held])
        score = task_score(compute_metrics(one_split, {split: predictions[scored]}, {split: y[scored]}))
        if score > best_score + 1e-9:
            best, best_score = strength, score
    return _model(task, best, settings).fit(x, y), best


def _fold_can_be_fitted(held: np.ndarray, y: np.ndarray, regression: bool) -> bool:
    """A fold has examples to predict and a training part to fit on (two classes or more, for a classifier)."""
    return bool(held.any() and not held.all() and (regression or len(np.unique(y[~held])) >= 2))


def _model(task, strength: float, settings: ProbeSettings):
    from sklearn.linear_model import LogisticRegression, Ridge

    if task.is_regression:
        return Ridge(alpha=strength)
    return LogisticRegression(C=strength, max_iter=settings.max_iter)


def _folds(y: np.ndarray, k: int, regression: bool) -> np.ndarray:
    """Fold id of each training example: stratified by class (by sorted target for regression), from a fixed
    permutation so the same data always gives the same folds."""
    order = np.random.default_rng(0).permutation(len(y))
    folds = np.empty(len(y), dtype=np.int64)
    if regression:
        ranked = order[np.argsort(y[order], kind="stable")]
        folds[ranked] = np.arange(len(y)) % k
        return folds
    for label in np.unique(y):
        members = order[y[order] == label]
        folds[members] = np.arange(len(members)) % k
    return folds
