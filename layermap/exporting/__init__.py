"""A mapping written for others (``layermap export``, ``layermap.export``): ``writer`` (render, then write a run's
best mapping), ``mapping_json`` (the mapping with its provenance), ``textbrewer`` (``intermediate_matches``, the
provenance beside them and the adaptor module, whose template ``adaptor_template.py`` is a real module shipped as
package data).  Named ``exporting`` because ``layermap.export`` is the public API's function (docs/architecture.md).

May import a run read back (``report.results``, ``report``), ``storage``, ``distill.identity``, the genomes and
the top-level modules; never ``final``, ``plots``, ``study`` or ``cli``.
"""
