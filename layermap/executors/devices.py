"""Which device a run's results are computed on, as the driver knows it before any worker starts, and a worker's
own device and threads.

May import ``config`` and ``distill`` (its device picker).
"""

from __future__ import annotations

from ..config import RunSettings


def worker_device(settings: RunSettings) -> str:
    """The device setting the workers evaluate on, as the driver knows it before any worker starts: a Ray worker
    gets ``cuda:0`` exactly when it is given GPUs (``run.gpus_per_eval`` > 0 and ``run.device`` not cpu), else the CPU,
    whatever the driver has; local and process workers use ``run.device`` on the driver's machine."""
    if settings.executor == "ray":
        return "cpu" if settings.device == "cpu" or settings.gpus_per_eval == 0 else "cuda:0"
    return settings.device


def fingerprint_device_class(settings: RunSettings) -> str:
    """The device class (cpu, cuda, mps) the results of a run with ``settings`` are computed on, as a fingerprint
    names it: the Ray workers' (:func:`worker_device`), else that of ``run.device`` here."""
    if settings.executor == "ray":
        return worker_device(settings).split(":")[0]
    from ..distill.models import pick_device

    return pick_device(settings.device).type


def configure_torch(threads: int) -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.set_num_threads(max(1, int(threads)))


def pick_worker_device(slot: int, device: str) -> str:
    """``auto``/``cuda``: ``cuda:(slot % count)`` when CUDA is available; ``cpu`` and ``cuda:N`` are kept."""
    if device == "cpu" or device.startswith("cuda:"):
        return device
    try:
        import torch
        if torch.cuda.is_available():
            return f"cuda:{slot % torch.cuda.device_count()}"
    except ImportError:  # pragma: no cover
        pass
    return "cpu" if device == "auto" else device
