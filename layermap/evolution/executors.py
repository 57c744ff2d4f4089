"""Deprecated: moved to the package :mod:`layermap.executors` (this path goes in the next release)."""

from layermap._moved import moved

moved(__name__, "layermap.executors.registry", "layermap.executors.safety", "layermap.executors.devices",
      "layermap.executors.local", "layermap.executors.process", "layermap.executors.ray")
