"""What a proxy fitness *is*, for its fingerprint: everything that changes a fitness value, and nothing else.

:func:`identity_parts` is what the fitness fingerprint and the reference rows' fingerprint share: the format, the
teacher's identity, the student, the proxy settings that change a fitness (:func:`proxy_identity`), the task data,
the device class and :func:`layermap.versions.library_versions`.  The fitness adds the corpus slice and the
distillation settings (:meth:`layermap.evaluators.proxy.ProxyEvaluator.fingerprint_on`).
"""

from __future__ import annotations

from ..config import Config
from ..distill.models import teacher_identity
from ..versions import library_versions

FITNESS_FORMAT = 3          # bump when the fitness computation or its fingerprint changes meaning (head/repeats
                            # enter the fingerprint only when not finetune/1, so records from before them keep their key).
                            # 2: the teacher's identity covers its tokenizer files, and hub names (teacher, datasets
                            # corpus, hub GLUE tasks) carry the commit their revision resolves to
                            # 3: the device class (cpu / cuda) and distill.precision enter: the same genome and seeds
                            # scored 60.54 on a CPU and 61.78 on CUDA, so a shared cache must not mix them.  Stores of
                            # format 2 stay readable (show, export, plot read rows, not fingerprints); their records
                            # are not reused by new runs

_NOT_FITNESS = ("glue_dir", "reference_seed_sets", "allow_invalid", "task_noise")   # proxy keys that change no fitness


def identity_parts(config: Config, student: dict, device_class: str) -> dict:
    """The parts of a proxy fingerprint the fitness and the reference rows share (module docstring); ``student`` is
    the resolved student's description (layers, widths, heads, FFN, init)."""
    from proxy_tasks import data_fingerprint

    c = config
    return {
        "format": FITNESS_FORMAT,
        "teacher": teacher_identity(c.teacher.name, c.teacher.revision),
        "student": student,
        "proxy": proxy_identity(c.proxy),
        "data": {t: data_fingerprint(t, c.proxy.glue_dir or None) for t in c.proxy.tasks},
        "device": device_class,
        "versions": library_versions(),
    }


def proxy_identity(proxy) -> dict:
    """The proxy settings that change a fitness.  ``head``, ``repeats`` and ``pooling`` enter only when they differ
    from the single fine-tuning run every record before them had, so those records keep their key."""
    d = {k: getattr(proxy, k) for k in proxy.__dataclass_fields__ if k not in _NOT_FITNESS}
    if d.get("head") == "finetune":
        del d["head"]
    if d.get("repeats") == 1:
        del d["repeats"]
    if d.get("pooling") == "cls":
        del d["pooling"]
    if d.get("head") == "probe":                 # the probe does not fine-tune: its settings do not matter
        for k in ("epochs", "batch_size", "learning_rate", "pooling"):    # (seed stays: it draws the task subsamples)
            d.pop(k, None)
    else:                                        # fine-tuning does not probe
        for k in ("probe_pairs", "probe_c"):
            d.pop(k, None)
    return d
