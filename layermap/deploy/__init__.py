"""Deployment: what a student costs on a device, and a student made ready to ship.

``cost`` (parameters and FLOPs of a student shape, analytically), ``timing`` (warm-up, timed repeats, their median),
``onnx_runtime`` (ONNX export, dynamic int8, CPU sessions), ``latency`` (a student's forward latency *measured* on a
device, cached per device, shape and settings), ``quantize`` (a saved student exported to ONNX and int8, with its size,
latency and probe scores; needs the optional extra ``pip install -e ".[deploy]"``).  In that order, bottom first:
each imports only those before it.

Sits below ``storage`` and everything above it, so that a search may use its objectives: may import ``distill``,
``proxy_tasks`` and the top-level modules; never a layer above (a store is passed in, not imported).
"""
