"""The one registry of search strategies: ``search.strategy`` -> the class of its object.  The run loop
(:mod:`layermap.searching.run`) calls ``strategy_for(config).run(search, start)`` and has no strategy branch; a new
strategy is a module of this package and a line here (and its name in ``config.SEARCH_STRATEGIES``, which a test keeps
equal to this table).  May import the strategies' modules and ``config``.
"""

from __future__ import annotations

from ...config import Config
from .enumerate import Enumerate
from .ga import GA
from .nsga2 import NSGA2
from .protocol import Strategy
from .racing import Racing

STRATEGIES: dict[str, type] = {
    "ga": GA,
    "racing": Racing,
    "enumerate": Enumerate,
    "enumerate-mapped": Enumerate,
    "nsga2": NSGA2,
}


def strategy_for(config: Config) -> Strategy:
    """The strategy object of ``config.search.strategy`` (checked against the registry by the settings)."""
    return STRATEGIES[config.search.strategy]()
