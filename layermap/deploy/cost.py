"""Parameters and FLOPs of a BERT-family student, from its shape alone (no model is built).

For hidden size H, FFN size F, L layers, vocabulary V, P positions and T token types:

* parameters: embeddings ``(V + P + T) H + 2H`` (LayerNorm); each layer ``4 (H^2 + H)`` (query, key, value,
  attention output) ``+ 2 H F + F + H`` (FFN) ``+ 4H`` (two LayerNorms); the pooler ``H^2 + H`` — exactly what
  ``transformers``' ``BertModel`` holds (tested against a built student);
* FLOPs of one forward pass of B sequences of S tokens, counting a multiply-add as 2 FLOPs and only the matrix
  products (as ``torch.utils.flop_counter`` does): each layer ``2 B (S (4 H^2 + 2 H F) + 2 S^2 H)`` (projections,
  FFN, the two attention products), the pooler ``2 B H^2``.  Softmax, LayerNorm, GELU and the embedding lookup are
  left out: they are a few percent at S = 128 and no matrix unit runs them.

:func:`objective_costs` gives a search's cost objectives of a shape (``params``, ``flops``, and ``latency``
measured by :mod:`layermap.deploy.latency`).
"""

from __future__ import annotations

from typing import Sequence

from ..config import LatencySettings
from ..shape import StudentShape


def count_params(shape: StudentShape, *, vocab_size: int, max_positions: int, type_vocab_size: int = 2,
                 pooler: bool = True) -> int:
    """Parameters of a BERT encoder of ``shape`` (module docstring)."""
    h, f = shape.hidden_size, shape.ffn
    embeddings = (vocab_size + max_positions + type_vocab_size) * h + 2 * h
    layer = 4 * (h * h + h) + 2 * h * f + f + h + 4 * h
    return embeddings + shape.layers * layer + (h * h + h if pooler else 0)


def count_flops(shape: StudentShape, *, batch_size: int = 1, seq_len: int = 128, pooler: bool = True) -> int:
    """Matrix-product FLOPs of one forward pass of ``batch_size`` x ``seq_len`` tokens (module docstring)."""
    h, f, s = shape.hidden_size, shape.ffn, seq_len
    layer = 2 * batch_size * (s * (4 * h * h + 2 * h * f) + 2 * s * s * h)
    return shape.layers * layer + (2 * batch_size * h * h if pooler else 0)


def shape_costs(shape: StudentShape, teacher_config, *, batch_size: int = 1, seq_len: int = 128) -> dict[str, int]:
    """``{"params": ..., "flops": ...}`` of a student of ``shape`` in the teacher's family (its vocabulary,
    positions and token types)."""
    return {"params": count_params(shape, vocab_size=teacher_config.vocab_size,
                                   max_positions=teacher_config.max_position_embeddings,
                                   type_vocab_size=getattr(teacher_config, "type_vocab_size", 2)),
            "flops": count_flops(shape, batch_size=batch_size, seq_len=seq_len)}


def objective_costs(shape: StudentShape, names: Sequence[str], teacher_config, settings: LatencySettings,
                    store=None) -> dict[str, float]:
    """The cost objectives among ``names`` (``latency`` in ms, ``latency_int8`` in ms (the shape's int8 ONNX student
    under ONNX Runtime), ``params``, ``flops``; others, such as ``fitness``,
    are skipped) of a student of ``shape``: params and FLOPs by formula (FLOPs at the latency settings' batch and
    sequence), latency measured (:func:`layermap.deploy.latency.cached_latency` when a ``store`` is given, else
    :func:`~layermap.deploy.latency.measure_shape`)."""
    from .latency import ONNX_INT8, TORCH_FP32, cached_latency, measure_shape, measure_shape_int8

    out: dict[str, float] = {}
    fixed = shape_costs(shape, teacher_config, batch_size=settings.batch_size, seq_len=settings.seq_len)
    for name in names:
        if name in fixed:
            out[name] = float(fixed[name])
        elif name in ("latency", "latency_int8"):
            runtime, measure = (ONNX_INT8, measure_shape_int8) if name == "latency_int8" else (TORCH_FP32, measure_shape)
            latency = (cached_latency(store, teacher_config, shape, settings, runtime=runtime)[0] if store is not None
                       else measure(teacher_config, shape, settings))
            out[name] = latency.median_ms
    return out
