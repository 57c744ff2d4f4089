"""Deprecated: moved to :mod:`layermap.searching.operators` (this path goes in the next release)."""

from layermap._moved import moved

moved(__name__, "layermap.searching.operators")
