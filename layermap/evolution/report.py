"""Deprecated: moved to :mod:`layermap.report.show` (this path goes in the next release)."""

from layermap._moved import moved

moved(__name__, "layermap.report.show")
