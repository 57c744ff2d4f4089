"""Offspring new to the run, written once for every strategy (the GA, racing, nsga2, the regularised evolution
replayed by :mod:`layermap.study.replay`).

A strategy breeds a child (crossover, mutation or a copy of selected parents); when the child's text is one the run
already knows (a finished generation's genome, or a sibling of this generation), it breeds again, at most
:data:`NOVELTY_TRIES` times, and then keeps the last child, so a space with few new genomes left still fills its
generation.  Every breeding draws from the caller's generator, so the number of breedings is part of a run's
trajectory: this loop must not change for runs to resume on the same trajectory.  Imports nothing of layermap.
"""

from __future__ import annotations

from typing import Callable, Container, Hashable, TypeVar

T = TypeVar("T")

NOVELTY_TRIES = 50      # breedings per offspring slot before a genome the run already knows is accepted


def novel(breed: Callable[[], T], text: Callable[[T], Hashable], known: Container,
          tries: int = NOVELTY_TRIES) -> tuple[T, bool]:
    """``breed()`` until its child's ``text`` is not in ``known``, at most ``tries`` times; returns the child and
    whether it is new (after ``tries`` breedings the last child is kept)."""
    child = breed()
    for _ in range(tries - 1):
        if text(child) not in known:
            return child, True
        child = breed()
    return child, text(child) not in known


class _Either:
    """``text in either`` when it is in one of two collections (the run's genomes, this generation's)."""

    def __init__(self, first: Container, second: Container) -> None:
        self.first, self.second = first, second

    def __contains__(self, text: object) -> bool:
        return text in self.first or text in self.second


def offspring(breed: Callable[[], T], text: Callable[[T], Hashable], seen: Container, count: int,
              tries: int = NOVELTY_TRIES) -> tuple[list[T], set, int]:
    """``count`` children, each bred by :func:`novel` to be new to ``seen`` and to the children before it.  Returns
    the children, their texts and how many of them repeat a known genome (none was new after ``tries``)."""
    children: list[T] = []
    fresh: set = set()
    repeats = 0
    for _ in range(count):
        child, new = novel(breed, text, _Either(seen, fresh), tries)
        repeats += not new
        fresh.add(text(child))
        children.append(child)
    return children, fresh, repeats
