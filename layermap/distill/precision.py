"""``distill.precision``: what arithmetic the distillation loops use, and whether the device can do it.

* ``fp32``: full float32 everywhere (TF32 matmuls explicitly off on CUDA);
* ``tf32``: float32 storage, TF32 tensor-core matmuls and convolutions (CUDA, Ampere or newer);
* ``bf16``: ``torch.autocast`` to bfloat16 around the forward passes and the losses; weights, gradients and
  the AdamW state stay float32 (no loss scaling is needed with bfloat16's exponent range).

The precision changes fitness values, so it enters the fingerprint (:mod:`layermap.evaluators.proxy`).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from ..config import DISTILL_PRECISIONS as PRECISIONS, ConfigError



def check_precision(precision: str, device: torch.device | str) -> None:
    """A precision the device cannot do is a :class:`ConfigError` (one sentence, exit 2)."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ConfigError(f"distill.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "tf32" and device.type != "cuda":
        raise ConfigError(f"distill.precision = 'tf32' needs a CUDA GPU, but the run uses {device.type}; "
                          "use 'fp32' (or 'bf16') on this device")
    if precision == "tf32" and torch.cuda.get_device_capability(device)[0] < 8:
        raise ConfigError("distill.precision = 'tf32' needs an Ampere or newer GPU (compute capability 8.0); "
                          "use 'fp32' on this GPU")
    if precision == "bf16" and not bf16_supported(device):
        raise ConfigError(f"distill.precision = 'bf16' is not supported on this {device.type}; use 'fp32'")


def bf16_supported(device: torch.device | str) -> bool:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


@contextlib.contextmanager
def tf32_matmuls(enabled: bool) -> Iterator[None]:
    """TF32 on or off for CUDA matmuls and cuDNN within the block; the previous flags are restored after."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def autocast(precision: str, device: torch.device | str):
    """The context to run forward passes and losses in: bf16 autocast, or nothing."""
    device = torch.device(device)
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
