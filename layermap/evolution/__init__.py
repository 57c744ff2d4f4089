"""Deprecated paths of the old stage-2 package, kept for one release (docs/architecture.md, "Old import paths"):
every module here is a shim to its new home in ``storage``, ``executors``, ``evaluators``, ``report``,
``searching`` or ``exporting``.

Imports nothing itself; each shim imports its new home through ``layermap._moved``.
"""
