"""``search.strategy = "enumerate"`` (and ``"enumerate-mapped"``): the whole space as generation 0, nothing bred.

Every genome of the space under the order constraint (``enumerate-mapped``: only those without a zero gene),
shuffled by the search's generator so that a partly finished table is a uniform sample, evaluated as generation 0
through the GA's loop (:class:`~layermap.searching.strategies.ga.GA`) with no generation after it.  May import
``ga`` and what it may import.
"""

from __future__ import annotations

from ...mapping import enumerate_space
from ..state import SearchState
from .ga import GA


class Enumerate(GA):
    """The enumeration strategy object (module docstring): the GA's loop with its whole space as generation 0."""

    name = "enumerate"

    def initial(self, search: SearchState) -> list[tuple[int, ...]]:
        s = search.config.search
        genomes = [g for g in enumerate_space(search.student_layers, search.teacher_layers, s.constraint)
                   if s.strategy == "enumerate" or 0 not in g]
        search.rng.shuffle(genomes)
        return genomes

    def last_generation(self, search: SearchState) -> int:
        return 0
