"""Deprecated: moved to :mod:`layermap.report.results` (this path goes in the next release)."""

from layermap._moved import moved

moved(__name__, "layermap.report.results")
