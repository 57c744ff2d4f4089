"""Studies of layermap itself: how far to trust a proxy and a search.

``landscape`` (landscape tables: every genome of a small space, read from a CSV or an enumerate run's store),
``replay`` (search replays on a recorded landscape: evaluations to the optimum, regret),
``synthetic`` (deprecated path: the analytic landscape is ``evaluators.synthetic``),
``fidelity`` (proxy fitness against final-stage scores), ``noisy_replay`` (replays judged by the true quality of
their final pick), ``null_confirmation`` (the racing verdict's false-positive rate under no true difference).

May import every stage (``searching``, ``report``, ``final``, ``distill``, ...), ``plots`` (a study's figures are
``plots.study``) and the top-level modules; never ``api`` or ``cli``.
"""
