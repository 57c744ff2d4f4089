"""A search run read back from its store: ``results`` (``SearchResult``, ``GenerationStats``, the run's answer),
``verdict`` (the best against the baselines, ties within noise), ``show`` (what ``layermap show`` prints) and
``front`` (an nsga2 run's Pareto front, with each member's reference rows).

May import ``evaluators``, ``executors``, ``storage``, ``deploy``, ``distill``, ``proxy_tasks`` and the top-level
modules (a genome's text is ``extraction.genome_text``); never ``searching`` or anything above it.
"""
