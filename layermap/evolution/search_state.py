"""Deprecated: moved to :mod:`layermap.searching.state` (this path goes in the next release)."""

from layermap._moved import moved

moved(__name__, "layermap.searching.state")
