"""Deprecated: moved to :mod:`layermap.final.run` and the modules beside it (``jobs``, ``fingerprints``, ``worker``,
``report``, ``borrow``, ``int8``); this path goes in the next release."""

from layermap._moved import moved

moved(__name__, "layermap.final.run", "layermap.final.jobs", "layermap.final.fingerprints", "layermap.final.worker",
      "layermap.final.report", "layermap.final.borrow", "layermap.final.int8")
