"""One search: ``state`` (:class:`~layermap.searching.state.SearchState`, the one evaluate step, the seed-set
worker), ``run`` (start, resume and drive a run folder), ``operators`` (``GenomeSpace`` and the variation
operators), ``shaped_operators`` (a shaped genome's), ``nsga2`` (noise-aware fronts, hypervolume), ``novelty``
(offspring new to the run, written once for every strategy) and ``strategies/`` (ga, racing, enumerate, nsga2 behind
one protocol and one registry).

May import ``report`` (a run read back: its result and front), ``evaluators``, ``executors``,
``storage``, ``deploy``, ``distill``, ``proxy_tasks`` and the top-level modules; nothing above
(docs/architecture.md).
"""
