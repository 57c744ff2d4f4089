"""Stage 1, distillation: from a teacher and a mapping to a distilled student.

``models`` (load a teacher, build and initialise a student), ``corpus`` (text -> fixed-length token
segments, deterministic slices), ``identity`` (what a teacher, corpus or hub dataset *is*, for
fingerprints), ``losses`` (TinyBERT transformer-distillation losses), ``batches`` (a run's batches on the
device ahead of its steps, the loops' one host read), ``loop`` (the distillation ``for`` loop, proxy and full),
``population`` (K students in lockstep), ``precision`` (fp32 / tf32 / bf16), ``teacher_cache`` (the teacher's outputs on a slice, computed once),
``output`` (a student folder that ``from_pretrained`` loads).

May import the top-level modules (``config``, ``mapping``, ``errors``, ``logs``) and
``proxy_tasks``; nothing above (``deploy``, ``storage``, ``searching``, ``final``, ``study``, ``cli``: docs/architecture.md).
"""
