"""What a search strategy is (docs/architecture.md, "The strategy protocol and registry").

A strategy is an object with a ``name`` (its ``search.strategy``) and one method, ``run(search, start)``: run every
generation it has (``start`` is ``None``) or continue after the checkpointed generation ``start``, checkpointing each
finished generation in the run's store.  Every fitness it reads comes from the one evaluate step
(:func:`layermap.searching.state.evaluate`) and every child it breeds is made new to the run by
:mod:`layermap.searching.novelty`.  Imports nothing of layermap at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ...storage.store import GenerationRow
    from ..state import SearchState


@runtime_checkable
class Strategy(Protocol):
    """A search strategy (module docstring)."""

    name: str

    def run(self, search: SearchState, start: GenerationRow | None) -> None:
        """Run, or continue after ``start``, every generation, checkpointing each."""
