"""Deprecated: moved to :mod:`layermap.evaluators.proxy` and its parts (this path goes in the next release)."""

from layermap._moved import moved

moved(__name__, "layermap.evaluators.proxy", "layermap.evaluators.proxy_identity", "layermap.evaluators.proxy_scoring",
      "layermap.evaluators.proxy_state", "layermap.versions")
