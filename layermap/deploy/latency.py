"""A student's latency, *measured* on the device it is meant for, and cached per (device, shape, settings).

A measurement runs ``latency.warmup`` untimed forward passes of ``latency.batch_size`` x ``latency.seq_len``
random tokens, then times ``latency.repeats`` more (``time.perf_counter``; on CUDA after a synchronise), with
``latency.threads`` intra-op threads (restored afterwards).  Defaults follow AutoTinyBERT's window: this machine's
CPU, one thread, batch 1, sequence 128.  The result is the median and its spread (the inter-quartile range) in
milliseconds, with the samples.

A latency belongs to the device that measured it, so the cache key is (:func:`device_identity`, shape text,
:func:`latency_key`: the settings that change a timing, the runtime and the library version).  It lives in the
store's ``latency`` table (:meth:`layermap.storage.store.Store.lookup_latency`), apart from accuracy records:
an accuracy fingerprint stays shareable across devices, a latency is re-measured on another.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Callable, Protocol

import torch

from ..config import LatencySettings
from ..errors import LayermapError
from ..shape import StudentShape
from .timing import Latency, random_inputs, time_call  # noqa: F401 - this module's measurements

TORCH_FP32 = "torch-fp32"
ONNX_INT8 = "onnx-int8"


class LatencyError(LayermapError):
    """A latency that cannot be measured as asked (e.g. CUDA asked for on a machine without it)."""


class LatencyStore(Protocol):
    """What :func:`cached_latency` needs of a store (:class:`layermap.storage.store.Store` has it)."""

    def lookup_latency(self, device: str, shape: str, settings: str) -> dict | None: ...

    def save_latency(self, device: str, shape: str, settings: str, record: dict) -> None: ...


def device_identity(device: str = "cpu") -> str:
    """What a latency belongs to: ``cpu:<model name> x<logical cores>`` or ``cuda:<device name>``."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LatencyError("latency.device = 'cuda' was asked for but CUDA is not available; use latency.device = 'cpu'")
        return f"cuda:{torch.cuda.get_device_name(torch.device(device))}"
    return f"cpu:{_cpu_name()} x{os.cpu_count() or 1}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def latency_key(settings: LatencySettings, runtime: str = TORCH_FP32, model: dict | None = None) -> str:
    """The settings that change a timing, as canonical JSON: batch, sequence, threads, the runtime (``torch-fp32``,
    ``onnx-fp32``, ``onnx-int8``) and its library's version, and the model family (type, vocabulary)."""
    version = torch.__version__ if runtime.startswith("torch") else _onnxruntime_version()
    return json.dumps({"batch_size": settings.batch_size, "seq_len": settings.seq_len, "threads": settings.threads,
                       "runtime": runtime, "version": version, "model": model or {}}, sort_keys=True)


def _onnxruntime_version() -> str:
    try:
        import onnxruntime
    except ImportError:
        return "absent"
    return onnxruntime.__version__


def measure_model(model: torch.nn.Module, settings: LatencySettings) -> Latency:
    """The forward latency of ``model`` (a ``transformers`` encoder) under ``settings``; the model is put in eval
    mode on ``settings.device`` and left there."""
    device = torch.device(settings.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LatencyError("latency.device = 'cuda' was asked for but CUDA is not available; use latency.device = 'cpu'")
    model.eval().to(device)
    inputs = {k: v.to(device) for k, v in random_inputs(model.config.vocab_size, settings).items()}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        with torch.inference_mode():
            return time_call(lambda: model(**inputs), warmup=settings.warmup, repeats=settings.repeats, sync=sync)
    finally:
        torch.set_num_threads(threads)


def measure_shape(teacher_config, shape: StudentShape, settings: LatencySettings) -> Latency:
    """The latency of a randomly initialised student of ``shape`` in the teacher's family (weights do not change a
    dense model's timing)."""
    from ..distill.models import StudentSpec, build_student

    return measure_model(build_student(teacher_config, StudentSpec(**shape.to_dict()), seed=0), settings)


def measure_shape_int8(teacher_config, shape: StudentShape, settings: LatencySettings) -> Latency:
    """The latency of a randomly initialised student of ``shape`` exported to ONNX and quantised to int8 by ONNX
    Runtime's dynamic quantisation (:mod:`layermap.deploy.onnx_runtime`; the ``deploy`` extra), run by an ONNX Runtime
    session with ``settings.threads`` threads on the CPU."""
    import tempfile

    from ..distill.models import StudentSpec, build_student
    from .onnx_runtime import export_onnx, measure_session, open_session, quantize_int8, require_onnxruntime

    require_onnxruntime()
    if settings.device != "cpu":
        raise LatencyError("the latency_int8 objective is measured by ONNX Runtime on the CPU; set latency.device = "
                           "'cpu' or use the latency objective")
    model = build_student(teacher_config, StudentSpec(**shape.to_dict()), seed=0).eval()
    with tempfile.TemporaryDirectory(prefix="layermap-int8-") as tmp:
        fp32 = export_onnx(model, Path(tmp) / "model.onnx")
        int8 = quantize_int8(fp32, Path(tmp) / "model.int8.onnx")
        return measure_session(open_session(int8, settings), int(teacher_config.vocab_size), settings)


def cached_latency(store: LatencyStore, teacher_config, shape: StudentShape, settings: LatencySettings,
                   *, measure: Callable[[], Latency] | None = None, runtime: str = TORCH_FP32) -> tuple[Latency, bool]:
    """The latency of ``shape`` on ``settings.device`` under ``runtime`` (``torch-fp32``, or ``onnx-int8``) from the
    store, else measured (``measure()``, default :func:`measure_shape` / :func:`measure_shape_int8`) and saved;
    returns it and whether it came from the store."""
    device = device_identity(settings.device)
    key = latency_key(settings, runtime, {"model_type": getattr(teacher_config, "model_type", ""),
                                          "vocab_size": int(teacher_config.vocab_size)})
    record = store.lookup_latency(device, shape.text, key)
    if record is not None:
        return Latency.from_dict(record), True
    default = measure_shape_int8 if runtime == ONNX_INT8 else measure_shape
    latency = (measure or (lambda: default(teacher_config, shape, settings)))()
    store.save_latency(device, shape.text, key, latency.to_dict())
    return latency, False
