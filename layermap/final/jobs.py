"""The final stage's units of work and where their files live: the typed :class:`Job` (kind, mapping, distillation
seed, task, fine-tuning seed), the job kinds and reference students, a student's folder, a cell's dev outputs (and the
fine-tuned teacher's, for loyalty), the distillation settings of a seed, and the mappings a compare resolves.
May import ``config``, ``extraction``, ``mapping``, ``distill`` and the top-level modules.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple, Sequence

from . import recipe
from ..config import Config, DistillSettings
from ..errors import LayermapError
from ..extraction import canonical_text, parse_genome

COMPARE_FORMAT = 2          # 2: the teacher's identity covers its tokenizer; hub names carry their resolved commit
DISTILL, FINETUNE, TEACHER = "distill", "finetune", "teacher"
TEACHER_MAPPING = "teacher"
NO_DISTILL = "no-distillation"   # the reference student: the spec at its initialisation, fine-tuned with 0 distillation steps
TRUNCATION, RANDOM = "truncation", "random"    # compare.init = "teacher": the reference students, keys of their own (an
                                               # old folder's no-distillation cells, the uniform layers copied, stay apart)
REFERENCE_STUDENTS = {NO_DISTILL: "no distillation", TRUNCATION: "truncation", RANDOM: "random"}   # job key -> row name
INFO_NAME = "compare.json"
QUANTIZE_FORMAT = 2             # 2: the int8 probe fitted with fp32's C, ONNX fp32 timed beside int8 (issue 28)
LOYALTY_SEED = 0                 # loyalty is measured against the teacher fine-tuned with this seed (teacher_outputs)


class Job(NamedTuple):
    """One unit of the final stage's work, a row of the store's ``cells`` table: distil a student
    (``DISTILL, mapping, d, "", -1``), fine-tune and score one (``FINETUNE, mapping, d, task, seed``; a reference
    student's ``mapping`` is its key in :data:`REFERENCE_STUDENTS`), fine-tune the teacher (``TEACHER, "teacher", 0,
    task, seed``) or select a recipe's rate (``recipe.SELECT``).  A tuple, so a job read back as a plain tuple (a
    process pool, the store) is equal to it and keys the same cell."""

    kind: str
    mapping: str
    distill_seed: int
    task: str
    seed: int

class CompareError(LayermapError):
    """A compare that cannot run as asked (a folder made with other settings, no mapping)."""


def student_dir(out: str | Path, mapping: str, distill_seed: int) -> Path:
    """``DIR/students/<genome>/`` (distillation seed 0) or ``DIR/students/<genome>_seed<d>/``."""
    return Path(out) / "students" / (mapping if distill_seed == 0 else f"{mapping}_seed{distill_seed}")


def _outputs_path(out: Path, job: Job) -> Path:
    """A cell's saved dev outputs: ``outputs/<mapping>/<task>_d<d>_s<seed>.npz``; the teacher's, one file per fine-tuning
    seed, ``outputs/teacher/<task>_s<seed>.npz`` (before issue 28 one file per task, which every seed overwrote)."""
    kind, mapping, d, task, seed = job
    name = f"{task}_s{seed}.npz" if kind == TEACHER else f"{task}_d{d}_s{seed}.npz"
    return out / "outputs" / mapping / name


def _legacy_teacher_outputs(out: Path, task: str) -> Path:
    """The teacher's dev outputs of a folder made before they were kept per seed: one file per task."""
    return out / "outputs" / TEACHER_MAPPING / f"{task}.npz"


def distills(config: Config) -> bool:
    """False where ``compare.max_steps`` and ``compare.epochs`` are both 0: the students are their initialisation."""
    return bool(config.compare.max_steps or config.compare.epochs)


def distill_settings(config: Config, seed: int) -> DistillSettings:
    """The full distillation's settings for distillation seed ``seed``."""
    c, d = config.compare, config.distill
    return DistillSettings(max_steps=c.max_steps, epochs=c.epochs, batch_size=c.batch_size, learning_rate=c.learning_rate,
                           warmup_ratio=c.warmup_ratio, weight_decay=d.weight_decay, max_grad_norm=d.max_grad_norm,
                           attention_weight=d.attention_weight, hidden_weight=d.hidden_weight,
                           embedding_weight=d.embedding_weight, seed=seed, checkpoint_every=c.checkpoint_every,
                           precision=d.precision)


# -- the driver -------------------------------------------------------------------------------------------


def resolve_mappings(texts: Sequence[str], student_layers: int, teacher_layers: int, init: str = "random") -> list[str]:
    """Genome texts or baseline names -> canonical genome texts (duplicates dropped, order kept); with ``init =
    "teacher"`` also split genomes, a split genome ``u(g)+g`` written as its coupled equal ``g``
    (:func:`layermap.extraction.canonical_text`)."""
    out: list[str] = []
    for text in texts:
        genome = canonical_text(parse_genome(text.strip(), teacher_layers, student_layers=student_layers, init=init))
        if genome not in out:
            out.append(genome)
    if not out:
        raise CompareError("no mapping to compare; give --mappings 2-4-6,1-2-3 or a run folder")
    return out


def _canonical(text: str, teacher_layers: int) -> str:
    """A run's genome text as a compare keys it (:func:`layermap.extraction.canonical_text`)."""
    return canonical_text(parse_genome(text, teacher_layers)) if "+" in text else text


def reference_students(init: str) -> tuple[str, ...]:
    """The reference rows' students (job keys): ``no-distillation`` for a random initialisation; with
    ``compare.init = "teacher"`` the plain truncation and the random student (:data:`REFERENCE_STUDENTS`)."""
    return (TRUNCATION, RANDOM) if init == "teacher" else (NO_DISTILL,)


def _describe_job(job: Job) -> str:
    kind, mapping, d, task, seed = job
    if kind == DISTILL:
        return f"distill {mapping} (seed {d})"
    if kind == TEACHER:
        return f"teacher fine-tune {task}"
    if kind == recipe.SELECT:
        return f"select the rate of {mapping} on {task} (grid rate {seed + 1})"
    return f"{mapping} {task} seed {seed}" + (f" (distillation seed {d})" if d else "")


def teacher_outputs(out: Path, tasks: Sequence[str], *, borrowed: bool) -> tuple[dict[str, Path | None], list[str]]:
    """task -> the dev outputs of the teacher fine-tuned with seed :data:`LOYALTY_SEED`, the one teacher every student
    cell's loyalty is measured against, and the tasks whose outputs exist only in an ambiguous old file.

    Why seed 0 and not the student cell's own seed: it is the teacher every folder has (``--teacher-finetune``
    fine-tunes it alone; the reference rows fine-tune it on every seed), so loyalty means the same in every folder
    and for every mapping.  A folder made before the outputs were kept per seed has one file per task; it is seed 0's
    only where the folder fine-tuned the teacher on seed 0 alone (made without reference rows) and did not copy it
    from another folder (``borrowed``); otherwise it holds whichever seed finished last, and loyalty is left out."""
    found, ambiguous = {}, []
    legacy_trusted = not borrowed and not _folder_settings_of(out).get("compare.references", False)
    for t in tasks:
        path, legacy = _outputs_path(out, Job(TEACHER, TEACHER_MAPPING, 0, t, LOYALTY_SEED)), _legacy_teacher_outputs(out, t)
        if path.is_file():
            found[t] = path
        elif legacy.is_file():
            found[t] = legacy if legacy_trusted else None
            if not legacy_trusted:
                ambiguous.append(t)
        else:
            found[t] = None
    return found, ambiguous


def _folder_settings_of(out: Path) -> dict:
    """The settings recorded in a compare folder's ``compare.json`` ({} where there is none)."""
    try:
        return json.loads((out / INFO_NAME).read_text("utf-8")).get("settings", {})
    except (OSError, ValueError):
        return {}
