"""What ``layermap export`` writes: the best mapping with its provenance, or TextBrewer ``intermediate_matches``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..distill.identity import teacher_label
from ..errors import LayermapError
from ..extraction import Genome, SplitGenome, gene_sentence, init_layers
from ..mapping import LayerMapping, format_genes
from ..storage.records import EvaluationRecord
from .results import SearchResult, load_result
from ..storage.store import RunRow
from ..storage.runs import open_run

FORMATS = ("json", "textbrewer")
ATTENTION_INDEXES = ("hf", "textbrewer-examples")
DEFAULT_NAMES = {"json": "best_mapping.json", "textbrewer": "intermediate_matches.json"}


@dataclass(frozen=True)
class Rendered:
    """An export before it is written: the file's text and, for TextBrewer, the provenance beside it."""

    mapping: Genome
    fitness: float
    text: str
    provenance: dict | None
    adaptor: str | None = None            # TextBrewer: the adaptor module's source (written as <name>.adaptor.py)
    replicates: int = 1        # seed sets the fitness averages


@dataclass(frozen=True)
class Exported:
    """What :func:`export_run` wrote."""

    mapping: Genome
    fitness: float
    path: Path
    provenance_path: Path | None
    adaptor_path: Path | None = None
    replicates: int = 1        # seed sets the fitness averages


def render_export(run_dir: str | Path, format: str = "json", attention_index: str = "hf") -> Rendered:
    """The best mapping of a run as ``format`` (``json``: the mapping with its provenance; ``textbrewer``:
    exactly ``DistillationConfig``'s keys, so that ``DistillationConfig.from_json_file`` loads it, with the
    provenance and the adaptor module kept apart; its attention matches count layers as ``attention_index``
    says, see :data:`ATTENTION_INDEXES`)."""
    if format not in FORMATS:
        raise LayermapError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    if attention_index not in ATTENTION_INDEXES:
        raise LayermapError(f"unknown attention index {attention_index!r}; use one of {', '.join(ATTENTION_INDEXES)}")
    _, store, row = open_run(run_dir)
    with store:
        result = load_result(store, row, run_dir)
    if result.best_record is None:
        raise LayermapError(f"run folder {run_dir} has no successful evaluation yet ({result.failed} failed); let "
                            f"'layermap evolve --resume {run_dir}' finish some, or see 'layermap show {run_dir}'")
    mapping = result.best_mapping
    metadata = provenance(row, result)
    if format == "json":
        return Rendered(mapping, result.best_record.fitness, json.dumps(mapping.to_dict(**metadata), indent=2) + "\n", None,
                        replicates=result.best_record.seed_sets)
    # the general stage has no prediction-layer loss (kd_loss_weight 0)
    payload = {"intermediate_matches": textbrewer_matches(mapping, *widths(row), attention_index=attention_index),
               "kd_loss_weight": 0, "hard_label_weight": 0}
    beside = {"mapping": mapping.text, **metadata, "attention_index": attention_index,
              "layer_numbering": NUMBERING[attention_index], "attention_feature": ATTENTION_FEATURE,
              "projection": PROJECTION_NOTE}
    if result.init == "teacher":                  # the matches say what each layer imitates; the start is the user's to make
        beside.update(imitates=format_genes(mapping.genes), starts_from=format_genes(init_layers(mapping)),
                      initialisation=INIT_NOTE)
    if isinstance(mapping, SplitGenome):
        beside["init_genes"] = list(mapping.init)
    average = heads_differ(row)
    beside["attention_heads"] = HEADS_NOTE
    return Rendered(mapping, result.best_record.fitness, json.dumps(payload, indent=2) + "\n", beside,
                    render_adaptor(mapping, attention_index, metadata.get("teacher"), average), result.best_record.seed_sets)


def export_run(run_dir: str | Path, path: str | Path | None = None, format: str = "json",
               attention_index: str = "hf") -> Exported:
    """Write the best mapping of the run in ``run_dir`` to ``path`` (default: ``best_mapping.json`` or
    ``intermediate_matches.json`` in the run folder); for TextBrewer, the provenance goes to
    ``<name>.provenance.json`` and the adaptors to ``<name>.adaptor.py`` beside it."""
    rendered = render_export(run_dir, format, attention_index)
    default = DEFAULT_NAMES[format]
    path = Path(path) if path else Path(run_dir) / default
    if path.is_dir():
        raise LayermapError(f"-o {path} is a folder; give a file name, e.g. -o {path / default}")
    if not path.parent.is_dir():
        raise LayermapError(f"-o {path}: the folder {path.parent} does not exist; create it first or write elsewhere")
    try:
        path.write_text(rendered.text, encoding="utf-8")
        sibling = adaptor = None
        if rendered.provenance is not None:
            sibling = path.with_name(f"{path.stem}.provenance.json")
            sibling.write_text(json.dumps(rendered.provenance, indent=2) + "\n", encoding="utf-8")
        if rendered.adaptor is not None:
            adaptor = path.with_name(f"{path.stem}.adaptor.py")
            adaptor.write_text(rendered.adaptor.replace("THIS_FILE.json", path.name)
                               .replace("THIS_FILE.adaptor.py", adaptor.name), encoding="utf-8")
    except OSError as exc:
        raise LayermapError(f"cannot write {path} ({exc.strerror or exc}); check the folder's permissions and free "
                            "disk space") from None
    return Exported(rendered.mapping, rendered.fitness, path, sibling, adaptor, rendered.replicates)


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
             "layer m and the teacher's embeddings into the student's, each tensor's leading slice where the student "
             "is narrower, as layermap did (layermap.distill.models.init_student_from_teacher).")
PROJECTION_NOTE = ("TextBrewer builds one linear projection per hidden match (proj); layermap's fitness shares one "
                   "projection across all layers.")


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


def render_adaptor(mapping: LayerMapping, attention_index: str, teacher: str | None = None,
                   average_heads: bool | None = None) -> str:
    """The source of ``<name>.adaptor.py``: TextBrewer adaptors whose 'attention' numbering matches the export, and
    that average attention over heads when the head counts differ (``average_heads``; None: decided by the models
    ``prepare`` sees)."""
    prepend = "(None,) + tuple(attentions)" if attention_index == "textbrewer-examples" else "tuple(attentions)"
    return (ADAPTOR_TEMPLATE.replace("{MAPPING}", mapping.text).replace("{TEACHER}", str(teacher or "?"))
            .replace("{INDEX}", attention_index).replace("{NUMBERING}", NUMBERING[attention_index])
            .replace("{ATTENTIONS}", prepend).replace("{AVERAGE}", repr(average_heads)))


def heads_differ(row: RunRow) -> bool | None:
    """Whether the run's student has another head count than its teacher; None when the run does not record both."""
    d = row.description
    student = d.get("student") if isinstance(d.get("student"), dict) else {}
    teacher, own = d.get("teacher_heads"), student.get("heads")
    return None if not teacher or not own else int(teacher) != int(own)


ADAPTOR_TEMPLATE = '''"""TextBrewer adaptors for the layer mapping {MAPPING} that layermap exported (teacher {TEACHER}).

Numbering of the matches beside this file ({INDEX}): {NUMBERING}.

    import importlib.util
    spec = importlib.util.spec_from_file_location("layermap_adaptor", "THIS_FILE.adaptor.py")
    adaptors = importlib.util.module_from_spec(spec); spec.loader.exec_module(adaptors)
    adaptors.prepare(teacher); adaptors.prepare(student)   # hidden states + (eager) attentions in every output
    distiller = GeneralDistiller(train_config, DistillationConfig.from_json_file("THIS_FILE.json"),
                                 teacher, student, adaptors.adaptor_T, adaptors.adaptor_S)

adaptor_T / adaptor_S pass Hugging Face's outputs.attentions: probabilities after the softmax.  layermap's
fitness distilled TinyBERT's attention scores before the softmax; for that target use
adaptors.score_adaptor(teacher) / adaptors.score_adaptor(student) instead (hooks on every layer's query and key).
Batches are dicts of the models' keyword arguments (input_ids, attention_mask, ...); the attention_mask is
passed on as TextBrewer's inputs_mask, so padding is left out of every loss.  Give it: without inputs_mask
TextBrewer's attention_mse sets every value <= -0.001 to 0 (it expects scores with -10000 on padding), which
would also zero the negative pre-softmax scores of score_adaptor.  score_adaptor's hooks stay on the model.
When teacher and student have different head counts, every attention map is averaged over its heads, (B, 1, L, L),
as layermap's fitness compared them (TextBrewer's attention_mse needs equal shapes).
"""

import torch

ATTENTION_INDEX = "{INDEX}"
AVERAGE_HEADS = {AVERAGE}          # True / False from the run's head counts; None: prepare() decides from the models
_HEADS = set()


def prepare(model):
    """Make a Hugging Face encoder return every hidden state and (eager) attention probabilities; notes its head
    count (two models of different head counts: attention is averaged over heads)."""
    _HEADS.add(model.config.num_attention_heads)
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")      # sdpa/flash attention return no attention probabilities
    else:
        model.config._attn_implementation = "eager"
    model.config.output_hidden_states = True
    model.config.output_attentions = True
    return model


def _features(batch, outputs, attentions):
    if outputs.hidden_states is None or attentions is None:
        raise ValueError("the model returned no hidden states or attentions: call prepare(model) on it first")
    features = {"hidden": tuple(outputs.hidden_states), "attention": {ATTENTIONS}}
    if AVERAGE_HEADS or (AVERAGE_HEADS is None and len(_HEADS) > 1):
        features["attention"] = tuple(None if a is None else a.mean(dim=1, keepdim=True) for a in features["attention"])
    if isinstance(batch, dict) and batch.get("attention_mask") is not None:
        features["inputs_mask"] = batch["attention_mask"]
    return features


def adaptor_T(batch, outputs):
    """The teacher's features: hidden states and attention probabilities (outputs.attentions)."""
    return _features(batch, outputs, outputs.attentions)


adaptor_S = adaptor_T       # the student's features are read the same way


def score_adaptor(model):
    """An adaptor for ``model`` whose 'attention' is the pre-softmax scores Q K^T / sqrt(d_head) of every layer
    (what layermap's fitness distilled), recorded by forward hooks on each layer's query and key."""
    qk = {}
    layers = model.base_model.encoder.layer
    heads = model.config.num_attention_heads

    def hook(index, which):
        def record(_module, _inputs, output):
            qk.setdefault(index, {})[which] = output
        return record

    for index, layer in enumerate(layers):
        layer.attention.self.query.register_forward_hook(hook(index, "q"))
        layer.attention.self.key.register_forward_hook(hook(index, "k"))

    def scores(index):
        q, k = qk[index]["q"], qk[index]["k"]
        b, n, d = q.shape
        q = q.view(b, n, heads, d // heads).transpose(1, 2)
        k = k.view(b, n, heads, d // heads).transpose(1, 2)
        return torch.matmul(q, k.transpose(-1, -2)) / (d // heads) ** 0.5

    def adaptor(batch, outputs):
        return _features(batch, outputs, [scores(i) for i in range(len(layers))])

    return adaptor
'''


def record_entry(record: EvaluationRecord) -> dict:
    """A record as ``show --json`` and ``export`` give it; ``replicates`` = the seed sets its fitness averages (the
    mean of ``fitness_seed_sets``, seed set -> fitness); ``fitness_replicates`` = fine-tuning seeds inside one."""
    return {"mapping": record.genome, "fitness": record.fitness, "fitness_stderr": record.fitness_stderr,
            "replicates": record.seed_sets,
            "fitness_seed_sets": {str(k): v for k, v in sorted(record.seed_set_fitness.items())} or {str(record.seed_set): record.fitness},
            "fitness_replicates": record.fitness_replicates,
            "tasks": {name: {"score": t.score, "metrics": t.metrics, "replicates": t.replicates, "std": t.std}
                      for name, t in record.tasks.items()}}


def provenance(row: RunRow, result: SearchResult) -> dict:
    """Where the best mapping came from; with teacher initialisation also what its genes mean (``gene_meaning``, the
    sentence :func:`layermap.extraction.gene_sentence` builds)."""
    record = result.best_record
    identity = row.description.get("teacher_identity")            # runs before the label recorded none
    meaning = gene_sentence(result.best_mapping, "teacher") if result.init == "teacher" else None
    return {
        "teacher": teacher_label(row.description.get("teacher")), **({"teacher_identity": identity} if identity else {}),
        "student": row.description.get("student"), **({"gene_meaning": meaning} if meaning else {}),
        "fitness": record.fitness, "fitness_stderr": record.fitness_stderr, "replicates": record.seed_sets,
        "tasks": record_entry(record)["tasks"], "fingerprint": row.fingerprint,
        "run_id": row.run_id, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": "layermap evolve",
        **({"references": result.references.to_json(),
            "headroom": result.references.headroom(record.task_scores)}
           if result.references is not None else {}),
    }


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
