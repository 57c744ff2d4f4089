"""Studies of layermap itself: how far to trust a proxy and a search.

``replay`` (search replays on a recorded landscape: evaluations to the optimum, regret),
``synthetic`` (an analytic landscape over the same genomes, for GA studies and tests),
``fidelity`` (proxy fitness against final-stage scores), ``noisy_replay`` (replays judged by the true quality of
their final pick), ``null_confirmation`` (the racing verdict's false-positive rate under no true difference).

May import every stage (``evolution``, ``final``, ``distill``) and the top-level modules; never ``cli``.
"""
