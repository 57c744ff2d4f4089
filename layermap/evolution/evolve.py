"""Deprecated: moved to :mod:`layermap.searching.run` and :mod:`layermap.searching.strategies` (this path goes in the next release)."""

from layermap._moved import moved

moved(__name__, "layermap.searching.run", "layermap.searching.strategies.ga", "layermap.searching.strategies.registry",
      "layermap.searching.novelty")
