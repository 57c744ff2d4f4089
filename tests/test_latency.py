"""Latency measured and cached per (device, shape, settings), apart from accuracy records; params and FLOPs by formula."""

from __future__ import annotations

import sqlite3

import pytest

from layermap.config import LatencySettings
from layermap.deploy import latency as latency_mod
from layermap.deploy.cost import count_flops, count_params, objective_costs, shape_costs
from layermap.deploy.latency import Latency, cached_latency, latency_key, measure_shape, time_call
from layermap.storage.store import Store
from layermap.shape import StudentShape

FAST = LatencySettings(batch_size=1, seq_len=16, warmup=1, repeats=5)


def _teacher_config(tiny_teacher_dir):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(tiny_teacher_dir)


def test_time_call_reports_median_and_spread_of_the_timed_calls():
    calls = []
    result = time_call(lambda: calls.append(1), warmup=3, repeats=7)
    assert len(calls) == 10 and result.repeats == 7 == len(result.samples_ms)
    assert result.min_ms <= result.median_ms and result.spread_ms >= 0
    assert Latency.from_dict(result.to_dict()) == result


def test_measure_shape_times_a_student_and_restores_threads(tiny_teacher_dir):
    import torch

    before = torch.get_num_threads()
    result = measure_shape(_teacher_config(tiny_teacher_dir), StudentShape(2, 32, 4, 64), FAST)
    assert result.repeats == 5 and 0 < result.median_ms < 1000
    assert torch.get_num_threads() == before


def test_latency_is_cached_per_device_and_never_mixed_with_accuracy(tmp_path, tiny_teacher_dir, monkeypatch):
    config = _teacher_config(tiny_teacher_dir)
    shape = StudentShape(2, 32, 4, 64)
    measured = []

    def measure():
        measured.append(1)
        return Latency(2.0 + len(measured), 0.1, 1.9, 5)

    with Store(tmp_path / "s.sqlite") as store:
        first, cached = cached_latency(store, config, shape, FAST, measure=measure)
        again, cached_again = cached_latency(store, config, shape, FAST, measure=measure)
        assert (cached, cached_again, len(measured)) == (False, True, 1) and again == first
        other = LatencySettings(batch_size=8, seq_len=16, warmup=1, repeats=5)
        assert cached_latency(store, config, shape, other, measure=measure)[1] is False        # other settings
        monkeypatch.setattr(latency_mod, "device_identity", lambda device="cpu": "cpu:another machine x4")
        moved, cached_moved = cached_latency(store, config, shape, FAST, measure=measure)
        assert not cached_moved and moved.median_ms == 5.0 and len(measured) == 3                # re-measured there
        assert store.lookup("any", shape.text) is None                      # no accuracy record appeared
    db = sqlite3.connect(tmp_path / "s.sqlite")
    counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("latency", "evaluations", "cache")}
    assert counts == {"latency": 3, "evaluations": 0, "cache": 0}


def test_a_store_without_the_latency_table_opens_unchanged_and_gains_it_on_first_save(tmp_path):
    path = tmp_path / "old.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE latency")                 # a store written before the table existed
    db.commit()
    db.close()
    with Store(path, upgrade=False) as store:
        assert store.lookup_latency("cpu:x", "L1-H32-A4-F64", "{}") is None
    assert "latency" not in {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    with Store(path) as store:
        store.save_latency("cpu:x", "L1-H32-A4-F64", "{}", Latency(1.0, 0.1, 0.9, 3).to_dict())
        assert store.lookup_latency("cpu:x", "L1-H32-A4-F64", "{}")["median_ms"] == 1.0


def test_latency_key_names_what_changes_a_timing():
    assert latency_key(FAST) != latency_key(LatencySettings(threads=2, seq_len=16, warmup=1, repeats=5))
    assert latency_key(FAST) == latency_key(LatencySettings(seq_len=16, warmup=9, repeats=50))   # repeats do not
    assert latency_key(FAST, "onnx-int8") != latency_key(FAST)


@pytest.mark.parametrize("shape", [StudentShape(2, 32, 4, 64), StudentShape(3, 48, 6, 72), StudentShape(1, 16, 1, 24)])
def test_params_and_flops_formulas_match_a_built_student(tiny_teacher_dir, shape):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from layermap.distill.models import StudentSpec, build_student

    config = _teacher_config(tiny_teacher_dir)
    student = build_student(config, StudentSpec(**shape.to_dict())).eval()
    assert count_params(shape, vocab_size=config.vocab_size, max_positions=config.max_position_embeddings,
                        type_vocab_size=config.type_vocab_size) == sum(p.numel() for p in student.parameters())
    from transformers import AutoModel

    eager = AutoModel.from_config(student.config, attn_implementation="eager").eval()   # CPU SDPA is not counted
    ids = torch.randint(0, config.vocab_size, (2, 24))
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        eager(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert count_flops(shape, batch_size=2, seq_len=24) == counter.get_total_flops()
    assert shape_costs(shape, config, batch_size=2, seq_len=24)["flops"] == counter.get_total_flops()


def test_objective_costs_give_the_cost_objectives_of_a_shape(tmp_path, tiny_teacher_dir):
    config = _teacher_config(tiny_teacher_dir)
    shape = StudentShape(2, 32, 4, 64)
    with Store(tmp_path / "s.sqlite") as store:
        costs = objective_costs(shape, ("fitness", "latency", "params", "flops"), config, FAST, store)
        assert set(costs) == {"latency", "params", "flops"} and costs["latency"] > 0
        assert costs["flops"] == count_flops(shape, batch_size=1, seq_len=16)
        assert objective_costs(shape, ("latency",), config, FAST, store) == {"latency": costs["latency"]}   # cached


def test_the_int8_latency_objective_times_the_shapes_int8_onnx_student_and_caches_it_apart(tmp_path, tiny_teacher_dir,
                                                                                            monkeypatch):
    pytest.importorskip("onnxruntime", reason="the latency_int8 objective needs the deploy extra (onnx, onnxruntime)")
    config = _teacher_config(tiny_teacher_dir)
    shape = StudentShape(2, 32, 4, 64)
    with Store(tmp_path / "s.sqlite") as store:
        costs = objective_costs(shape, ("fitness", "latency", "latency_int8"), config, FAST, store)
        assert set(costs) == {"latency", "latency_int8"} and costs["latency_int8"] > 0
        rows = store._db.execute("SELECT settings FROM latency").fetchall()
        assert len(rows) == 2 and sum('"onnx-int8"' in r[0] for r in rows) == 1      # two records, one per runtime

        def boom(*args, **kwargs):
            raise AssertionError("measured again")

        monkeypatch.setattr(latency_mod, "measure_shape_int8", boom)
        assert objective_costs(shape, ("latency_int8",), config, FAST, store) == {"latency_int8": costs["latency_int8"]}
        monkeypatch.undo()
    with pytest.raises(latency_mod.LatencyError, match="on the CPU"):
        latency_mod.measure_shape_int8(config, shape, LatencySettings(device="cuda", seq_len=16, warmup=1, repeats=2))
