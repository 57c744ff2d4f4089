"""Score a frozen encoder on a GLUE task with a linear probe (``proxy.head = "probe"``).

:func:`probe_and_score` is the cheap, seedless alternative to :func:`proxy_tasks.finetune_and_score`:

1. the encoder is frozen (``eval()``, no gradients; it is not modified);
2. every train and dev example is encoded once (:func:`proxy_tasks.batching.encode_examples`, a
   pair task as one ``[CLS] a [SEP] b [SEP]`` sequence, as in fine-tuning) and run through the
   encoder in length-sorted batches;
3. the feature of an example is the **concatenation of the final hidden state of [CLS] and the mean
   of the final hidden states over its real (non-padding) tokens**, ``2 * hidden_size`` numbers.
   A task-agnostically distilled student has no pre-trained pooler or [CLS] objective, so the
   [CLS] vector alone is a weak summary; the mean pool carries most of the signal and [CLS] adds
   what the first position learnt.  Both are kept so that neither choice hides a mapping's effect;
4. features are standardised with the training set's mean and std, then a scikit-learn
   ``LogisticRegression`` (L2, ``C = 1``, lbfgs) is fitted — ``Ridge`` (``alpha = 1``) for the
   regression task STS-B;
5. dev predictions are scored with the task's GLUE metrics (:func:`proxy_tasks.metrics.compute_metrics`).

There is no random number anywhere: the same encoder, data and thread count give the same score,
so a probe fitness has no fine-tuning seed (its only seed is the distillation's).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .batching import EncodedSplit, collate_batch, encode_examples
from .data import TaskData
from .metrics import compute_metrics, task_score
from .registry import TaskError

__all__ = ["ProbeSettings", "ProbeResult", "extract_features", "extract_features_many", "probe_and_score",
           "probe_and_score_many"]


@dataclass(frozen=True)
class ProbeSettings:
    """Settings of the linear probe.

    Attributes:
        max_seq_len: tokens per example after truncation (special tokens included).
        batch_size: examples per forward pass.
        c: inverse L2 strength of the logistic regression (classification).
        alpha: L2 strength of the ridge regression (regression).
        max_iter: lbfgs iterations.
    """

    max_seq_len: int = 128
    batch_size: int = 128
    c: float = 1.0
    alpha: float = 1.0
    max_iter: int = 2000

    def __post_init__(self) -> None:
        if self.max_seq_len < 4 or self.batch_size < 1 or self.c <= 0 or self.alpha <= 0 or self.max_iter < 1:
            raise TaskError(f"probe settings {self} are invalid; use max_seq_len >= 4, batch_size >= 1, "
                            "c > 0, alpha > 0, max_iter >= 1")


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of probing one task (the fields of :class:`proxy_tasks.TaskResult` and finer timings).

    ``train_seconds`` = tokenising + extracting the training features + fitting the probe;
    ``eval_seconds`` = tokenising + extracting the dev features + predicting + scoring.
    ``tokenize_seconds``, ``extract_seconds`` (encoder forward passes, train and dev) and
    ``fit_seconds`` split the same time by kind of work.
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


@torch.inference_mode()
def extract_features(encoder: nn.Module, split: EncodedSplit, *, batch_size: int = 128,
                     device: str | torch.device = "cpu") -> np.ndarray:
    """``(n, 2 * hidden)`` float64 features: [CLS] final hidden state ++ masked mean of the final hidden states."""
    import inspect

    device = torch.device(device)
    accepted = set(inspect.signature(encoder.forward).parameters)
    was_training = encoder.training
    encoder.eval()
    lengths = np.array([len(ids) for ids in split.input_ids])
    by_length = np.argsort(-lengths, kind="stable")  # longest first: little padding per batch
    width = encoder.config.hidden_size
    features = np.empty((len(lengths), 2 * width), dtype=np.float64)
    try:
        for start in range(0, len(by_length), batch_size):
            indices = by_length[start:start + batch_size].tolist()
            inputs = collate_batch(split, indices, device, accepted)  # each (B, T)
            features[indices] = _pooled(encoder(**inputs), inputs["attention_mask"]).cpu().numpy()  # (B, 2H)
    finally:
        encoder.train(was_training)
    return features


def _pooled(out, attention_mask: torch.Tensor) -> torch.Tensor:
    """An encoder output's features: the [CLS] final hidden state ++ the masked mean of the final hidden states."""
    hidden = (out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]).float()  # (B, T, H)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
    return torch.cat([hidden[:, 0], mean], dim=-1)  # (B, 2H)


@torch.inference_mode()
def extract_features_many(encoders: list[nn.Module], split: EncodedSplit, *, batch_size: int = 128,
                          device: str | torch.device = "cpu") -> list[np.ndarray]:
    """:func:`extract_features` of K encoders of one config in one pass per batch: their parameters stacked
    (``torch.func.stack_module_state``) and the forward run under ``vmap``.  One array per encoder, equal to
    :func:`extract_features` up to float rounding."""
    import inspect

    from torch.func import functional_call, stack_module_state, vmap

    if len(encoders) == 1:
        return [extract_features(encoders[0], split, batch_size=batch_size, device=device)]
    device = torch.device(device)
    accepted = set(inspect.signature(encoders[0].forward).parameters)
    modes = [e.training for e in encoders]
    for e in encoders:
        e.eval()
    params, buffers = stack_module_state([e.to(device) for e in encoders])        # each (K, ...)
    base = copy.deepcopy(encoders[0]).to("meta").eval()

    def features(p, b, inputs):
        return _pooled(functional_call(base, (p, b), (), inputs), inputs["attention_mask"])  # (B, 2H)

    batched = vmap(features, in_dims=(0, 0, None))
    lengths = np.array([len(ids) for ids in split.input_ids])
    by_length = np.argsort(-lengths, kind="stable")
    width = encoders[0].config.hidden_size
    out = np.empty((len(encoders), len(lengths), 2 * width), dtype=np.float64)
    try:
        for start in range(0, len(by_length), batch_size):
            indices = by_length[start:start + batch_size].tolist()
            inputs = collate_batch(split, indices, device, accepted)  # each (B, T)
            out[:, indices] = batched(params, buffers, inputs).cpu().numpy()  # (K, B, 2H)
    finally:
        for e, mode in zip(encoders, modes):
            e.train(mode)
    return list(out)


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
    train = encode_examples(tokenizer, data.train, task, settings.max_seq_len, vocab)
    dev = {split: encode_examples(tokenizer, examples, task, settings.max_seq_len, vocab)
           for split, examples in data.dev.items()}
    t_tok = time.perf_counter() - t0

    t0 = time.perf_counter()
    k = len(encoders)
    x_trains = extract_features_many(encoders, train, batch_size=settings.batch_size, device=device)
    x_devs = {split: extract_features_many(encoders, enc, batch_size=settings.batch_size, device=device)
              for split, enc in dev.items()}
    t_extract = (time.perf_counter() - t0) / k
    t_tok /= k
    results = []
    for i in range(k):
        x_train = x_trains[i]
        t0 = time.perf_counter()
        mean, std = x_train.mean(0), x_train.std(0)
        std[std < 1e-12] = 1.0
        model = _fit(task.is_regression, (x_train - mean) / std, train.labels, settings, task.name)
        predictions = {split: model.predict((x[i] - mean) / std) for split, x in x_devs.items()}
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        metrics = compute_metrics(task, predictions, {split: enc.labels for split, enc in dev.items()})
        t_score = time.perf_counter() - t0
        n_train, n_dev = len(data.train), sum(len(v) for v in data.dev.values())
        share = n_train / (n_train + n_dev)      # split tokenising / extraction time between train and eval by examples
        results.append(ProbeResult(task=task.name, metrics=metrics, score=task_score(metrics),
                                   train_seconds=share * (t_tok + t_extract) + t_fit,
                                   eval_seconds=(1 - share) * (t_tok + t_extract) + t_score,
                                   num_train=n_train, num_eval=data.num_eval,
                                   tokenize_seconds=t_tok, extract_seconds=t_extract, fit_seconds=t_fit))
    return results


def _fit(is_regression: bool, x: np.ndarray, y: np.ndarray, settings: ProbeSettings, name: str):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge

    if is_regression:
        return Ridge(alpha=settings.alpha).fit(x, y)
    if len(np.unique(y)) < 2:
        raise TaskError(f"task {name}: the probe's training set has a single class; raise max_train")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=settings.c, max_iter=settings.max_iter).fit(x, y)
