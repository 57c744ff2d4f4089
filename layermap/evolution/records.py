"""Deprecated: moved to :mod:`layermap.storage.records` (this path goes in the next release)."""

from layermap._moved import moved

moved(__name__, "layermap.storage.records")
