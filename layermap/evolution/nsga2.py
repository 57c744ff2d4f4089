"""Deprecated: moved to :mod:`layermap.searching.nsga2` (this path goes in the next release)."""

from layermap._moved import moved

moved(__name__, "layermap.searching.nsga2")
