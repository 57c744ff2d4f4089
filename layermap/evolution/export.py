"""Deprecated: moved to :mod:`layermap.exporting` (``writer``, ``mapping_json``, ``textbrewer``; this path goes in the
next release)."""

from layermap._moved import moved

moved(__name__, "layermap.exporting.writer", "layermap.exporting.mapping_json", "layermap.exporting.textbrewer")
