"""What keys a compare folder and its cells: :func:`compare_fingerprint` (everything that shapes a result), the
fingerprints a folder of an older layermap accepted, :func:`teacher_cell_fingerprint` (a fine-tuned teacher's cells,
shared between folders by ``--teacher-from``), and the settings a folder records (``compare.json``).  May import
``jobs``, ``recipe``, ``config``, ``distill``, ``executors.devices`` and the top-level modules.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from . import recipe
from ..config import Config, digest
from ..distill.identity import teacher_label
from ..versions import library_versions
from .jobs import COMPARE_FORMAT, TEACHER


# [compare] keys that do not shape a cell: a folder grows with more tasks and seeds under one fingerprint, and with
# or without the reference rows (their cells have keys of their own); compare.teacher_cache shapes the students, but
# enters the fingerprint apart (_device_and_cache)
_NOT_SHAPING = frozenset({"tasks", "seeds", "distill_seeds", "checkpoint_every", "teacher_cache", "references"})
# keys that shape no cell but were once in the fingerprint, with the values a folder of that time may have recorded
# (compare.references, from the reference rows' arrival to issue 28): such a folder keeps its fingerprint
_ONCE_IN_FINGERPRINT = {"references": (True, False)}

def compare_fingerprint(config: Config, *, legacy: Mapping[str, Any] | None = None) -> str:
    """Hash of everything that shapes a distilled student and its fine-tuning (not the task list, seeds, reference
    rows, mappings, executors or paths).  ``legacy``: [compare] keys to hash as a folder of the time they entered the
    fingerprint did (:func:`accepted_fingerprints`)."""
    from ..distill.corpus import corpus_identity
    from ..distill.models import teacher_identity

    c = config
    parts = {
        "format": COMPARE_FORMAT,
        "teacher": teacher_identity(c.teacher.name, c.teacher.revision),
        "student": c.student.identity(_sliced(c)),
        "corpus": corpus_identity(c.corpus.path), "corpus_seed": c.corpus.seed,
        "compare": {**{k: getattr(c.compare, k) for k in c.compare.__dataclass_fields__
                       if k not in _NOT_SHAPING and k not in recipe.RECIPE_DEFAULTS}, **(legacy or {})},
        "losses": {k: getattr(c.distill, k) for k in ("weight_decay", "max_grad_norm", "attention_weight",
                                                       "hidden_weight", "embedding_weight")},
        "versions": library_versions(),
    }
    if c.distill.precision != "fp32":          # enters only when not fp32, so folders from before it keep their key
        parts["precision"] = c.distill.precision
    if recipe.recipe_settings(c):              # the judge's recipe: only where it is not the old one (old folders' keys)
        parts["recipe"] = recipe.recipe_settings(c)
    parts.update(_device_and_cache(c))
    return digest(parts)[:32]


def _sliced(config: Config) -> bool:
    """Whether ``student.slice`` shapes the compared students (:func:`layermap.extraction.slice_matters`)."""
    from ..distill.models import load_teacher_config
    from ..extraction import slice_matters

    s = config.student
    if (config.compare.init or s.init) != "teacher" or s.slice == "leading":     # (no teacher config needed)
        return False
    return slice_matters("teacher", s.hidden_size, s.heads, s.ffn,
                         load_teacher_config(config.teacher.name, config.teacher.revision))


def accepted_fingerprints(config: Config) -> list[str]:
    """The fingerprints a compare folder made with ``config``'s settings may carry: today's, then those of the time a
    key that shapes no cell was in it (:data:`_ONCE_IN_FINGERPRINT`), so such a folder can still be extended."""
    legacy = [compare_fingerprint(config, legacy={key: value}) for key, values in _ONCE_IN_FINGERPRINT.items()
              for value in values]
    return [compare_fingerprint(config), *legacy]


# [compare] keys that shape the teacher's fine-tuning cells (the teacher row): neither the student nor the distillation
_TEACHER_SHAPING = ("max_train", "max_eval", "finetune_epochs", "finetune_batch_size", "finetune_learning_rate",
                    "finetune_seq_len")

def teacher_cell_fingerprint(config: Config) -> str:
    """Hash of what shapes a teacher fine-tuning cell: the teacher (weights and tokenizer), the fine-tuning settings,
    the library versions and the device class; not the student, the corpus or the distillation budget, so that every
    compare folder with this teacher and these fine-tuning settings keys its teacher row alike (``--teacher-from``)."""
    from ..distill.models import teacher_identity
    from ..executors.devices import fingerprint_device_class

    c = config
    parts = {"format": COMPARE_FORMAT, "kind": TEACHER, "teacher": teacher_identity(c.teacher.name, c.teacher.revision),
             "finetune": {k: getattr(c.compare, k) for k in _TEACHER_SHAPING},
             "versions": library_versions(),
             "device": fingerprint_device_class(c.run)}
    if recipe.recipe_settings(c):
        parts["recipe"] = recipe.recipe_settings(c)
    return digest(parts)[:32]


def _device_and_cache(config: Config) -> dict:
    """What shapes a cell beside the settings, entering only where it differs from what every folder before it had
    (so those keep their key): the device class the distillations and fine-tunings run on (a CUDA run differs from a
    CPU run of the same seeds), and the float16 teacher cache (its students differ from the live teacher's)."""
    from ..executors.devices import fingerprint_device_class

    shaping: dict = {}
    device = fingerprint_device_class(config.run)
    if device != "cpu":
        shaping["device"] = device
    if config.compare.teacher_cache:
        shaping["compare.teacher_cache"] = True
    return shaping


def _folder_settings(config: Config) -> dict:
    """The settings a compare folder is bound to, flattened (``section.key``) for naming what changed."""
    d = config.to_dict()
    flat = {f"{sec}.{k}": v for sec in ("teacher", "student") for k, v in d[sec].items()}
    flat["teacher.name"] = teacher_label(config.teacher.name)          # compare.json names no machine path
    flat.update({"corpus.path": config.corpus.path, "corpus.seed": config.corpus.seed})
    flat.update({f"compare.{k}": v for k, v in d["compare"].items() if k not in _NOT_SHAPING})
    flat.update(_device_and_cache(config))
    return json.loads(json.dumps(flat))
