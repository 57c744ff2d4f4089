"""Deprecated: moved to :mod:`layermap.plots.front` (this path goes in the next release)."""

from layermap._moved import moved

moved(__name__, "layermap.plots.front")
