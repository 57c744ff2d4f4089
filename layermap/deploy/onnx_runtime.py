"""ONNX Runtime as layermap uses it: export a ``transformers`` encoder to ONNX, quantise it to dynamic int8, open and
time a CPU session.

The primitives :mod:`layermap.deploy.quantize` (a saved student made ready to ship) and
:func:`layermap.deploy.latency.measure_shape_int8` (the ``latency_int8`` objective) share.  Needs the optional extra
``pip install -e ".[deploy]"`` (``onnx``, ``onnxruntime``); imports of layermap only the settings, the error base
and :mod:`layermap.deploy.timing`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..config import LatencySettings
from ..errors import LayermapError
from .timing import Latency, random_inputs, time_call

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
INSTALL = 'pip install -e ".[deploy]"'
OPSET = 17


class QuantizeError(LayermapError):
    """A student folder or an environment that ``layermap quantize`` cannot work with."""


def require_onnxruntime():
    """``onnxruntime`` and ``onnx``, or one sentence naming the install command."""
    try:
        import onnx  # noqa: F401 - only that it is there
        import onnxruntime
    except ImportError as exc:
        raise QuantizeError(f"ONNX export and int8 quantisation need onnx and onnxruntime ({exc.name} is missing); install the extra "
                            f"with {INSTALL}") from None
    return onnxruntime


def check_int8_device(settings: LatencySettings) -> None:
    """One sentence, before any work, where the int8 student cannot be measured as asked: the extra missing, or a latency
    device other than the CPU (module docstring)."""
    require_onnxruntime()
    if settings.device != "cpu":
        raise QuantizeError(f"int8 students are measured on the CPU only (ONNX Runtime's dynamic int8 operators have no "
                            f"CUDA kernels, so latency.device = {settings.device!r} would time a graph split between the "
                            "GPU and the CPU); set latency.device = 'cpu' (--set latency.device=cpu)")


class _Encoder(torch.nn.Module):
    """The encoder with positional inputs and one output, as the ONNX graph has them."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state  # (B, T, H)


def export_onnx(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Export ``model`` to ``path`` (module docstring, step 1)."""
    ids = torch.randint(0, model.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))  # (2, 16)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0                         # a padded row: the mask must stay a graph input, not a traced constant
    wrapper = _Encoder(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(wrapper, (ids, mask, torch.zeros_like(ids)), os.fspath(path), input_names=list(INPUTS),
                          output_names=["last_hidden_state"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "sequence"} for n in (*INPUTS, "last_hidden_state")})
    return Path(path)


def quantize_int8(fp32_path: str | os.PathLike, int8_path: str | os.PathLike) -> Path:
    """Dynamic int8 quantisation of an ONNX file (module docstring, step 2)."""
    import logging

    require_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)             # quantize_dynamic logs a pre-processing hint on the root logger
    try:
        quantize_dynamic(os.fspath(fp32_path), os.fspath(int8_path), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return Path(int8_path)


class OnnxEncoder(torch.nn.Module):
    """An ONNX Runtime session that the probe can use as an encoder: ``forward`` takes the tokenised batch and returns
    ``(last_hidden_state,)``; ``config`` is the PyTorch model's (hidden size, vocabulary)."""

    def __init__(self, session, config) -> None:
        super().__init__()
        self.config = config
        self.session = session

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask,
                 "token_type_ids": torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids}
        out = self.session.run(None, {k: v.cpu().numpy().astype(np.int64) for k, v in feeds.items()})[0]
        return (torch.from_numpy(out),)  # (B, T, H)


def open_session(path: str | os.PathLike, settings: LatencySettings):
    """An ONNX Runtime session on the CPU with ``settings.threads`` intra-op threads (:func:`check_int8_device`)."""
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])


def measure_session(session, vocab_size: int, settings: LatencySettings) -> Latency:
    """The latency of an ONNX Runtime session under ``settings`` (the same inputs and timing as the PyTorch one)."""
    feeds = {k: v.numpy() for k, v in random_inputs(vocab_size, settings).items()}
    return time_call(lambda: session.run(None, feeds), warmup=settings.warmup, repeats=settings.repeats)


def max_abs_difference(model: torch.nn.Module, session, settings: LatencySettings) -> float:
    """The largest absolute difference of the session's ``last_hidden_state`` from the model's, on random tokens of
    the latency settings' size with the second half of the last row padded."""
    inputs = random_inputs(model.config.vocab_size, settings, seed=1)
    inputs["attention_mask"][-1, settings.seq_len // 2:] = 0
    with torch.inference_mode():
        expected = model(**inputs).last_hidden_state.numpy()  # (B, S, H)
    got = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    return float(np.abs(got - expected).max())
