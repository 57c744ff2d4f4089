"""Deprecated: moved to :mod:`layermap.evaluators.synthetic` (this path goes in the next release)."""

from layermap._moved import moved

moved(__name__, "layermap.evaluators.synthetic")
