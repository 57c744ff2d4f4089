"""Executors: where a worker's jobs run (in-process, a process pool, Ray), behind one worker protocol.  ``protocol``
(:class:`Worker`, :class:`Evaluator`), ``safety`` (every outcome a valid record), ``devices``, ``local``, ``process``,
``ray`` (one module per backend) and ``registry`` (``create_executor``).

May import ``storage``, ``deploy``, ``distill``, ``proxy_tasks`` and the top-level modules; nothing above
(docs/architecture.md).
"""
