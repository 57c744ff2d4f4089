"""benchmarks/gpu_check.py, the one GPU call of the population engine, run on the CPU with tiny settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_every_section_with_tiny_settings(tmp_path, tiny_config_toml, tiny_glue_dir):
    out = tmp_path / "population_cuda.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--tiny", "--device", "cpu", "--agree-k", "2",
                           "--agree-steps", "3", "--agree-precision", "fp32", "--precision", "fp32", "--steps", "1",
                           "--warmup", "1", "--paper-k", "1", "--demo-k", "1", "2", "--config", str(tiny_config_toml),
                           "--sync-k", "2", "--sync-steps", "4", "--set", "proxy.head=\"probe\"", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(out.read_text())
    agreement = figures["agreement"]
    assert agreement["agree"] and agreement["all_ok"] and agreement["k"] == 2, agreement
    assert agreement["max_relative_loss_difference"] <= 1e-4
    sync = figures["sync"]
    assert sync["passed"] and sync["detector"] == "host reads", sync
    assert sync["steps_guarded"] == 2 * 4 and sync["sync_points"] == 2          # population and single: 4 steps each
    assert len(sync["population"]["fitness"]) == 2 and len(sync["single"]["fitness"]) == 1
    for section, ks in (("mfu", [1]), ("throughput", [1, 2])):
        rows = figures[section]["rows"]
        assert [r["k"] for r in rows if r["engine"] == "population"] == ks, rows
        assert all(r["precision"] == "fp32" and r["batch"] == 4 and "speedup_vs_baseline" in r
                   for r in rows if r["engine"] == "population")
    assert figures["throughput"]["best_population"]["k"] in (1, 2)
    assert all(f"{s}_seconds" in figures for s in ("agreement", "sync", "mfu", "throughput"))
