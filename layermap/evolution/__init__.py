"""Stage 2, the search (``layermap.search()`` is the API function; this package is its engine): genome -> evaluation record -> store.

``fitness`` (the proxy evaluator: distil on a slice, score on the proxy tasks -> an
``EvaluationRecord``), ``records`` (the typed records that travel between workers and the driver),
``operators`` (DEAP-style genome operators), ``evolve`` (the generation loop, checkpoint and resume),
``search_state`` (what a search works with and its one evaluate step, shared by every strategy), ``racing`` (the
noise-aware strategy object: paired races on shared seed sets, the confirmation), ``replicates`` (one genome's
seed sets combined, the final pick),
``executors`` (in-process, process pool, Ray), ``store`` (SQLite: runs, evaluations, generations,
the shared fitness cache and claims; the final stage's cells too), ``results`` (a search read back),
``verdict`` (ties within noise, best against the baselines); ``shaped`` (operators over shaped genomes, a student
shape with its mapping) and ``nsga2`` (noise-aware fronts, selection and hypervolume), not wired into ``evolve`` yet.

May import ``deploy``, ``distill``, ``proxy_tasks`` and the top-level modules; never ``final``, ``study`` or ``cli``
(the synthetic landscape of ``study`` is imported lazily, only to rebuild a synthetic run's evaluator).
"""
