"""Storage: what a run keeps on disk.  ``records`` (the typed :class:`EvaluationRecord` a worker returns), ``store``
(SQLite: runs, evaluations, generations, the fitness cache, claims, the final stage's cells, reference rows,
latencies; one writer, WAL), ``runs`` (a run folder: ``run.json``, its lock, its status), ``claims`` (a driver's claim
owner id and heartbeat).

May import ``deploy``, ``distill``, ``proxy_tasks`` and the top-level modules; nothing above (docs/architecture.md).
"""
