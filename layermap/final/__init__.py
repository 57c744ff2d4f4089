"""Stage 3, the final stage: mapping -> fully distilled student -> fine-tuned cells -> comparison table.

``jobs`` (the typed ``Job``), ``fingerprints``, ``worker`` (the compare worker, behind the executors' worker
protocol), ``run`` (plan, run, resume and render a comparison), ``borrow`` (``--teacher-from``, ``--recipe-from``),
``report`` (the table's text), ``comparison`` (the table: mean ± std over seeds, paired differences against the
reference with their intervals and verdicts, loyalty), ``recipe``, ``resolution`` and ``int8`` (``--quantize``);
``compare`` is the deprecated path of the old single module.

May import ``exporting``, ``searching``, ``report``, ``evaluators``, ``executors``, ``storage``, ``deploy``,
``distill``, ``proxy_tasks`` and the top-level modules; never ``plots``, ``study`` or ``cli``.
"""
