"""Deprecated: moved to :mod:`layermap.searching.shaped_operators` (this path goes in the next release)."""

from layermap._moved import moved

moved(__name__, "layermap.searching.shaped_operators")
