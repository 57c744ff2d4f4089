"""Deprecated: moved to :mod:`layermap.storage.store`, :mod:`~layermap.storage.runs` and :mod:`~layermap.storage.claims`
(this path goes in the next release)."""

from layermap._moved import moved

moved(__name__, "layermap.storage.store", "layermap.storage.runs", "layermap.storage.claims")
