"""Layer-mapping genomes: the search space of layermap.

A genome has one gene per student layer, ``g = (g_1, ..., g_M)``.  ``g_m = k`` with
``1 <= k <= N`` means student layer ``m`` learns teacher layer ``k``'s hidden state and
attention scores; ``g_m = 0`` means student layer ``m`` gets no intermediate loss.  The
embedding pair (student embeddings <-> teacher embeddings) is separate and on by default.

Layer numbering follows ``transformers``: ``hidden_states[0]`` is the embedding output and
``hidden_states[k]`` the output of layer ``k`` (1-based).

Order constraints (a setting of the search space):

* ``free``            any gene in ``0..N``;
* ``non-decreasing``  the non-zero genes never decrease from one student layer to the next;
* ``increasing``      the non-zero genes strictly increase.

Zeros are ignored by the order constraints: ``0-3-0-12`` is ``increasing``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Iterator, Sequence

from .errors import LayermapError

CONSTRAINTS = ("free", "non-decreasing", "increasing")
BASELINES = ("uniform", "top", "bottom", "last")


class MappingError(LayermapError):
    """A mapping (or search space) a user gave that does not fit; the message says how to fix it."""


@dataclass(frozen=True)
class LayerMapping:
    """One genome: ``genes[m-1]`` is the teacher layer that student layer ``m`` imitates."""

    genes: tuple[int, ...]
    teacher_layers: int
    embedding: bool = True
    constraint: str = "free"

    def __post_init__(self) -> None:
        object.__setattr__(self, "genes", tuple(int(g) for g in self.genes))
        validate_genes(self.genes, self.teacher_layers, self.constraint)

    @property
    def student_layers(self) -> int:
        return len(self.genes)

    @property
    def text(self) -> str:
        """Canonical text form, e.g. ``3-6-9-12``; the cache key's genome part."""
        return format_genes(self.genes)

    def __str__(self) -> str:
        return self.text

    def pairs(self) -> list[tuple[int, int]]:
        """(student layer, teacher layer) pairs that carry a loss, embeddings (0, 0) first."""
        out = [(0, 0)] if self.embedding else []
        out += [(m, k) for m, k in enumerate(self.genes, start=1) if k > 0]
        return out

    def teacher_layers_used(self) -> tuple[int, ...]:
        """Sorted distinct teacher layers (1-based) whose outputs the losses need."""
        return tuple(sorted({k for k in self.genes if k > 0}))

    def to_dict(self, **metadata: object) -> dict:
        d = {
            "mapping": self.text,
            "genes": list(self.genes),
            "teacher_layers": self.teacher_layers,
            "student_layers": self.student_layers,
            "embedding": self.embedding,
            "constraint": self.constraint,
        }
        if metadata:
            d["metadata"] = dict(metadata)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LayerMapping":
        if not isinstance(d, dict):
            raise MappingError(f"a mapping JSON must be an object with 'genes' and 'teacher_layers', not a {type(d).__name__}; "
                               "write it with 'layermap export'")
        try:
            genes = d["genes"] if "genes" in d else parse_genes(_text(d["mapping"], "mapping"))
            if not isinstance(genes, list) or not genes or not all(_is_int(g) for g in genes):
                raise MappingError(f"mapping JSON 'genes' must be a list of teacher layer numbers such as [3, 6, 9, 12], "
                                   f"got {genes!r}")
            mapping = cls(
                genes=tuple(genes),
                teacher_layers=_int(d["teacher_layers"], "teacher_layers"),
                embedding=_bool(d.get("embedding", True), "embedding"),
                constraint=_text(d.get("constraint", "free"), "constraint"),
            )
        except KeyError as exc:
            raise MappingError(f"mapping JSON lacks the key {exc.args[0]!r}; write it with LayerMapping.to_json") from None
        if "student_layers" in d and _int(d["student_layers"], "student_layers") != mapping.student_layers:
            raise MappingError(
                f"mapping JSON says student_layers={d['student_layers']} but has {mapping.student_layers} genes; fix one of them"
            )
        return mapping

    def to_json(self, path: str | os.PathLike, **metadata: object) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(**metadata), f, indent=2, sort_keys=False)
            f.write("\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "LayerMapping":
        try:
            with open(path, encoding="utf-8") as f:
                return cls.from_dict(json.load(f))
        except FileNotFoundError:
            raise MappingError(f"mapping file {os.fspath(path)!r} does not exist; give the path of a JSON written by 'layermap export'") from None
        except json.JSONDecodeError as exc:
            raise MappingError(f"mapping file {os.fspath(path)!r} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        except UnicodeDecodeError:
            raise MappingError(f"mapping file {os.fspath(path)!r} is not UTF-8 text; give a JSON written by 'layermap export'") from None
        except OSError as exc:
            raise MappingError(f"mapping file {os.fspath(path)!r} cannot be read ({exc.strerror or exc}); "
                               "give the path of a JSON file written by 'layermap export'") from None
        except MappingError as exc:
            raise MappingError(f"mapping file {os.fspath(path)!r}: {exc}") from None

    @classmethod
    def parse(cls, text: str, teacher_layers: int, *, student_layers: int | None = None,
              constraint: str = "free", embedding: bool = True) -> "LayerMapping":
        """Parse ``3-6-9-12`` (or a baseline name: ``uniform``, ``top``, ``bottom``, ``last``)."""
        name = text.strip().lower()
        if name in BASELINES:
            if student_layers is None:
                raise MappingError(f"mapping {text!r} is a baseline name; it needs the number of student layers")
            genes = baseline(name, student_layers, teacher_layers)
        else:
            genes = parse_genes(text)
        if student_layers is not None and len(genes) != student_layers:
            raise MappingError(
                f"mapping {text!r} has {len(genes)} genes but the student has {student_layers} layers; give one gene per student layer"
            )
        return cls(genes=genes, teacher_layers=teacher_layers, embedding=embedding, constraint=constraint)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: object, key: str) -> int:
    if not _is_int(value):
        raise MappingError(f"mapping JSON {key!r} must be a whole number, got {value!r}")
    return int(value)


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise MappingError(f"mapping JSON {key!r} must be true or false, got {value!r}")
    return value


def _text(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise MappingError(f"mapping JSON {key!r} must be a string, got {value!r}")
    return value


def format_genes(genes: Sequence[int]) -> str:
    return "-".join(str(int(g)) for g in genes)


def parse_genes(text: str) -> tuple[int, ...]:
    """``'3-6-9-12'`` -> ``(3, 6, 9, 12)``; commas or spaces are accepted as separators too."""
    body = text.strip()
    if not body:
        raise MappingError(f"mapping {text!r} is empty; write one teacher layer per student layer, e.g. 3-6-9-12")
    if not re.fullmatch(r"\d+(\s*[-,\s]\s*\d+)*", body):
        raise MappingError(
            f"mapping {text!r} is malformed; write teacher layer numbers joined by '-', e.g. 3-6-9-12 (0 = no loss on that layer)"
        )
    return tuple(int(p) for p in re.split(r"[-,\s]+", body))


def check_constraint(constraint: str) -> str:
    if constraint not in CONSTRAINTS:
        raise MappingError(f"unknown order constraint {constraint!r}; choose one of: {', '.join(CONSTRAINTS)}")
    return constraint


def satisfies(genes: Sequence[int], constraint: str) -> bool:
    """Whether the non-zero genes respect the order ``constraint``."""
    check_constraint(constraint)
    nz = [g for g in genes if g > 0]
    if constraint == "non-decreasing":
        return all(a <= b for a, b in zip(nz, nz[1:]))
    if constraint == "increasing":
        return all(a < b for a, b in zip(nz, nz[1:]))
    return True


def validate_genes(genes: Sequence[int], teacher_layers: int, constraint: str = "free") -> None:
    check_constraint(constraint)
    if teacher_layers < 1:
        raise MappingError(f"the teacher must have at least one layer, got {teacher_layers}")
    if len(genes) < 1:
        raise MappingError("a mapping needs at least one gene (one per student layer)")
    bad = [g for g in genes if not 0 <= g <= teacher_layers]
    if bad:
        raise MappingError(
            f"mapping {format_genes(genes)} uses teacher layer {bad[0]}, but the teacher has layers 1..{teacher_layers} "
            f"(0 = no loss); use genes between 0 and {teacher_layers}"
        )
    if not satisfies(genes, constraint):
        raise MappingError(
            f"mapping {format_genes(genes)} breaks the {constraint!r} order constraint; reorder the genes or use constraint 'free'"
        )


def baseline(name: str, student_layers: int, teacher_layers: int) -> tuple[int, ...]:
    """The heuristic mappings of TinyBERT / Jiao et al. 2020, for ``M <= N``.

    * ``uniform`` ``g(m) = round_half_up(m * N / M)``.  When ``M`` divides ``N`` this is exactly
      ``m * N / M`` (12/4: 3-6-9-12).  Otherwise it is the nearest teacher layer, halves rounded up,
      so the last student layer always maps to layer ``N`` and genes stay strictly increasing
      (12/5: 2.4, 4.8, 7.2, 9.6, 12 -> 2-5-7-10-12; 6/4: 1.5, 3, 4.5, 6 -> 2-3-5-6).  This rounding
      is layermap's own choice: TinyBERT's code floors the stride (``g(m) = m * (N // M)``, so 12/5
      gives 2-4-6-8-10 and never reaches layer N) and the paper only defines the divisible case.
    * ``top``     ``g(m) = N - M + m``            (12/4: 9-10-11-12)
    * ``bottom``  ``g(m) = m``                    (12/4: 1-2-3-4)
    * ``last``    ``(0, ..., 0, N)``              (12/4: 0-0-0-12)
    """
    m_, n_ = int(student_layers), int(teacher_layers)
    if m_ < 1 or n_ < 1:
        raise MappingError(f"layer counts must be positive, got student {m_} and teacher {n_}")
    if m_ > n_:
        raise MappingError(
            f"the baselines need a student no deeper than the teacher, got {m_} student and {n_} teacher layers"
        )
    name = name.lower()
    if name == "uniform":
        return tuple(math.floor(m * n_ / m_ + 0.5) for m in range(1, m_ + 1))
    if name == "top":
        return tuple(n_ - m_ + m for m in range(1, m_ + 1))
    if name == "bottom":
        return tuple(range(1, m_ + 1))
    if name == "last":
        return (0,) * (m_ - 1) + (n_,)
    raise MappingError(f"unknown baseline {name!r}; choose one of: {', '.join(BASELINES)}")


def baselines(student_layers: int, teacher_layers: int) -> dict[str, tuple[int, ...]]:
    return {name: baseline(name, student_layers, teacher_layers) for name in BASELINES}


def baseline_names(student_layers: int, teacher_layers: int) -> dict[str, str]:
    """Genome text -> baseline name (``{'2-4-6': 'uniform', ...}``): which evaluated genomes are baselines."""
    return {format_genes(g): name for name, g in baselines(student_layers, teacher_layers).items()}


def space_size(student_layers: int, teacher_layers: int, constraint: str = "free") -> int:
    """Number of genomes in the search space (zeros allowed on any layer).

    ``free``: ``(N+1)^M``.  ``increasing``: choose the set of non-zero layers (any subset of
    the M positions, size j) and a strictly increasing sequence of j teacher layers:
    ``sum_j C(M,j) C(N,j)``.  ``non-decreasing``: ``sum_j C(M,j) C(N+j-1,j)`` (multisets).
    """
    m_, n_ = int(student_layers), int(teacher_layers)
    check_constraint(constraint)
    if constraint == "free":
        return (n_ + 1) ** m_
    if constraint == "increasing":
        return sum(math.comb(m_, j) * math.comb(n_, j) for j in range(m_ + 1))
    return sum(math.comb(m_, j) * math.comb(n_ + j - 1, j) for j in range(m_ + 1))


def enumerate_space(student_layers: int, teacher_layers: int, constraint: str = "free") -> Iterator[tuple[int, ...]]:
    """Every genome of the search space, in lexicographic order (for exhaustive studies)."""
    check_constraint(constraint)
    for genes in itertools.product(range(teacher_layers + 1), repeat=student_layers):
        if satisfies(genes, constraint):
            yield genes


def repair(genes: Sequence[int], teacher_layers: int, constraint: str) -> tuple[int, ...]:
    """Fewest-genes repair of a genome to the order constraint (layermap's own rule).

    Genes are first clipped to ``0..N`` (``free`` does only this).  Then a longest run of non-zero
    genes that already respects the constraint (a longest non-decreasing / increasing subsequence,
    the earliest-ending one on ties) is kept as it is, and every other non-zero gene is changed once:
    to the value nearest its own that fits between its repaired left neighbour and the next kept gene,
    or to ``0`` (no loss on that layer) when no value fits.  Zeros are never changed.  So the number
    of changed genes is the smallest possible: ``12-1-2-3`` becomes ``1-1-2-3`` under
    ``non-decreasing`` (one gene) and ``0-1-2-3`` under ``increasing``.
    """
    check_constraint(constraint)
    genes = [min(max(int(g), 0), teacher_layers) for g in genes]
    if constraint == "free":
        return tuple(genes)
    strict = constraint == "increasing"
    fits = (lambda a, b: a < b) if strict else (lambda a, b: a <= b)
    pos = [i for i, g in enumerate(genes) if g > 0]
    length, prev = [1] * len(pos), [-1] * len(pos)        # longest valid subsequence ending at pos[j]
    for j in range(len(pos)):
        for i in range(j):
            if fits(genes[pos[i]], genes[pos[j]]) and length[i] + 1 > length[j]:
                length[j], prev[j] = length[i] + 1, i
    keep: set[int] = set()
    j = max(range(len(pos)), key=lambda t: (length[t], -t)) if pos else -1
    while j >= 0:
        keep.add(pos[j])
        j = prev[j]
    out, last = list(genes), 0
    for idx in pos:
        if idx in keep:
            last = out[idx]
            continue
        nxt = min((out[k] for k in keep if k > idx), default=teacher_layers + (1 if strict else 0))
        lo, hi = (last + 1, nxt - 1) if strict else (max(last, 1), nxt)
        out[idx] = min(max(out[idx], lo), hi) if lo <= hi else 0
        last = out[idx] or last
    return tuple(out)
