"""Student shapes: the second half of a genome when the search chooses the student, not only its mapping.

A :class:`StudentShape` is (layers M, hidden size, heads, FFN size); its canonical text is
``L4-H256-A4-F1024``.  A :class:`ShapedGenome` is a shape and its M mapping genes, text
``L4-H256-A4-F1024:3-6-9-12``.  A genome of a fixed-shape search keeps the plain mapping text
(``3-6-9-12``, :mod:`layermap.mapping`), so every existing run and store reads as before.

A :class:`ShapeGrid` is the set of shapes a search may choose from (the ``[shape]`` settings, resolved
against the teacher).  Defaults follow the anchors (AutoTinyBERT's space, capped by the teacher):

* layers 1 .. N (the teacher's depth);
* hidden sizes in steps of 64 (``shape.hidden_step``) up to the teacher's hidden size;
* heads: every count up to the teacher's that divides the hidden size;
* FFN sizes ``r * hidden`` for r in 1.5, 2, 2.5, 3, 3.5, 4 (rounded to whole units).

A shape belongs to the grid when each of its sizes is one of the grid's for its hidden size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Sequence

from .errors import LayermapError
from .mapping import format_genes, parse_genes, validate_genes

DEFAULT_FFN_RATIOS = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
DEFAULT_HIDDEN_STEP = 64
_SHAPE_RE = re.compile(r"L(\d+)-H(\d+)-A(\d+)-F(\d+)")


class ShapeError(LayermapError):
    """A student shape or shape grid a user gave that cannot be built; the message says how to fix it."""


@dataclass(frozen=True)
class StudentShape:
    """The size of a student encoder.  Field names match :class:`layermap.distill.models.StudentSpec`."""

    layers: int
    hidden_size: int
    heads: int
    ffn: int

    def __post_init__(self) -> None:
        for name in ("layers", "hidden_size", "heads", "ffn"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ShapeError(f"student shape {name} must be a whole number >= 1, got {value!r}")
        if self.hidden_size % self.heads:
            raise ShapeError(f"student shape {self.text}: hidden size {self.hidden_size} is not divisible by its "
                             f"{self.heads} heads; pick a head count that divides the hidden size")

    @property
    def text(self) -> str:
        """Canonical text, e.g. ``L4-H256-A4-F1024``."""
        return f"L{self.layers}-H{self.hidden_size}-A{self.heads}-F{self.ffn}"

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> "StudentShape":
        match = _SHAPE_RE.fullmatch(text.strip())
        if not match:
            raise ShapeError(f"student shape {text!r} is malformed; write L<layers>-H<hidden>-A<heads>-F<ffn>, "
                             "e.g. L4-H256-A4-F1024")
        return cls(*(int(g) for g in match.groups()))

    def replace(self, **sizes: int) -> "StudentShape":
        return StudentShape(**{**self.to_dict(), **sizes})

    def to_dict(self) -> dict:
        return {"layers": self.layers, "hidden_size": self.hidden_size, "heads": self.heads, "ffn": self.ffn}


@dataclass(frozen=True)
class ShapedGenome:
    """A student shape and its mapping: ``genes[m-1]`` is the teacher layer student layer m imitates."""

    shape: StudentShape
    genes: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "genes", tuple(int(g) for g in self.genes))
        if len(self.genes) != self.shape.layers:
            raise ShapeError(f"genome {self.shape.text}:{format_genes(self.genes)} has {len(self.genes)} genes for "
                             f"{self.shape.layers} layers; give one gene per student layer")

    @property
    def text(self) -> str:
        """Canonical text, e.g. ``L4-H256-A4-F1024:3-6-9-12``."""
        return f"{self.shape.text}:{format_genes(self.genes)}"

    __str__ = StudentShape.__str__

    @classmethod
    def parse(cls, text: str, teacher_layers: int | None = None, constraint: str = "free") -> "ShapedGenome":
        """``'L4-H256-A4-F1024:3-6-9-12'`` -> a genome; with ``teacher_layers`` the genes are checked too."""
        if ":" not in text:
            raise ShapeError(f"shaped genome {text!r} has no ':'; write shape:mapping, e.g. L4-H256-A4-F1024:3-6-9-12")
        shape_text, genes_text = text.strip().split(":", 1)
        genome = cls(StudentShape.parse(shape_text), parse_genes(genes_text))
        if teacher_layers is not None:
            validate_genes(genome.genes, teacher_layers, constraint)
        return genome


@dataclass(frozen=True)
class ShapeGrid:
    """The shapes a search may choose: ``layers``, ``hidden_sizes``, ``heads`` (candidates, each hidden size
    takes those that divide it) and ``ffn_ratios`` (FFN = ratio x hidden)."""

    layers: tuple[int, ...]
    hidden_sizes: tuple[int, ...]
    heads: tuple[int, ...]
    ffn_ratios: tuple[float, ...] = DEFAULT_FFN_RATIOS
    head_size: int = 0             # > 0: every shape has heads of this size (student.init = "teacher": the teacher's)

    def __post_init__(self) -> None:
        for name in ("layers", "hidden_sizes", "heads", "ffn_ratios"):
            values = tuple(sorted(set(getattr(self, name))))
            if not values:
                raise ShapeError(f"the shape grid's {name} is empty; give at least one value")
            if min(values) <= 0:
                raise ShapeError(f"the shape grid's {name} must be positive, got {min(values)}")
            object.__setattr__(self, name, values)
        if not self.head_size:
            check_divisible(self.hidden_sizes, self.heads)
        else:
            for h in self.hidden_sizes:
                if h % self.head_size or h // self.head_size not in self.heads:
                    raise ShapeError(f"shape grid hidden size {h} cannot be cut from whole teacher heads of size "
                                     f"{self.head_size} among the head counts {', '.join(map(str, self.heads))} "
                                     f"(student.init = 'teacher' keeps the teacher's head size); use hidden sizes that "
                                     f"are multiples of {self.head_size} or student.init = 'random'")

    def heads_for(self, hidden: int) -> tuple[int, ...]:
        """The grid's head counts that divide ``hidden`` (with ``head_size``: the one count of that head size)."""
        if self.head_size:
            return (hidden // self.head_size,) if hidden % self.head_size == 0 else ()
        return tuple(a for a in self.heads if hidden % a == 0)

    def ffns_for(self, hidden: int) -> tuple[int, ...]:
        """The grid's FFN sizes for ``hidden`` (``round(ratio * hidden)``, distinct, ascending)."""
        return tuple(sorted({max(1, round(r * hidden)) for r in self.ffn_ratios}))

    def contains(self, shape: StudentShape) -> bool:
        return (shape.layers in self.layers and shape.hidden_size in self.hidden_sizes
                and shape.heads in self.heads_for(shape.hidden_size) and shape.ffn in self.ffns_for(shape.hidden_size))

    def shapes(self) -> Iterator[StudentShape]:
        """Every shape of the grid (layers, then hidden, heads, FFN ascending)."""
        for m in self.layers:
            for h in self.hidden_sizes:
                for a in self.heads_for(h):
                    for f in self.ffns_for(h):
                        yield StudentShape(m, h, a, f)

    @property
    def size(self) -> int:
        """Number of shapes (not genomes) in the grid."""
        return len(self.layers) * sum(len(self.heads_for(h)) * len(self.ffns_for(h)) for h in self.hidden_sizes)

    def nearest(self, shape: StudentShape) -> StudentShape:
        """The grid shape nearest ``shape``; its FFN keeps its ratio to the hidden size (see :meth:`fit`)."""
        hidden = _nearest(self.hidden_sizes, shape.hidden_size)
        return self.fit(shape.layers, hidden, shape.heads, shape.ffn * hidden / shape.hidden_size)

    def fit(self, layers: int, hidden_size: int, heads: int, ffn: float) -> StudentShape:
        """The grid shape nearest these sizes, size by size: layers and hidden to the nearest grid value, heads to the
        nearest grid count that divides the hidden size, FFN to the nearest grid size for it (smaller on ties)."""
        hidden = _nearest(self.hidden_sizes, hidden_size)
        return StudentShape(_nearest(self.layers, layers), hidden, _nearest(self.heads_for(hidden), heads),
                            _nearest(self.ffns_for(hidden), ffn))

    @classmethod
    def resolve(cls, *, teacher_layers: int, teacher_hidden: int, teacher_heads: int, teacher_ffn: int,
                layers: Sequence[int] = (), hidden_sizes: Sequence[int] = (), heads: Sequence[int] = (),
                ffn_ratios: Sequence[float] = DEFAULT_FFN_RATIOS, hidden_step: int = DEFAULT_HIDDEN_STEP,
                init: str = "random") -> "ShapeGrid":
        """The grid of the ``[shape]`` settings for a teacher; empty lists take the defaults (module docstring).

        With ``init = "teacher"`` every shape keeps the teacher's head size (heads = hidden / the teacher's head size:
        the leading slice of the teacher's projections is then whole teacher heads, :mod:`layermap.extraction`), so
        ``heads`` only has to hold those counts.

        Raises:
            ShapeError: a layer count deeper than the teacher; with ``init = "teacher"``, a hidden or FFN size
                wider than the teacher's (its tensors are cut from the teacher's, which cannot grow), or a hidden size
                that is no whole number of teacher heads.
        """
        layers = tuple(layers) or tuple(range(1, teacher_layers + 1))
        hidden_sizes = tuple(hidden_sizes) or tuple(range(hidden_step, teacher_hidden + 1, hidden_step)) or (teacher_hidden,)
        head_size = teacher_hidden // teacher_heads if init == "teacher" else 0
        if head_size and not heads:
            heads = tuple(sorted({max(1, h // head_size) for h in hidden_sizes}))
        heads = tuple(heads) or tuple(range(1, teacher_heads + 1))
        if max(layers) > teacher_layers:
            raise ShapeError(f"shape.layers has {max(layers)} layers but the teacher has {teacher_layers}; use layer "
                             f"counts 1..{teacher_layers}")
        grid = cls(layers=layers, hidden_sizes=hidden_sizes, heads=heads, ffn_ratios=tuple(ffn_ratios),
                   head_size=head_size)
        if init == "teacher":
            if max(grid.hidden_sizes) > teacher_hidden:
                raise ShapeError(f"shape.hidden_sizes has {max(grid.hidden_sizes)}, wider than the teacher's "
                                 f"{teacher_hidden}, but student.init = 'teacher' cuts the student from the teacher; "
                                 f"use hidden sizes up to {teacher_hidden} or student.init = 'random'")
            widest = max(grid.ffns_for(max(grid.hidden_sizes)))
            if widest > teacher_ffn:
                raise ShapeError(f"shape.ffn_ratios give an FFN of {widest}, wider than the teacher's {teacher_ffn}, "
                                 "but student.init = 'teacher' cuts the student from the teacher; lower the largest "
                                 "ratio or use student.init = 'random'")
        return grid


def check_divisible(hidden_sizes: Sequence[int], heads: Sequence[int]) -> None:
    """Every hidden size needs at least one head count that divides it."""
    for h in sorted(hidden_sizes):
        if not any(h % a == 0 for a in heads):
            raise ShapeError(f"shape grid hidden size {h} is divisible by none of the head counts "
                             f"{', '.join(map(str, sorted(heads)))}; add a head count that divides it or drop it")


def _nearest(values: Sequence[float], target: float):
    """The value nearest ``target`` (the smaller one on a tie)."""
    return min(values, key=lambda v: (abs(v - target), v))
