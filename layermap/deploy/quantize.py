"""A saved student made ready to ship: ONNX export, ONNX Runtime dynamic int8 quantisation, and what each costs.

:func:`quantize_student` takes a folder that ``AutoModel.from_pretrained`` loads (``layermap distill``'s output):

1. exports the encoder to ONNX (``torch.onnx.export``, TorchScript exporter, opset 17; inputs ``input_ids``,
   ``attention_mask``, ``token_type_ids``, output ``last_hidden_state``, batch and sequence dynamic), traced in eval
   mode with a padded example so that the attention mask stays an input of the graph;
2. quantises it with ``onnxruntime.quantization.quantize_dynamic`` (int8 weights of every MatMul and Gather, the
   word embeddings included, activations quantised at run time);
3. reports the file sizes (MB), the latency of PyTorch fp32, ONNX fp32 and ONNX int8 under the same
   :class:`~layermap.config.LatencySettings` as the latency objective (ONNX fp32 beside int8, so that the runtime's
   change and int8's are apart; the same graph for both, so their sizes compare), the largest absolute difference of
   the ONNX outputs from PyTorch's on random inputs, and, for the GLUE tasks asked for, the dev scores of fp32
   (PyTorch) and int8 (ONNX) through the linear probe head (:mod:`proxy_tasks.probe`: the int8 features come from
   the ONNX session) with their agreement (the share of dev examples whose predictions are equal).  The probe's C (or
   ridge alpha) is cross-validated once, on the fp32 features, and the int8 probe is fitted with the same one, so a
   disagreement is int8's and not a different regularisation's.

Everything is measured on the CPU: ONNX Runtime's dynamic int8 operators (``DynamicQuantizeLinear``,
``MatMulInteger``) have no CUDA kernels, so a CUDA session would run the int8 graph split between the GPU and the CPU
with copies between them; :func:`check_int8_device` refuses ``latency.device = "cuda"`` before any work.

Needs the optional extra ``pip install -e ".[deploy]"`` (``onnx``, ``onnxruntime``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import LatencySettings
from .onnx_runtime import (OnnxEncoder, QuantizeError, check_int8_device, export_onnx, max_abs_difference,
                           measure_session, open_session, quantize_int8)
from .timing import Latency


def load_student(folder: str | os.PathLike):
    """The encoder and tokenizer of a saved student folder, or one sentence saying why it is not one."""
    from transformers import AutoModel, AutoTokenizer

    path = Path(folder).expanduser()
    if not path.is_dir() or not (path / "config.json").is_file():
        raise QuantizeError(f"{os.fspath(folder)!r} is not a model folder (no config.json); give a folder written by "
                            "'layermap distill' or save_pretrained")
    try:
        model = AutoModel.from_pretrained(path).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - any loading failure is the folder's, in one sentence
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise QuantizeError(f"{os.fspath(folder)!r} could not be loaded as a model with its tokenizer ({first}); "
                            "give a folder written by 'layermap distill' or save_pretrained") from None
    return model, tokenizer


@dataclass(frozen=True)
class TaskComparison:
    task: str
    fp32: float                          # probe score of the PyTorch fp32 student
    int8: float                          # probe score of the ONNX int8 student, its probe fitted with the same C
    agreement: float                     # share of dev examples with equal predictions (percent)
    metrics_fp32: dict[str, float] = field(default_factory=dict)
    metrics_int8: dict[str, float] = field(default_factory=dict)
    regularisation: float | None = None  # the C (ridge alpha) of both probes, cross-validated on the fp32 features


def probe_predictions(encoder: torch.nn.Module, tokenizer, data, max_seq_len: int = 128, *,
                      regularisation: float | None = None):
    """The probe head's dev predictions, metrics, score and regularisation for one task
    (:func:`proxy_tasks.probe.probe_and_score`, which keeps the predictions for the agreement); ``regularisation``
    fixes the C (ridge alpha) instead of cross-validating it."""
    from proxy_tasks.probe import ProbeSettings, probe_and_score

    settings = ProbeSettings(max_seq_len=max_seq_len, c=regularisation, alpha=regularisation)
    result = probe_and_score(encoder, tokenizer, data, settings)
    return result.predictions, result.metrics, result.score, result.regularisation


def compare_probe(model: torch.nn.Module, int8: OnnxEncoder, tokenizer, data, max_seq_len: int = 128) -> TaskComparison:
    """Probe scores of the fp32 and int8 students on one task, the int8 probe fitted with the C cross-validated on
    fp32's features, and the agreement of their predictions."""
    p32, m32, s32, strength = probe_predictions(model, tokenizer, data, max_seq_len)
    p8, m8, s8, _ = probe_predictions(int8, tokenizer, data, max_seq_len, regularisation=strength)
    same = sum(int(np.sum(np.isclose(p32[k], p8[k]) if data.task.is_regression else p32[k] == p8[k])) for k in p32)
    total = sum(len(p32[k]) for k in p32)
    return TaskComparison(data.task.name, float(s32), float(s8), 100.0 * same / max(total, 1), dict(m32), dict(m8),
                          float(strength))


@dataclass(frozen=True)
class QuantizeReport:
    """What ``layermap quantize`` measured (``quantize.json`` beside the ONNX files)."""

    student: str
    out_dir: str
    shape: str                               # L<layers>-H<hidden>-A<heads>-F<ffn>
    device: str                              # the latency device's identity
    settings: LatencySettings
    size_mb: dict[str, float]                # pytorch_fp32 (weight files), onnx_fp32, onnx_int8; MB = 10^6 bytes
    latency: dict[str, Latency]              # torch-fp32, onnx-fp32, onnx-int8
    max_abs_diff: dict[str, float]           # onnx_fp32, onnx_int8: against PyTorch fp32's last_hidden_state
    tasks: tuple[TaskComparison, ...] = ()

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {"student": self.student, "out_dir": self.out_dir, "shape": self.shape, "device": self.device,
                "settings": asdict(self.settings), "size_mb": dict(self.size_mb),
                "latency": {k: v.to_dict() for k, v in self.latency.items()}, "max_abs_diff": dict(self.max_abs_diff),
                "tasks": [asdict(t) for t in self.tasks]}


def quantize_student(folder: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                     settings: LatencySettings = LatencySettings(), tasks: tuple[str, ...] = (),
                     glue_dir: str | None = None, max_train: int | None = None, max_eval: int | None = None,
                     max_seq_len: int = 128) -> QuantizeReport:
    """Export, quantise and measure the student in ``folder`` (module docstring); writes ``model.onnx``,
    ``model.int8.onnx`` and ``quantize.json`` into ``out_dir`` (default ``folder/onnx``)."""
    import json

    from ..shape import StudentShape
    from .latency import TORCH_FP32, device_identity, measure_model

    check_int8_device(settings)
    model, tokenizer = load_student(folder)
    out = Path(out_dir) if out_dir is not None else Path(folder) / "onnx"
    out.mkdir(parents=True, exist_ok=True)
    fp32_path, int8_path = export_onnx(model, out / "model.onnx"), out / "model.int8.onnx"
    quantize_int8(fp32_path, int8_path)
    sessions = {"onnx-fp32": open_session(fp32_path, settings), "onnx-int8": open_session(int8_path, settings)}
    c = model.config
    latency = {TORCH_FP32: measure_model(model, settings)}
    latency.update({name: measure_session(s, c.vocab_size, settings) for name, s in sessions.items()})
    weights = [p for p in Path(folder).iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file()]
    comparisons = []
    if tasks:
        from proxy_tasks import load_task

        int8 = OnnxEncoder(sessions["onnx-int8"], c)
        for name in tasks:
            data = load_task(name, glue_dir, max_train=max_train, max_eval=max_eval)
            comparisons.append(compare_probe(model, int8, tokenizer, data, max_seq_len))
    report = QuantizeReport(
        student=os.fspath(folder), out_dir=os.fspath(out),
        shape=StudentShape(c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size).text,
        device=device_identity(settings.device), settings=settings,
        size_mb={"pytorch_fp32": sum(p.stat().st_size for p in weights) / 1e6, "onnx_fp32": fp32_path.stat().st_size / 1e6,
                 "onnx_int8": int8_path.stat().st_size / 1e6},
        latency=latency,
        max_abs_diff={name.replace("-", "_"): max_abs_difference(model, s, settings) for name, s in sessions.items()},
        tasks=tuple(comparisons))
    (out / "quantize.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return report
