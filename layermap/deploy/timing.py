"""Timing a call the way every latency of layermap is timed: untimed warm-up calls, then timed repeats, their median.

:func:`time_call` times any callable (a PyTorch forward, an ONNX Runtime session), :func:`random_inputs` makes the
random token batch both are fed, :class:`Latency` holds the result.  Imports nothing of layermap but the settings.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..config import LatencySettings


@dataclass(frozen=True)
class Latency:
    """One measurement: the median and inter-quartile range of ``repeats`` timings, in milliseconds."""

    median_ms: float
    spread_ms: float                   # inter-quartile range (75th - 25th percentile)
    min_ms: float
    repeats: int
    samples_ms: tuple[float, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict:
        return {"median_ms": self.median_ms, "spread_ms": self.spread_ms, "min_ms": self.min_ms,
                "repeats": self.repeats, "samples_ms": list(self.samples_ms)}

    @classmethod
    def from_dict(cls, d: dict) -> "Latency":
        return cls(float(d["median_ms"]), float(d["spread_ms"]), float(d["min_ms"]), int(d["repeats"]),
                   tuple(float(x) for x in d.get("samples_ms", ())))


def time_call(fn: Callable[[], object], *, warmup: int, repeats: int, sync: Callable[[], None] = lambda: None) -> Latency:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed ones (``sync()`` before each clock read)."""
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        samples.append(1000.0 * (time.perf_counter() - start))
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive") if len(samples) > 1 else (samples[0],) * 3
    return Latency(statistics.median(samples), q3 - q1, min(samples), repeats, tuple(samples))


def random_inputs(vocab_size: int, settings: LatencySettings, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """``input_ids``, ``attention_mask`` (all ones) and ``token_type_ids`` (zeros), each (batch, seq) int64."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (settings.batch_size, settings.seq_len), generator=generator)  # (B, S)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
