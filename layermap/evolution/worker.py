"""Deprecated: moved to :mod:`layermap.executors.protocol` (this path goes in the next release)."""

from layermap._moved import moved

moved(__name__, "layermap.executors.protocol")
