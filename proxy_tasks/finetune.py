"""Fine-tune a copy of an encoder on a GLUE task and score it on the dev splits.

:func:`finetune_and_score` is the proxy-task fitness: it deep-copies the encoder (the
caller's model is never modified), puts a classification/regression head on the final
hidden state of the first token ([CLS]), trains with AdamW and a linear warm-up/decay
schedule, and reports the task's GLUE metrics (in percent) on every dev split.

Determinism: the head initialisation, dropout and the shuffling of the training set
are seeded from ``settings.seed`` (``torch.manual_seed`` plus a dedicated
``torch.Generator``), so the same encoder, tokenizer, data and settings give
bit-identical results on CPU with the same number of threads. The global torch RNG of
the caller is saved and restored (``torch.random.fork_rng``).

Speed: every split is tokenized once up front; each batch is padded only to its own
longest sequence. Dev batches are formed from length-sorted examples.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .batching import EncodedSplit, collate_batch, encode_examples
from .data import TaskData
from .metrics import compute_metrics, split_metrics, task_score
from .optim import linear_warmup_decay, param_groups, warmup_steps
from .registry import TaskError

POOLINGS = ("cls", "mean")

__all__ = ["POOLINGS", "FinetuneSettings", "TaskResult", "finetune_and_score", "finetune_tasks"]


def _is_int(value) -> bool:
    """True for a real integer (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    """True for a finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class FinetuneSettings:
    """Hyper-parameters of one fine-tuning run.

    Attributes:
        epochs: passes over the training set; fractions allowed (the step count is
            ``ceil(epochs * ceil(num_train / batch_size))``).
        batch_size: training examples per step.
        learning_rate: peak AdamW learning rate (reached after warm-up).
        weight_decay: AdamW weight decay on matrices/embeddings (not on biases or
            LayerNorm, i.e. not on any 1-D parameter).
        warmup_ratio: fraction of the steps with a linearly rising learning rate; the
            rate then decays linearly towards 0.
        max_seq_len: tokens per example after truncation (special tokens included).
        max_grad_norm: gradient-norm clipping threshold; 0 disables clipping.
        dropout: dropout before the head's linear layer (the encoder keeps its own
            configured dropout).
        eval_batch_size: examples per evaluation batch.
        seed: seed of the head initialisation, dropout and shuffling.
        pooling: what the head reads: ``'cls'`` (the first token's final hidden state, BERT's
            convention) or ``'mean'`` (the mean of the final hidden states over the real tokens:
            how sentence encoders such as MiniLM were trained, and what the frozen probe reads; with
            it, students that start from teacher layers fine-tune at the learning rates that suit
            them instead of staying at chance).
    """

    epochs: float = 3.0
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_seq_len: int = 128
    max_grad_norm: float = 1.0
    dropout: float = 0.1
    eval_batch_size: int = 128
    seed: int = 0
    pooling: str = "cls"

    def __post_init__(self) -> None:
        """Reject settings that cannot work, with a TaskError naming the field."""
        num = _is_number
        checks = (
            ("epochs", num(self.epochs) and self.epochs > 0, "a positive number such as 3"),
            ("batch_size", _is_int(self.batch_size) and self.batch_size >= 1, "a positive integer"),
            ("learning_rate", num(self.learning_rate) and self.learning_rate > 0, "a positive number such as 1e-4"),
            ("weight_decay", num(self.weight_decay) and self.weight_decay >= 0, "a number >= 0"),
            ("warmup_ratio", num(self.warmup_ratio) and 0 <= self.warmup_ratio <= 1, "a number in [0, 1]"),
            ("max_seq_len", _is_int(self.max_seq_len) and self.max_seq_len >= 4, "an integer >= 4"),
            ("max_grad_norm", num(self.max_grad_norm) and self.max_grad_norm >= 0, "a number >= 0 (0 disables clipping)"),
            ("dropout", num(self.dropout) and 0 <= self.dropout < 1, "a number in [0, 1)"),
            ("eval_batch_size", _is_int(self.eval_batch_size) and self.eval_batch_size >= 1, "a positive integer"),
            ("seed", _is_int(self.seed) and self.seed >= 0, "a non-negative integer"),
            ("pooling", self.pooling in POOLINGS, "'cls' or 'mean'"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise TaskError(f"fine-tuning setting {name}={getattr(self, name)!r} is invalid; use {expected}")


@dataclass(frozen=True)
class TaskResult:
    """Outcome of fine-tuning on one task.

    Attributes:
        task: task name, e.g. ``'sst2'``.
        metrics: metric name -> value in percent (see :func:`proxy_tasks.metrics.compute_metrics`).
        score: mean of ``metrics`` (:func:`proxy_tasks.metrics.task_score`).
        train_seconds: wall time of tokenizing the training set and training.
        eval_seconds: wall time of tokenizing and evaluating the dev splits.
        num_train: training examples used.
        num_eval: dev examples evaluated, summed over the dev splits.
        outputs: with ``keep_outputs``, dev split -> the model's outputs on it, in example
            order: class probabilities ``(N, C)`` for classification, scores ``(N,)`` for
            regression (what loyalty to a teacher is measured on); else None.  Held-out splits
            are kept under their own names (``'score'``, ``'select'``).
        held_out: held-out split (``data.held_out``) -> its metrics in percent; empty without.
    """

    task: str
    metrics: dict[str, float]
    score: float
    train_seconds: float
    eval_seconds: float
    num_train: int
    num_eval: int
    outputs: dict[str, np.ndarray] | None = None
    held_out: dict[str, dict[str, float]] = field(default_factory=dict)

    def held_out_score(self, split: str) -> float | None:
        """The mean of ``split``'s metrics (GLUE style), or None when it was not scored."""
        metrics = self.held_out.get(split)
        return task_score(metrics) if metrics else None


class _SequenceModel(nn.Module):
    """An encoder plus dropout and a linear head on the first token's final hidden state."""

    def __init__(self, encoder: nn.Module, num_outputs: int, dropout: float, pooling: str = "cls") -> None:
        super().__init__()
        config = encoder.config
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(config.hidden_size, num_outputs)
        nn.init.normal_(self.head.weight, std=getattr(config, "initializer_range", 0.02))
        nn.init.zeros_(self.head.bias)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return the head outputs ``(B, num_outputs)`` for a padded batch."""
        outputs = self.encoder(**inputs)
        hidden = outputs.last_hidden_state if hasattr(outputs, "last_hidden_state") else outputs[0]  # (B, T, H)
        if self.pooling == "mean":
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # (B, H)
        else:
            pooled = hidden[:, 0]  # (B, H): the first token
        return self.head(self.dropout(pooled))  # (B, num_outputs)


def finetune_and_score(
    encoder: nn.Module,
    tokenizer,
    data: TaskData,
    settings: FinetuneSettings = FinetuneSettings(),
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
    keep_outputs: bool = False,
) -> TaskResult:
    """Fine-tune a deep copy of ``encoder`` on ``data.train`` and score it on ``data.dev``.

    Args:
        encoder: a bare encoder such as ``transformers.BertModel`` whose output has
            ``last_hidden_state``; it is not modified (a copy is trained, with every
            parameter trainable).
        tokenizer: the encoder's Hugging Face tokenizer.
        data: the task's examples (:func:`proxy_tasks.data.load_task`).
        settings: hyper-parameters.
        device: where to train, e.g. ``'cpu'`` or ``'cuda'``.
        progress: show a tqdm bar with the training loss.
        keep_outputs: also return the dev outputs (probabilities or scores) in ``outputs``.

    Raises:
        TaskError: empty train or dev split, bad settings, a tokenizer/encoder mismatch.
    """
    task = data.task
    if not data.train:
        raise TaskError(f"task {task.name} has no training examples; check the data folder or max_train")
    if not data.dev or any(not examples for examples in data.dev.values()):
        raise TaskError(f"task {task.name} has an empty dev split; check the data folder or max_eval")
    device = torch.device(device)
    _check_encoder(encoder, settings)
    accepted = set(inspect.signature(encoder.forward).parameters)
    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(settings.seed)
        started = time.perf_counter()
        train = encode_examples(tokenizer, data.train, task, settings.max_seq_len, encoder.config.vocab_size)
        model = _SequenceModel(copy.deepcopy(encoder), task.num_labels, settings.dropout, settings.pooling)
        model.encoder.requires_grad_(True)
        model.to(device)
        _train(model, train, task.is_regression, settings, device, accepted, progress, task.name)
        train_seconds = time.perf_counter() - started

        started = time.perf_counter()
        predictions, labels, outputs = {}, {}, {}
        for split, examples in data.dev.items():
            encoded = encode_examples(tokenizer, examples, task, settings.max_seq_len, encoder.config.vocab_size)
            raw = _predict_outputs(model, encoded, settings, device, accepted)  # (N, num_outputs)
            if task.is_regression:
                predictions[split] = raw[:, 0]
                outputs[split] = raw[:, 0]
            else:
                predictions[split] = raw.argmax(axis=1)
                outputs[split] = _softmax(raw)
            labels[split] = encoded.labels
        metrics = compute_metrics(task, predictions, labels)
        held_out = {}
        for split, examples in data.held_out.items():
            encoded = encode_examples(tokenizer, examples, task, settings.max_seq_len, encoder.config.vocab_size)
            raw = _predict_outputs(model, encoded, settings, device, accepted)  # (N, num_outputs)
            outputs[split] = raw[:, 0] if task.is_regression else _softmax(raw)
            held_out[split] = split_metrics(task, raw[:, 0] if task.is_regression else raw, encoded.labels)
        eval_seconds = time.perf_counter() - started
    return TaskResult(
        task=task.name,
        metrics=metrics,
        score=task_score(metrics),
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        num_train=len(data.train),
        num_eval=data.num_eval,
        outputs=outputs if keep_outputs else None,
        held_out=held_out,
    )


def finetune_tasks(
    encoder: nn.Module,
    tokenizer,
    datas: Sequence[TaskData],
    settings: FinetuneSettings = FinetuneSettings(),
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[TaskResult, ...]:
    """Run :func:`finetune_and_score` on each task in turn, each from a fresh copy of ``encoder``."""
    return tuple(
        finetune_and_score(encoder, tokenizer, data, settings, device=device, progress=progress)
        for data in datas
    )


def _train(
    model: _SequenceModel,
    train: EncodedSplit,
    is_regression: bool,
    settings: FinetuneSettings,
    device: torch.device,
    accepted: set[str],
    progress: bool,
    name: str,
) -> None:
    """Run the optimisation loop on ``model`` in place."""
    num_train = len(train.input_ids)
    steps_per_epoch = math.ceil(num_train / settings.batch_size)
    total_steps = max(1, math.ceil(settings.epochs * steps_per_epoch))
    warmup = warmup_steps(settings.warmup_ratio, total_steps, round_up=True)
    optimizer = torch.optim.AdamW(param_groups((model,), settings.weight_decay), lr=settings.learning_rate)
    shuffler = torch.Generator().manual_seed(settings.seed)
    labels = torch.as_tensor(train.labels, dtype=torch.float32 if is_regression else torch.long)
    order: list[int] = []
    position = num_train  # forces a fresh permutation at step 0
    model.train()
    bar = tqdm(total=total_steps, desc=f"fine-tune {name}", disable=not progress, leave=False)
    for step in range(total_steps):
        if position >= num_train:
            order = torch.randperm(num_train, generator=shuffler).tolist()
            position = 0
        batch_indices = order[position : position + settings.batch_size]
        position += settings.batch_size
        learning_rate = linear_warmup_decay(step, total_steps, warmup, settings.learning_rate)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate

        inputs = collate_batch(train, batch_indices, device, accepted)  # each (B, T)
        targets = labels[batch_indices].to(device)  # (B,)
        outputs = model(inputs)  # (B, num_outputs)
        if is_regression:
            loss = F.mse_loss(outputs[:, 0], targets)
        else:
            loss = F.cross_entropy(outputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
        optimizer.step()
        if progress:
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{learning_rate:.2e}")
            bar.update(1)
    bar.close()


@torch.inference_mode()
def _predict_outputs(
    model: _SequenceModel,
    split: EncodedSplit,
    settings: FinetuneSettings,
    device: torch.device,
    accepted: set[str],
) -> np.ndarray:
    """Return the head's outputs ``(N, num_outputs)`` (logits, or the score) for every example, in order."""
    model.eval()
    lengths = np.array([len(ids) for ids in split.input_ids])
    by_length = np.argsort(-lengths, kind="stable")  # longest first: little padding per batch
    outputs = np.empty((len(lengths), model.head.out_features), dtype=np.float64)
    for start in range(0, len(by_length), settings.eval_batch_size):
        batch_indices = by_length[start : start + settings.eval_batch_size].tolist()
        inputs = collate_batch(split, batch_indices, device, accepted)  # each (B, T)
        outputs[batch_indices] = model(inputs).float().cpu().numpy()  # (B, num_outputs)
    return outputs


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(N, C)`` logits."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _check_encoder(encoder: nn.Module, settings: FinetuneSettings) -> None:
    """Check that the encoder has a usable config for the requested sequence length."""
    config = getattr(encoder, "config", None)
    if config is None or not hasattr(config, "hidden_size") or not hasattr(config, "vocab_size"):
        raise TaskError(
            f"the encoder {type(encoder).__name__} has no config with hidden_size and "
            f"vocab_size; pass a Hugging Face encoder such as transformers.BertModel"
        )
    max_positions = getattr(config, "max_position_embeddings", None)
    if max_positions is not None and settings.max_seq_len > max_positions:
        raise TaskError(
            f"max_seq_len={settings.max_seq_len} exceeds the encoder's "
            f"max_position_embeddings={max_positions}; lower max_seq_len"
        )


def _rng_devices(device: torch.device) -> list[int]:
    """Return the CUDA device indices whose RNG state ``fork_rng`` must save."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]
