"""What is left of the old stage-2 package while the house moves (docs/architecture.md): ``results`` (a search read
back), ``verdict`` (ties within noise, best against the baselines), ``report`` (what ``layermap show`` prints),
``front`` (an nsga2 run's Pareto front) and ``export`` (a mapping written for others), to move to ``report/`` and
``exporting/``; every other module here is a deprecated path (a shim) to its new home in ``storage``, ``executors``,
``evaluators`` or ``searching``.

May import ``searching``, ``evaluators``, ``executors``, ``storage``, ``deploy``, ``distill``, ``proxy_tasks`` and
the top-level modules; never ``final``, ``study`` or ``cli``.
"""
