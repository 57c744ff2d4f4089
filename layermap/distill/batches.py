"""The batches of a distillation run, on the device ahead of the steps that read them.

The step loops (:func:`layermap.distill.loop.distill`, :func:`layermap.distill.population.distill_population`) read
the host only every ``sync_every`` steps.  :class:`DeviceBatches` serves their batches without a host sync: the token
ids and lengths of the next ``sync_every`` batches of the (steps, B) order are gathered on the host into pinned memory
and copied to the device with one non-blocking copy (the GPU stream orders it before the kernels that read it), and
the attention mask is built there.  Whether a batch has padding is known on the host (the segments' lengths), so a
batch without padding hands the models no mask at all, and a batch with padding a prepared 4D mask: given the 2D
mask, transformers reads it on the host (``padding_mask.all()`` in a Python ``if``) to decide whether it may drop it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .corpus import Segments

SYNC_EVERY = 25          # steps between two reads of the loss buffer (and NaN checks) by the host


class Batch(NamedTuple):
    indices: np.ndarray               # (B,) segment indices, on the host (the teacher cache reads by them)
    ids: torch.Tensor                 # (B, L) int64 on the device
    mask: torch.Tensor                # (B, L) int64 on the device: 1 for real tokens (every loss masks with it)
    keys: torch.Tensor | None         # (B, 1, 1, L) bool, the real keys, or None when the batch has no padding: what
                                      # a model forward gets (layermap.distill.models.model_mask)


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array on ``device``: through pinned memory and a non-blocking copy on CUDA (no host sync)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def read_losses(losses: torch.Tensor) -> np.ndarray:
    """The one host read of a step loop, every ``sync_every`` steps: the losses since the last one, (n, ...)."""
    return losses.float().cpu().numpy()


class DeviceBatches:
    """``batches[step]`` -> the :class:`Batch` of row ``step`` of ``order`` (steps, B); the rows are copied to the
    device ``chunk`` at a time (the loop's ``sync_every``)."""

    def __init__(self, segments: Segments, order: np.ndarray, device: torch.device | str, chunk: int = SYNC_EVERY) -> None:
        self.segments, self.order, self.device, self.chunk = segments, order, torch.device(device), max(1, int(chunk))
        self.full = (segments.lengths[order] >= segments.seq_len).all(axis=1)      # (steps,) no padding, on the host
        self._positions = torch.arange(segments.seq_len, device=self.device)       # (L,)
        self._first = -1
        self._ids = self._lengths = None

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, step: int) -> Batch:
        if self._ids is None or not self._first <= step < self._first + self.chunk:
            self._load(step)
        row = step - self._first
        ids = self._ids[row]                                                            # (B, L)
        mask = (self._positions[None, :] < self._lengths[row][:, None]).long()           # (B, L)
        return Batch(self.order[step], ids, mask, None if self.full[step] else mask.bool()[:, None, None, :])

    def _load(self, step: int) -> None:
        rows = self.order[step:step + self.chunk]                                       # (n, B)
        self._ids = to_device(self.segments.input_ids[rows].astype(np.int64), self.device)       # (n, B, L)
        self._lengths = to_device(self.segments.lengths[rows].astype(np.int64), self.device)     # (n, B)
        self._first = step
