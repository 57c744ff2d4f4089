"""Evaluators: what a genome scores.  ``proxy`` (the proxy fitness: distil on a slice, score on the proxy tasks; its
parts ``proxy_state``, ``proxy_identity``, ``proxy_scoring``, ``proxy_references``), ``references`` (the reference
rows every score is read against: teacher, undistilled students, constant; headroom, validity), ``replicates`` (one
genome under several seed sets, combined), ``shaped`` (a shaped genome's evaluator, joint shape search),
``synthetic`` (an analytic landscape for tests and studies of the search).

May import ``executors``, ``storage``, ``deploy``, ``distill``, ``proxy_tasks`` and the top-level modules; nothing
above (docs/architecture.md).
"""
