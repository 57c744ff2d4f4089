"""Deprecated: moved to :mod:`layermap.report.verdict` (this path goes in the next release)."""

from layermap._moved import moved

moved(__name__, "layermap.report.verdict")
