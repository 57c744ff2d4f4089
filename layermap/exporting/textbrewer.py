"""TextBrewer's ``intermediate_matches`` for a mapping (``layermap export --format textbrewer``), the provenance
written beside them and the adaptor module: ``adaptor_template.py`` in this package, a real module shipped as
package data, filled in for the export.  Imports ``mapping``, ``extraction``, ``storage`` and ``errors``.
"""

from __future__ import annotations

import json
from importlib import resources

from ..errors import LayermapError
from ..extraction import Genome, SplitGenome, init_layers
from ..mapping import LayerMapping, format_genes
from ..storage.store import RunRow

ATTENTION_INDEXES = ("hf", "textbrewer-examples")
NUMBERING = {
    "hf": ("hidden 0 = embeddings, k = layer k (outputs.hidden_states); attention k-1 = layer k (outputs.attentions, "
           "Hugging Face's 0-based tuple): the adaptor passes both tuples as they are"),
    "textbrewer-examples": ("hidden 0 = embeddings, k = layer k (outputs.hidden_states); attention k = layer k (as in "
                            "TextBrewer's examples/matches.py): the adaptor prepends an unused entry to "
                            "outputs.attentions so that entry k is layer k"),
}


ATTENTION_FEATURE = (
    "TextBrewer's attention_mse compares whatever the adaptor returns as 'attention'. layermap's fitness distilled "
    "TinyBERT's attention scores before the softmax; Hugging Face's outputs.attentions (output_attentions=True, eager "
    "attention) are the probabilities after it (and after attention dropout in training mode). adaptor_T/adaptor_S "
    "pass those probabilities, so they train as they are but distil another attention target than the fitness "
    "measured; score_adaptor(model) gives the pre-softmax scores Q K^T / sqrt(d_head) from hooks on each layer's "
    "query and key, the target layermap's fitness used.")
HEADS_NOTE = ("TextBrewer's attention_mse compares (B, H, L, L) maps elementwise, so teacher and student must agree in "
              "head count. When they differ, layermap's fitness averaged both sides over heads; the adaptors do the "
              "same (AVERAGE_HEADS in the adaptor module: set from the run's head counts, else decided by prepare() "
              "from the two models it saw), giving (B, 1, L, L) maps.")
INIT_NOTE = ("The run initialised each student from the teacher (student.init = 'teacher'): intermediate_matches say "
             "what each student layer imitates (a split genome's imitation part); TextBrewer does not initialise the "
             "student, so before distilling copy teacher layer starts_from[m-1] (1-based, '-'-separated) into student "
             "layer m and the teacher's embeddings into the student's, where the student is narrower the units "
             "student.slice names (leading: each tensor's leading slice; importance: layermap.distill.slicing), as "
             "layermap did (layermap.distill.models.init_student_from_teacher).")
PROJECTION_NOTE = ("TextBrewer builds one linear projection per hidden match (proj); layermap's fitness shares one "
                   "projection across all layers.")


def textbrewer_files(mapping: Genome, row: RunRow, init: str, metadata: dict,
                     attention_index: str = "hf") -> tuple[str, dict, str]:
    """The three files of a TextBrewer export of ``mapping`` (the best of the run ``row``, whose students start as
    ``init`` says): the matches file's text (exactly ``DistillationConfig``'s keys), the provenance beside it
    (``metadata`` and what the numbering, attention feature, projection and initialisation mean) and the adaptor
    module's source."""
    # the general stage has no prediction-layer loss (kd_loss_weight 0)
    payload = {"intermediate_matches": textbrewer_matches(mapping, *widths(row), attention_index=attention_index),
               "kd_loss_weight": 0, "hard_label_weight": 0}
    beside = {"mapping": mapping.text, **metadata, "attention_index": attention_index,
              "layer_numbering": NUMBERING[attention_index], "attention_feature": ATTENTION_FEATURE,
              "projection": PROJECTION_NOTE}
    if init == "teacher":                  # the matches say what each layer imitates; the start is the user's to make
        beside.update(imitates=format_genes(mapping.genes), starts_from=format_genes(init_layers(mapping)),
                      initialisation=INIT_NOTE, **_slice_of(row))
    if isinstance(mapping, SplitGenome):
        beside["init_genes"] = list(mapping.init)
    average = heads_differ(row)
    beside["attention_heads"] = HEADS_NOTE
    return (json.dumps(payload, indent=2) + "\n", beside,
            render_adaptor(mapping, attention_index, metadata.get("teacher"), average))


def textbrewer_matches(mapping: LayerMapping, student_width: int, teacher_width: int,
                       attention_index: str = "hf") -> list[dict]:
    """TextBrewer ``intermediate_matches`` for a mapping: a hidden-state MSE per (student m, teacher k) pair,
    embeddings (0, 0) included, through a linear projection when the widths differ, and an attention MSE
    per non-embedding pair, numbered as ``attention_index`` says (``hf``: m-1 and k-1; ``textbrewer-examples``:
    m and k)."""
    if attention_index not in ATTENTION_INDEXES:
        raise LayermapError(f"unknown attention index {attention_index!r}; use one of {', '.join(ATTENTION_INDEXES)}")
    shift = 1 if attention_index == "hf" else 0
    matches = []
    for m, k in mapping.pairs():
        hidden = {"layer_T": k, "layer_S": m, "feature": "hidden", "loss": "hidden_mse", "weight": 1}
        if student_width != teacher_width:
            hidden["proj"] = ["linear", student_width, teacher_width]
        matches.append(hidden)
        if m > 0:
            matches.append({"layer_T": k - shift, "layer_S": m - shift, "feature": "attention", "loss": "attention_mse",
                            "weight": 1})
    return matches


def adaptor_template() -> str:
    """The adaptor module's template (``adaptor_template.py``, shipped as package data), from its docstring on."""
    text = resources.files(__package__).joinpath("adaptor_template.py").read_text("utf-8")
    return text[text.index('"""'):]


def render_adaptor(mapping: LayerMapping, attention_index: str, teacher: str | None = None,
                   average_heads: bool | None = None) -> str:
    """The source of ``<name>.adaptor.py``: TextBrewer adaptors whose 'attention' numbering matches the export, and
    that average attention over heads when the head counts differ (``average_heads``; None: decided by the models
    ``prepare`` sees).  The template's docstring placeholders are filled, then its three settings are set."""
    prepend = "(None,) + tuple(attentions)" if attention_index == "textbrewer-examples" else "tuple(attentions)"
    text = (adaptor_template().replace("{MAPPING}", mapping.text).replace("{TEACHER}", str(teacher or "?"))
            .replace("{INDEX}", attention_index).replace("{NUMBERING}", NUMBERING[attention_index]))
    for setting, value in (('ATTENTION_INDEX = "hf"\n', f'ATTENTION_INDEX = "{attention_index}"\n'),
                           ("AVERAGE_HEADS = None ", f"AVERAGE_HEADS = {average_heads!r} "),
                           ('"attention": tuple(attentions)}', f'"attention": {prepend}}}')):
        if text.count(setting) != 1:
            raise RuntimeError(f"adaptor_template.py no longer holds {setting!r} once; render_adaptor must follow it")
        text = text.replace(setting, value)
    return text


def heads_differ(row: RunRow) -> bool | None:
    """Whether the run's student has another head count than its teacher; None when the run does not record both."""
    d = row.description
    student = d.get("student") if isinstance(d.get("student"), dict) else {}
    teacher, own = d.get("teacher_heads"), student.get("heads")
    return None if not teacher or not own else int(teacher) != int(own)


def _slice_of(row: RunRow) -> dict:
    """``{"slice": ...}``: which teacher units a narrower extracted student kept (the evaluator's description names a
    slice only where it shaped the student and was not the leading one; a narrower student of a run without it was
    cut by the leading slice); nothing for a student as wide as the teacher."""
    student = row.description.get("student") if isinstance(row.description.get("student"), dict) else {}
    if student.get("slice"):
        return {"slice": student["slice"]}
    own, teacher = widths(row)
    return {"slice": "leading"} if own < teacher else {}


def widths(row: RunRow) -> tuple[int, int]:
    """(student, teacher) hidden sizes from the evaluator's description, else from the config."""
    d = row.description
    teacher = int(d.get("teacher_hidden_size") or 0)
    student = d.get("student") if isinstance(d.get("student"), dict) else {}
    width = int(student.get("hidden_size") or d.get("student_hidden_size") or row.config.get("student", {}).get("hidden_size") or 0)
    if teacher and not width:
        width = teacher                   # student.hidden_size = 0 means the teacher's width
    if not teacher and width:
        raise LayermapError(f"run {row.run_id} does not record the teacher's hidden size, so the projection of a "
                            f"{width}-wide student cannot be written; export --format json instead")
    return width, teacher or width
