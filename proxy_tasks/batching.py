"""Tokenize examples once and pad them per batch (dynamic padding) for fine-tuning.

:func:`encode_examples` runs the tokenizer over a whole split up front (pairs as
``tokenizer(text_a, text_b, truncation=True, max_length=...)``) and keeps unpadded token
ids. :func:`collate_batch` pads one batch to the longest sequence *in that batch*,
which on CPU is much faster than padding everything to ``max_seq_len``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .data import Example
from .registry import TaskError, TaskSpec

__all__ = ["EncodedSplit", "collate_batch", "encode_examples"]


@dataclass(frozen=True)
class EncodedSplit:
    """A tokenized split.

    Attributes:
        input_ids: token ids of each example, unpadded (special tokens included).
        token_type_ids: segment ids of each example, or None if the tokenizer has none.
        labels: class ids (int64) or scores (float64), one per example.
        pad_id: the tokenizer's padding id.
    """

    input_ids: tuple[list[int], ...]
    token_type_ids: tuple[list[int], ...] | None
    labels: np.ndarray
    pad_id: int


def encode_examples(
    tokenizer,
    examples: Sequence[Example],
    task: TaskSpec,
    max_seq_len: int,
    vocab_size: int | None = None,
) -> EncodedSplit:
    """Tokenize ``examples`` (truncated to ``max_seq_len``) without padding.

    Raises:
        TaskError: a pair task example lacks ``text_b``, or the tokenizer yields a token
            id outside the encoder's vocabulary (``vocab_size``): the wrong tokenizer.
    """
    texts_a = [example.text_a for example in examples]
    texts_b = None
    if task.is_pair:
        texts_b = [example.text_b for example in examples]
        if any(text is None for text in texts_b):
            raise TaskError(
                f"an example of pair task {task.name} has no second text (text_b); "
                f"load the data with proxy_tasks.load_task"
            )
    encoded = tokenizer(texts_a, texts_b, truncation=True, max_length=max_seq_len)
    input_ids = tuple(list(ids) for ids in encoded["input_ids"])
    token_type_ids = None
    if "token_type_ids" in encoded:
        token_type_ids = tuple(list(ids) for ids in encoded["token_type_ids"])
    if vocab_size is not None and input_ids:
        largest = max((max(ids) for ids in input_ids if ids), default=0)
        if largest >= vocab_size:
            raise TaskError(
                f"the tokenizer produced token id {largest} but the encoder's vocabulary "
                f"has only {vocab_size} entries; pass the tokenizer that belongs to the encoder"
            )
    dtype = np.float64 if task.is_regression else np.int64
    labels = np.asarray([example.label for example in examples], dtype=dtype)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return EncodedSplit(input_ids=input_ids, token_type_ids=token_type_ids, labels=labels, pad_id=pad_id)


def collate_batch(
    split: EncodedSplit,
    indices: Sequence[int],
    device: torch.device,
    accepted: set[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Pad the examples at ``indices`` to the batch's longest sequence.

    Returns ``input_ids``, ``attention_mask`` and (when the split has segment ids and
    the encoder's ``forward`` accepts them, per ``accepted``) ``token_type_ids``, each
    a ``(B, T)`` long tensor on ``device``.
    """
    lengths = [len(split.input_ids[i]) for i in indices]
    width = max(lengths)
    input_ids = [split.input_ids[i] + [split.pad_id] * (width - n) for i, n in zip(indices, lengths)]
    attention_mask = [[1] * n + [0] * (width - n) for n in lengths]
    batch = {
        "input_ids": torch.tensor(input_ids, dtype=torch.long, device=device),  # (B, T)
        "attention_mask": torch.tensor(attention_mask, dtype=torch.long, device=device),  # (B, T)
    }
    if split.token_type_ids is not None and (accepted is None or "token_type_ids" in accepted):
        token_types = [split.token_type_ids[i] + [0] * (width - n) for i, n in zip(indices, lengths)]
        batch["token_type_ids"] = torch.tensor(token_types, dtype=torch.long, device=device)  # (B, T)
    return batch
