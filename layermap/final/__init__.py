"""Stage 3, the final stage: mapping -> fully distilled student -> fine-tuned cells -> comparison table.

``compare`` (plan, run and resume the cells of a comparison through the evolution stage's executors and
store) and ``comparison`` (the table: mean ± std over seeds, paired differences against the best
baseline with their intervals and verdicts, loyalty).

May import ``evolution``, ``distill``, ``proxy_tasks`` and the top-level modules; never ``study`` or ``cli``.
"""
