"""Deprecated: moved to :mod:`layermap.report.front` and :mod:`layermap.exporting.front` (this path goes in the next
release)."""

from layermap._moved import moved

moved(__name__, "layermap.report.front", "layermap.exporting.front")
