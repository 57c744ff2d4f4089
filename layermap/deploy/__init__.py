"""Deployment: what a student costs on a device, and a student made ready to ship.

``cost`` (parameters and FLOPs of a student shape, analytically), ``latency`` (a student's forward latency
*measured* on a device: median and spread of repeats after warm-up, cached per device, shape and settings),
``quantize`` (ONNX export and ONNX Runtime dynamic int8 quantisation of a saved student, with its size, latency
and probe scores; needs the optional extra ``pip install -e ".[deploy]"``).

Sits below ``evolution`` so that a search may use its objectives: may import ``distill``, ``proxy_tasks`` and the
top-level modules; never ``evolution``, ``final``, ``study`` or ``cli`` (a store is passed in, not imported).
"""
