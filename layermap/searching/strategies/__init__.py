"""Search strategies as objects: ``protocol`` (what a strategy is: a ``name`` and ``run(search, start)``),
``registry`` (``search.strategy`` -> its class, the one table the run loop reads), one module per strategy: ``ga``
(DEAP's (mu + lambda) loop), ``racing`` (the GA on shift-adjusted replicate means), ``enumerate`` (the whole space as
generation 0), ``nsga2`` (a noise-aware Pareto front).

May import the rest of ``searching`` (never ``searching.run``, which calls the registry) and what it may import
(docs/architecture.md).
"""
