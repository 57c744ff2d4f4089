"""Deprecated: moved to :mod:`layermap.searching.strategies.racing` (this path goes in the next release)."""

from layermap._moved import moved

moved(__name__, "layermap.searching.strategies.racing")
