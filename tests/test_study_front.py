"""benchmarks/study_front.py: what its figure and table say comes from the data, not from the demo's settings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("study_front", ROOT / "benchmarks" / "study_front.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_latency_axis_is_read_from_the_runs_settings(study):
    config = {"latency": {"device": "cuda", "threads": 4, "batch_size": 8, "seq_len": 64}}
    assert study.latency_axis(config, "latency") == "latency: PyTorch fp32, CUDA, 4 threads, 8 x 64 tokens (ms)"
    assert study.latency_axis({}, "latency_int8") == "latency_int8: ONNX Runtime int8, CPU, 1 thread, 1 x 128 tokens (ms)"


def test_the_figure_labels_its_axes_and_tasks_from_the_data(study, tmp_path):
    final = {"mean": 70.0, "std": 1.0, "no_distillation": 68.0, "no_distillation_std": 0.5, "teacher": 78.0,
             "task_names": ["RTE", "CoLA"], "units": [[0, 0], [0, 1]]}
    students = [{"role": role, "shape": shape, "latency_ms": lat, "proxy": 60.0, "proxy_se": 1.0, "final": final}
                for role, shape, lat in (("front", "L1-H64-A2-F128", 1.0), ("fixed-shape baseline", "L3-H64-A2-F128", 3.0))]
    r = {"students": students, "latency_axis": study.latency_axis({"latency": {"threads": 2}}, "latency"),
         "proxy_references": None}
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    shown = {}
    real = pyplot.Figure.savefig

    def keep(fig, *args, **kwargs):
        shown["labels"] = [ax.get_xlabel() for ax in fig.axes]
        shown["titles"] = [ax.get_title() for ax in fig.axes]
        return real(fig, *args, **kwargs)

    pyplot.Figure.savefig = keep
    try:
        study.plot(r, tmp_path)
    finally:
        pyplot.Figure.savefig = real
    assert shown["labels"] == ["latency: PyTorch fp32, CPU, 2 threads, 1 x 128 tokens (ms)"] * 2
    assert shown["titles"][1] == "final stage (RTE + CoLA average)"
    assert (tmp_path / "study.png").is_file()
