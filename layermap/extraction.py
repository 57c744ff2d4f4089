"""Teacher-extracted students: what a gene means, the split genome, and the shapes the extraction can produce.

With ``student.init = "teacher"`` (Extract-Then-Distill) every student layer starts as a copy of a teacher layer
(:func:`layermap.distill.models.init_student_from_teacher`; the embeddings are the teacher's), so a genome says two
things per student layer: which teacher layer it **starts from** and which it **imitates**.

* A **coupled** genome (``search.genome = "coupled"``, the default, and every genome before this module) has one gene
  per student layer, ``g = (g_1 ... g_M)``: student layer m starts from and imitates teacher layer ``g_m``; gene 0 means
  no intermediate loss, and such a layer starts from the uniform mapping's teacher layer ``u(m)``
  (:func:`layermap.mapping.baseline`).  With ``student.init = "random"`` a gene only says what the layer imitates.
* A **split** genome (``search.genome = "split"``, only with ``student.init = "teacher"``) has two genes per student
  layer, searched apart: ``i_m`` (1..N, never 0: a layer must start from some teacher layer) and ``k_m`` (0..N, 0 = no
  loss).  Its text is the two parts joined by ``+``, ``1-2-3+2-4-6``: starts from 1-2-3, imitates 2-4-6.  ``+`` is
  neither a shell metacharacter nor special in a file name, and it differs from the shaped genome's ``:``
  (:mod:`layermap.shape`, ``L4-H256-A4-F1024:3-6-9-12``) and from the gene separator ``-``.  The order constraint
  (``search.constraint``) applies to the imitation part only.  A coupled genome ``g`` is the split genome
  ``u(g)+g`` (``u(g)``: ``g`` with each 0 replaced by the uniform mapping's layer), so ``2-4-6`` and ``2-4-6+2-4-6``
  give the same student and the same numbers.

**What the leading-slice extraction can produce.**  A student narrower than its teacher takes every tensor's leading
slice, ``W[:d_out, :d_in]`` and ``b[:d]``.  The teacher's query, key and value projections are laid out head by head
(head h owns output rows ``h*d_head .. (h+1)*d_head - 1``), so the leading ``d`` rows are exactly the first
``d / d_head`` teacher heads when the student's head size is the teacher's: each student head is then a teacher head
read on the first ``d`` residual dimensions.  With another head size a student head would be half a teacher head
(whose scores are no teacher head's) or two teacher heads summed into one score, scaled by another
``1/sqrt(d_head)``: not an extraction of the teacher at all.  So with ``student.init = "teacher"`` a student must have

* at most the teacher's layers (each starts from a distinct-or-repeated teacher layer, none beyond layer N),
* the teacher's head size: ``hidden_size = heads x d_head_teacher``, so the width is a whole number of teacher heads
  (MiniLM-L6, 12 heads of 32: 384 = 12 heads, 192 = 6 heads, 96 = 3 heads),
* at most the teacher's hidden and FFN sizes (FFN units are independent: any leading slice is a valid FFN).

:func:`check_extraction` says so in one sentence before any work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

from .errors import LayermapError
from .mapping import LayerMapping, MappingError, baseline, format_genes, parse_genes, validate_genes

SPLIT = "+"
GENOMES = ("coupled", "split")


class ExtractionError(LayermapError):
    """A student the teacher extraction cannot produce, or a split genome that does not fit; one sentence with the fix."""


@dataclass(frozen=True)
class SplitGenome:
    """A split genome: student layer m starts from teacher layer ``init[m-1]`` and imitates ``mapping.genes[m-1]``.

    It reads like a :class:`layermap.mapping.LayerMapping` where distillation needs one (``genes``, ``pairs``,
    ``teacher_layers_used``: the imitation part's), with ``init`` beside it."""

    init: tuple[int, ...]
    mapping: LayerMapping

    def __post_init__(self) -> None:
        object.__setattr__(self, "init", tuple(int(i) for i in self.init))
        check_init_genes(self.init, self.mapping.genes, self.mapping.teacher_layers)

    # -- the imitation part, as a LayerMapping reads --------------------------------------------------
    @property
    def genes(self) -> tuple[int, ...]:
        return self.mapping.genes

    @property
    def teacher_layers(self) -> int:
        return self.mapping.teacher_layers

    @property
    def student_layers(self) -> int:
        return self.mapping.student_layers

    @property
    def constraint(self) -> str:
        return self.mapping.constraint

    @property
    def embedding(self) -> bool:
        return self.mapping.embedding

    def pairs(self) -> list[tuple[int, int]]:
        return self.mapping.pairs()

    def teacher_layers_used(self) -> tuple[int, ...]:
        return self.mapping.teacher_layers_used()

    # -- text and JSON ----------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """Canonical text, ``1-2-3+2-4-6`` (starts from 1-2-3, imitates 2-4-6)."""
        return f"{format_genes(self.init)}{SPLIT}{self.mapping.text}"

    def __str__(self) -> str:
        return self.text

    @property
    def flat(self) -> tuple[int, ...]:
        """The 2M genes a genetic search varies: the init part, then the imitation part."""
        return self.init + self.mapping.genes

    @classmethod
    def from_flat(cls, genes: Sequence[int], teacher_layers: int, constraint: str = "free") -> "SplitGenome":
        genes = tuple(int(g) for g in genes)
        if len(genes) % 2 or not genes:
            raise ExtractionError(f"a split genome has two genes per student layer, got {len(genes)} genes")
        m = len(genes) // 2
        return cls(genes[:m], _imitation(genes[:m], genes[m:], teacher_layers, constraint))

    @classmethod
    def parse(cls, text: str, teacher_layers: int, *, student_layers: int | None = None, constraint: str = "free",
              embedding: bool = True) -> "SplitGenome":
        """``'1-2-3+2-4-6'`` -> a split genome (each part checked: the init part 1..N, the imitation part 0..N and the
        order constraint)."""
        if text.count(SPLIT) != 1:
            raise ExtractionError(f"split genome {text!r} needs exactly one '{SPLIT}' between the teacher layers the student "
                                  f"layers start from and those they imitate, e.g. 1-2-3{SPLIT}2-4-6")
        init_text, imitation_text = text.strip().split(SPLIT)
        try:
            init, genes = parse_genes(init_text), parse_genes(imitation_text)
        except MappingError:
            raise ExtractionError(f"split genome {text!r} is malformed; write the teacher layers the student layers start "
                                  f"from, '{SPLIT}', then those they imitate, each joined by '-', e.g. 1-2-3{SPLIT}2-4-6") from None
        check_init_genes(init, genes, teacher_layers)
        if student_layers is not None and len(init) != student_layers:
            raise ExtractionError(f"split genome {text!r} has {len(init)} genes per part but the student has "
                                  f"{student_layers} layers; give one gene per student layer in each part")
        return cls(init, _imitation(init, genes, teacher_layers, constraint, embedding))

    def to_dict(self, **metadata: object) -> dict:
        """The imitation part as :meth:`LayerMapping.to_dict` writes it (``genes``: what each layer imitates), with
        ``init_genes`` and the split text as ``mapping``."""
        d = self.mapping.to_dict(**metadata)
        d["mapping"] = self.text
        d["init_genes"] = list(self.init)
        d["genome"] = "split"
        if "metadata" in d:                      # keep the metadata last, as LayerMapping writes it
            d["metadata"] = d.pop("metadata")
        return d

    def to_json(self, path, **metadata: object) -> None:
        import json

        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(**metadata), f, indent=2)
            f.write("\n")


def genome_from_json(path) -> Genome:
    """A mapping file written by ``layermap export`` or ``distill``: a :class:`SplitGenome` where it holds
    ``init_genes``, else a :class:`LayerMapping` (:meth:`LayerMapping.from_json`, whose errors it keeps)."""
    import json

    mapping = LayerMapping.from_json(path)
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    init = data.get("init_genes") if isinstance(data, dict) else None
    if init is None:
        return mapping
    if not isinstance(init, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in init):
        raise ExtractionError(f"mapping file {str(path)!r}: 'init_genes' must be a list of teacher layer numbers such as "
                              f"[1, 2, 3], got {init!r}")
    try:
        return SplitGenome(tuple(init), mapping)
    except ExtractionError as exc:
        raise ExtractionError(f"mapping file {str(path)!r}: {exc}") from None


def _imitation(init: Sequence[int], genes: Sequence[int], teacher_layers: int, constraint: str,
               embedding: bool = True) -> LayerMapping:
    """The imitation part as a LayerMapping, its errors naming the split genome."""
    try:
        return LayerMapping(tuple(genes), teacher_layers, embedding=embedding, constraint=constraint)
    except MappingError as exc:
        raise ExtractionError(f"split genome {format_genes(init)}{SPLIT}{format_genes(genes)}, imitation part: "
                              f"{exc}") from None


def check_init_genes(init: Sequence[int], genes: Sequence[int], teacher_layers: int) -> None:
    """The init part of a split genome: one gene per imitation gene, each a teacher layer 1..N (never 0)."""
    text = f"{format_genes(init)}{SPLIT}{format_genes(genes)}"
    if len(init) != len(genes):
        raise ExtractionError(f"split genome {text} has {len(init)} init genes and {len(genes)} imitation genes; give one "
                              "of each per student layer")
    for m, i in enumerate(init, start=1):
        if i == 0:
            raise ExtractionError(f"split genome {text} starts student layer {m} from teacher layer 0, but every student "
                                  f"layer starts from a teacher layer 1..{teacher_layers} (0 = no loss belongs in the "
                                  f"imitation part, after '{SPLIT}'); give init gene {m} a teacher layer")
        if not 1 <= i <= teacher_layers:
            raise ExtractionError(f"split genome {text} starts student layer {m} from teacher layer {i}, but the teacher "
                                  f"has layers 1..{teacher_layers}; give init gene {m} a teacher layer between 1 and "
                                  f"{teacher_layers}")


Genome = Union[LayerMapping, SplitGenome]


def is_split(text: str) -> bool:
    """Whether a genome text is a split genome's (``1-2-3+2-4-6``)."""
    return SPLIT in text


def parse_genome(text: str, teacher_layers: int, *, student_layers: int | None = None, constraint: str = "free",
                 init: str = "teacher") -> Genome:
    """A genome text: a split genome (``1-2-3+2-4-6``, which needs ``init = "teacher"``), or a coupled one (genes or a
    baseline name, :meth:`layermap.mapping.LayerMapping.parse`)."""
    if is_split(text):
        genome = SplitGenome.parse(text, teacher_layers, student_layers=student_layers, constraint=constraint)
        return require_teacher_init(genome, init)
    return LayerMapping.parse(text, teacher_layers, student_layers=student_layers, constraint=constraint)


def require_teacher_init(genome: Genome, init: str, where: str = "mapping") -> Genome:
    """``genome``, refused in one sentence where it is split and the student is not initialised from the teacher."""
    if isinstance(genome, SplitGenome) and init != "teacher":
        raise ExtractionError(f"{where} {genome.text} is a split genome (the teacher layers the student layers start "
                              f"from, '{SPLIT}', those they imitate), which needs student.init = 'teacher' (distill: "
                              f"--init teacher); with a random initialisation give the imitation part alone, {genome.mapping.text}")
    return genome


def genome_text(genes: Sequence[int], student_layers: int, genome: str = "coupled") -> str:
    """The text of a search individual's genes: ``2-4-6`` (``search.genome = "coupled"``: M genes), or for a split
    genome (2M genes: the init part, then the imitation part) ``1-2-3+2-4-6``."""
    if genome != "split":
        return format_genes(genes)
    return f"{format_genes(genes[:student_layers])}{SPLIT}{format_genes(genes[student_layers:])}"


def genes_of(text: str) -> tuple[int, ...]:
    """The imitation genes of a genome text (coupled, split or shaped): what each student layer imitates."""
    body = text.split(":", 1)[1] if ":" in text else text
    return parse_genes(body.split(SPLIT, 1)[1] if is_split(body) else body)


def init_layers(genome: Genome) -> tuple[int, ...]:
    """The teacher layer each student layer starts from with ``student.init = "teacher"``: a split genome's init part;
    a coupled genome's genes, a 0 replaced by the uniform mapping's layer (as
    :func:`layermap.distill.models.init_student_from_teacher` does)."""
    if isinstance(genome, SplitGenome):
        return genome.init
    fallback = baseline("uniform", genome.student_layers, genome.teacher_layers)
    return tuple(g if g > 0 else u for g, u in zip(genome.genes, fallback))


def start_mapping(genome: Genome) -> LayerMapping:
    """What :func:`layermap.distill.models.init_student_from_teacher` takes to start each student layer from the layer
    the genome names: the genome itself when coupled, its init part (no gene 0) when split."""
    if isinstance(genome, SplitGenome):
        return LayerMapping(genome.init, genome.teacher_layers)
    return genome


def as_split(genome: Genome) -> SplitGenome:
    """The split genome equal to ``genome`` (a coupled ``g`` is ``u(g)+g``)."""
    if isinstance(genome, SplitGenome):
        return genome
    return SplitGenome(init_layers(genome), genome)


def canonical_text(genome: Genome) -> str:
    """The text a compare keys a genome by: a split genome that starts each layer where its coupled equal would
    (``u(g)+g``) is written ``g``, so the two are one student; any other genome keeps its text."""
    if isinstance(genome, SplitGenome) and genome.init == init_layers(genome.mapping):
        return genome.mapping.text
    return genome.text


def undistilled_student_text(text: str, teacher_layers: int, student_layers: int) -> str:
    """The text of the student a genome makes when nothing is distilled with ``student.init = "teacher"``: the layers
    it starts from (:func:`init_layers`) as a coupled genome, so ``0-0-6``, ``0-4-6`` and ``2-4-6`` (MiniLM-L6, 3
    layers) are all ``2-4-6`` and ``1-2-3+2-4-6`` is ``1-2-3``: one student, one evaluation.  A shaped genome's text,
    or one that does not parse, is its own."""
    if ":" in text:
        return text
    try:
        genome = parse_genome(text, teacher_layers, student_layers=student_layers)
    except LayermapError:
        return text
    return format_genes(init_layers(genome))


def truncation(student_layers: int, teacher_layers: int) -> LayerMapping:
    """The plain truncation: the bottom M teacher layers, ``1-2-..-M`` (what a user gets with no search and no
    distillation); a student deeper than the teacher has none."""
    return LayerMapping(baseline("bottom", student_layers, teacher_layers), teacher_layers)


# -- what a gene means, in words ---------------------------------------------------------------------
def _clause(layer: str, start: str | None, imitate: str) -> str:
    """The one sentence builder: ``student layer {layer}`` starts from / imitates / has no intermediate loss."""
    if imitate == "0":
        return (f"student layer {layer} starts from teacher layer {start} and has no intermediate loss" if start
                else f"student layer {layer} has no intermediate loss")
    if start is None:
        return f"student layer {layer} imitates teacher layer {imitate}"
    if start == imitate:
        return f"student layer {layer} starts from and imitates teacher layer {imitate}"
    return f"student layer {layer} starts from teacher layer {start} and imitates teacher layer {imitate}"


def gene_sentence(genome: Genome, init: str = "teacher") -> str:
    """What every gene of ``genome`` means, e.g. ``2-4-6: student layer 1 starts from and imitates teacher layer 2,
    student layer 2 starts from and imitates teacher layer 4, student layer 3 starts from and imitates teacher layer 6``
    (``init = "random"``: what each layer imitates)."""
    starts = init_layers(genome) if init == "teacher" else (None,) * genome.student_layers
    clauses = [_clause(str(m), None if s is None else str(s), str(k))
               for m, (s, k) in enumerate(zip(starts, genome.genes), start=1)]
    return f"{genome.text}: " + ", ".join(clauses)


def gene_legend(init: str = "teacher", genome: str = "coupled") -> str:
    """What a gene means in general, for a table's header: with teacher initialisation ``gene m = k: student layer m
    starts from and imitates teacher layer k`` (split: ``i+k``), and what gene 0 means."""
    if genome == "split":
        return (f"genome i{SPLIT}k: {_clause('m', 'i_m', 'k_m')} ({_clause('m', 'i_m', '0')} where k_m = 0)")
    if init != "teacher":
        return f"gene m = k: {_clause('m', None, 'k')} (0: no intermediate loss)"
    return (f"gene m = k: {_clause('m', 'k', 'k')} (0: {_clause('m', 'u(m)', '0')}, u the uniform mapping; "
            f"a split genome i{SPLIT}k: {_clause('m', 'i_m', 'k_m')})")


def describe_genome(text: str, teacher_layers: int, init: str) -> str | None:
    """:func:`gene_sentence` of a genome text (a shaped genome's after its shape), or None where the text does not parse
    (an output must never fail for want of the sentence)."""
    body = text.split(":", 1)[1] if ":" in text else text
    try:
        return gene_sentence(parse_genome(body, teacher_layers, init=init), init)
    except LayermapError:
        return None


# -- which students the extraction can produce ---------------------------------------------------------
def check_extraction(layers: int, hidden_size: int, heads: int, ffn: int, teacher_config, *,
                     what: str = "the student") -> None:
    """Refuse, in one sentence, a student that ``student.init = "teacher"`` cannot cut from the teacher (the module
    docstring says why): deeper or wider than the teacher, or with a head size other than the teacher's.  Sizes given
    as 0 are the teacher's (hidden, heads) or ``4 x hidden`` (FFN), as :meth:`StudentSpec.resolve` fills them."""
    n = int(teacher_config.num_hidden_layers)
    (hidden, heads, ffn), (t_hidden, t_heads, t_ffn) = _sizes(hidden_size, heads, ffn, teacher_config)
    head_size = t_hidden // t_heads
    fix = "or student.init = 'random'"
    if layers > n:
        raise ExtractionError(f"student.init = 'teacher' starts each student layer from a teacher layer, but {what} has "
                              f"{layers} layers and the teacher {n}; use at most {n} student layers {fix}")
    if hidden > t_hidden:
        raise ExtractionError(f"student.init = 'teacher' cuts {what} from the teacher's tensors, but its hidden size "
                              f"{hidden} is wider than the teacher's {t_hidden}; use a hidden size up to {t_hidden} {fix}")
    if ffn > t_ffn:
        raise ExtractionError(f"student.init = 'teacher' cuts {what} from the teacher's tensors, but its FFN size {ffn} "
                              f"is wider than the teacher's {t_ffn}; use an FFN size up to {t_ffn} {fix}")
    if hidden % head_size:
        raise ExtractionError(f"student.init = 'teacher' keeps whole teacher heads of size {head_size}, but {what}'s "
                              f"hidden size {hidden} is not a multiple of {head_size}; use a multiple of {head_size} "
                              f"(e.g. {max(head_size, hidden // head_size * head_size)}) {fix}")
    if hidden // heads != head_size or hidden % heads:
        raise ExtractionError(f"student.init = 'teacher' keeps whole teacher heads of size {head_size}, so a "
                              f"{hidden}-wide student has {hidden // head_size} heads, not {heads}; set student.heads = "
                              f"{hidden // head_size} (distill: --heads {hidden // head_size}) {fix}")


def slice_matters(init: str, hidden_size: int, heads: int, ffn: int, teacher_config) -> bool:
    """Whether ``student.slice`` shapes a student: initialised from the teacher (``init``) and narrower than it in
    residual width, heads or FFN units (sizes 0 filled as :meth:`StudentSpec.resolve` fills them).  Where it does not,
    the slice enters no fingerprint."""
    student, teacher = _sizes(hidden_size, heads, ffn, teacher_config)
    return init == "teacher" and student != teacher


def _sizes(hidden_size: int, heads: int, ffn: int, teacher_config) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(hidden, heads, FFN) of the student, sizes given as 0 filled as :meth:`StudentSpec.resolve` fills them (the
    teacher's hidden size and heads, ``4 x hidden``), and the same of the teacher."""
    t_hidden, t_heads = int(teacher_config.hidden_size), int(teacher_config.num_attention_heads)
    t_ffn = int(getattr(teacher_config, "intermediate_size", 4 * t_hidden))
    hidden = hidden_size or t_hidden
    return (hidden, heads or t_heads, ffn or 4 * hidden), (t_hidden, t_heads, t_ffn)


def check_config_extraction(config, teacher_config) -> None:
    """:func:`check_extraction` of ``config``'s student where it is initialised from the teacher (``student.init``, or
    for the final stage ``compare.init``); nothing otherwise.  (``search.genome = "split"`` without teacher
    initialisation is refused earlier, by the settings themselves.)"""
    s = config.student
    if "teacher" in (s.init, config.compare.init or s.init):
        check_extraction(s.layers, s.hidden_size, s.heads, s.ffn, teacher_config)


def baseline_genomes(student_layers: int, teacher_layers: int, genome: str = "coupled") -> dict[str, str]:
    """Baseline name -> its genome text as a search of ``genome`` kind writes it: coupled ``2-4-6``, split
    ``2-4-6+2-4-6`` (the last-layer baseline ``0-0-6`` starts from the uniform mapping's layers: ``2-4-6+0-0-6``).
    Empty for a student deeper than the teacher."""
    from .mapping import baselines

    if student_layers > teacher_layers:
        return {}
    out = {}
    for name, genes in baselines(student_layers, teacher_layers).items():
        mapping = LayerMapping(genes, teacher_layers)
        out[name] = as_split(mapping).text if genome == "split" else mapping.text
    return out


def baseline_texts(student_layers: int, teacher_layers: int, genome: str = "coupled") -> dict[str, str]:
    """Genome text -> baseline name (:func:`baseline_genomes` turned round, as
    :func:`layermap.mapping.baseline_names`): which evaluated genomes of a search of ``genome`` kind are baselines."""
    return {text: name for name, text in baseline_genomes(student_layers, teacher_layers, genome).items()}
