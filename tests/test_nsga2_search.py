"""search.strategy = "nsga2": the known front of the two-objective synthetic landscape, kill / resume on the same
trajectory, the fixed-shape front by fitness alone, and show / plot / export --front of a tiny run."""

from __future__ import annotations

import collections
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from layermap.cli.main import main
from layermap.config import ConfigError, load_config
from layermap.searching import nsga2
from layermap.searching.run import resume_search, run_search
from layermap.report.front import load_front
from layermap.storage.store import Store
from layermap.storage.runs import read_run_info
from layermap.mapping import LayerMapping, baseline, enumerate_space
from layermap.shape import ShapedGenome, ShapeGrid
from layermap.evaluators.synthetic import SyntheticEvaluator, read_call_log

ROOT = Path(__file__).resolve().parents[1]
GRID = ["shape.search=true", "shape.hidden_sizes=[32,64]", "shape.heads=[2]", "shape.ffn_ratios=[2,4]"]
SHAPED = ["search.strategy=nsga2", "search.objectives=['fitness','params']", *GRID, "search.constraint=increasing",
          "student.layers=2", "search.population=12", "search.seed=1"]
HV_GAP = 0.001       # the found front's hypervolume is within 0.1 % of the true front's


def true_front(ev: SyntheticEvaluator, reference) -> tuple[set[str], float]:
    """Every (shape, mapping) of the test grid scored exactly: the front's genomes and its hypervolume."""
    grid = ShapeGrid(layers=(1, 2, 3, 4), hidden_sizes=(32, 64), heads=(2,), ffn_ratios=(2, 4))
    points = []
    for shape in grid.shapes():
        landscape, params = ev.with_shape(shape), ev.costs(shape, ["params"])["params"]
        points += [nsga2.Point(ShapedGenome(shape, g).text, (landscape.score(g), params))
                   for g in enumerate_space(shape.layers, ev.teacher_layers, "increasing")]
    front = nsga2.front(points, ("fitness", "params"))
    return {m.point.genome for m in front}, nsga2.hypervolume(points, ("fitness", "params"), reference)


def test_nsga2_finds_the_known_front_of_the_two_objective_landscape(tmp_path):
    config = load_config(None, [*SHAPED, "search.generations=12", "run.shared_fitness=false"])
    ev = SyntheticEvaluator(teacher_layers=4, student_layers=2)
    result = run_search(config, ev, tmp_path / "run", progress=False)
    gens = result.generations
    reference = gens[-1].reference
    assert reference[0] == 0.0 and reference[1] == pytest.approx(1.1 * ev.costs(
        ShapedGenome.parse("L4-H64-A2-F256:1-2-3-4").shape, ["params"])["params"])   # 1.1 x the largest shape
    hvs = [g.hypervolume for g in gens]
    assert all(b >= a for a, b in zip(hvs, hvs[1:])) and hvs[-1] > hvs[0]       # over the archive: never falls
    genomes, best_hv = true_front(ev, reference)
    assert hvs[-1] >= (1 - HV_GAP) * best_hv
    front = load_front(tmp_path / "run")
    assert {m.genome for m in front.members} == genomes                       # the known front, no more, no less
    for m in front.members:                                                   # no noise: ties only at equal fitness
        assert m.tied == any(v[0] == m.values["fitness"] and v[1] < m.values["params"] for v, _ in front.points.values())
    computed = result.computed
    assert computed < 12 * 13                                                 # novel offspring, each computed once


KILL_SCRIPT = textwrap.dedent("""
    import sys
    from layermap.config import load_config
    from layermap.searching.run import run_search
    from layermap.study.synthetic import SyntheticEvaluator
    config = load_config(None, sys.argv[3].split("|"))
    ev = SyntheticEvaluator(teacher_layers=4, student_layers=2, delay=0.05, log_path=sys.argv[2])
    run_search(config, ev, sys.argv[1], progress=False)
""")


def _populations(run_dir: Path) -> list[list[str]]:
    info = read_run_info(run_dir)
    with Store(info.store_path(run_dir)) as store:
        return [g.population for g in store.generations(info.run_id)]


def test_a_killed_nsga2_search_resumes_on_the_same_trajectory(tmp_path):
    settings = [*SHAPED, "search.generations=4", "search.population=8"]
    log = tmp_path / "calls.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "run"), str(log), "|".join(settings)],
                            env=env)
    deadline = time.time() + 60
    while len(read_call_log(log)) < 14 and time.time() < deadline and proc.poll() is None:    # inside generation 1
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(_populations(tmp_path / "run")) >= 1, "the kill should land after generation 0"
    info = read_run_info(tmp_path / "run")
    with sqlite3.connect(info.store_path(tmp_path / "run")) as db:
        unfinished = {g for g, status in db.execute("SELECT genome, status FROM evaluations") if status == "running"}
    assert unfinished and all(":" in g for g in unfinished), "the kill should land while a shaped genome is evaluated"

    factory = lambda config: SyntheticEvaluator(teacher_layers=4, student_layers=2, log_path=str(log))  # noqa: E731
    resumed = resume_search(tmp_path / "run", factory, progress=False)
    calls = collections.Counter(read_call_log(log))
    assert all(n == 1 for g, n in calls.items() if g not in unfinished)       # no finished evaluation re-run
    reference = run_search(load_config(None, [*settings, "run.shared_fitness=false"]),
                           SyntheticEvaluator(teacher_layers=4, student_layers=2), tmp_path / "ref", progress=False)
    assert _populations(tmp_path / "run") == _populations(tmp_path / "ref")
    assert [g.hypervolume for g in resumed.generations] == [g.hypervolume for g in reference.generations]
    assert [m.genome for m in load_front(tmp_path / "run").members] == [m.genome for m in load_front(tmp_path / "ref").members]


def test_a_fixed_shape_nsga2_front_is_by_fitness_alone_and_keeps_ties_within_noise(tmp_path):
    config = load_config(None, ["search.strategy=nsga2", "search.objectives=['fitness','params']", "student.layers=3",
                                "search.population=8", "search.generations=3", "search.noise_std=1.5",
                                "run.shared_fitness=false"])
    ev = SyntheticEvaluator(teacher_layers=6, student_layers=3)
    run_search(config, ev, tmp_path / "run", progress=False)
    front = load_front(tmp_path / "run")
    assert len({m.costs["params"] for m in front.members}) == 1                # one shape: equal costs
    assert all(":" not in m.genome for m in front.members)                    # plain mappings
    best = max(v[0][0] for v in front.points.values())
    margin = nsga2.NOISE_K * 1.5 * 2 ** 0.5
    assert {m.genome for m in front.members} == {g for g, (v, _) in front.points.items() if best - v[0] <= margin}
    assert any(m.tied for m in front.members) == (len(front.members) > 1)


def test_show_plot_and_export_front_of_a_tiny_synthetic_run(tmp_path, capsys):
    run = tmp_path / "run"
    sets = [a for s in [*SHAPED, "search.generations=2", "search.population=6"] for a in ("--set", s)]
    assert main(["evolve", "--synthetic", "4", *sets, "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["show", str(run)]) == 0
    shown = capsys.readouterr().out
    front = load_front(run)
    assert "Pareto front:" in shown and "hypervolume reference point: fitness 0" in shown
    for m in front.members:
        assert m.shape.text in shown and "-".join(map(str, m.genes)) in shown
    assert main(["show", str(run), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [f["genome"] for f in data["front"]] == [m.genome for m in front.members]
    assert data["generations"][-1]["hypervolume"] == front.generations[-1].hypervolume

    assert main(["plot", str(run)]) == 0
    assert (run / "plots" / "front.png").stat().st_size > 0
    from layermap.plots.front import front_data

    fd = front_data(front)
    assert fd.axis == "params" and fd.x == sorted(fd.x) and len(fd.hypervolume) == 3
    assert len(fd.x) + len(fd.others_x) == len(front.points)
    assert front.baselines and all(g.endswith(":" + "-".join(map(str, baseline("uniform", int(g[1]), 4))))
                                   for g in front.baselines)                  # uniform mapping at each depth
    assert len(fd.baselines_x) == len(front.baselines)

    assert main(["export", str(run), "--front", str(tmp_path / "front")]) == 0
    files = sorted((tmp_path / "front").glob("front-*.json"))
    assert len(files) == len(front.members)
    for path, member in zip(files, front.members):
        mapping = LayerMapping.from_json(path)                                # what distill --mapping FILE reads
        meta = json.loads(path.read_text())["metadata"]
        assert mapping.genes == member.genes and meta["shape"]["text"] == member.shape.text
        assert meta["student_flags"] == (f"--student-layers {member.shape.layers} --hidden-size "
                                         f"{member.shape.hidden_size} --heads {member.shape.heads} --ffn {member.shape.ffn}")
    from layermap.cli.compare import mapping_files

    config, genomes = mapping_files(load_config(None), [str(files[0])])       # what compare --mappings FILE reads
    assert genomes == ["-".join(map(str, front.members[0].genes))]
    assert (config.student.layers, config.student.hidden_size) == (front.members[0].shape.layers,
                                                                   front.members[0].shape.hidden_size)


def test_bad_input_for_nsga2_is_one_sentence_exit_2(tmp_path, capsys):
    ga = tmp_path / "ga"
    assert main(["evolve", "--synthetic", "4", "--set", "student.layers=2", "--set", "search.generations=1",
                 "--quiet", "--out", str(ga)]) == 0
    capsys.readouterr()
    assert main(["export", str(ga), "--front", str(tmp_path / "f")]) == 2
    assert "not an nsga2 run" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown objective 'speed'"):
        load_config(None, ["search.strategy=nsga2", "search.objectives=['fitness','speed']"])
    assert main(["evolve", "--synthetic", "4", "--set", "search.strategy=nsga2", "--set", "shape.search=true",
                 "--set", "shape.hidden_sizes=[48]", "--set", "shape.heads=[5]", "--quiet",
                 "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "divisible by none of the head counts" in err and len(err.strip().splitlines()) == 1


def test_distill_takes_an_exported_front_member_with_the_flags_it_names(tmp_path, tiny_teacher_dir, tiny_corpus, capsys):
    config = load_config(None, [*SHAPED, "search.generations=1", "search.population=6", "run.shared_fitness=false",
                                "shape.hidden_sizes=[32]"])
    run_search(config, SyntheticEvaluator(teacher_layers=4, student_layers=2, teacher_width=32), tmp_path / "run",
               progress=False)
    assert main(["export", str(tmp_path / "run"), "--front", str(tmp_path / "front")]) == 0
    path = sorted((tmp_path / "front").glob("front-*.json"))[0]
    meta = json.loads(path.read_text())["metadata"]
    common = ["--mapping", str(path), "--corpus", str(tiny_corpus), "--max-segments", "16", "--max-steps", "2",
              "--batch-size", "8", "--seq-len", "32", "--quiet"]
    capsys.readouterr()
    wrong = ["--student-layers", str(meta["shape"]["layers"]), "--hidden-size", "16", "--heads", "2"]
    assert main(["distill", "--teacher", str(tiny_teacher_dir), *wrong, *common, "--out", str(tmp_path / "s0")]) == 2
    assert f"is for a student {meta['shape']['text']}; pass {meta['student_flags']}" in capsys.readouterr().err
    flags = meta["student_flags"].split()
    assert main(["distill", "--teacher", str(tiny_teacher_dir), *flags, *common, "--out", str(tmp_path / "s1")]) == 0
    saved = json.loads((tmp_path / "s1" / "config.json").read_text())
    assert (saved["num_hidden_layers"], saved["hidden_size"], saved["intermediate_size"]) == (
        meta["shape"]["layers"], meta["shape"]["hidden_size"], meta["shape"]["ffn"])


def test_a_tiny_real_shaped_search_builds_each_shape_and_measures_its_latency_once(tiny_config_toml, tmp_path):
    from layermap.evaluators.proxy import ProxyEvaluator

    settings = ["search.strategy=nsga2", "search.objectives=['fitness','latency']", "shape.search=true",
                "shape.layers=[1,2]", "shape.hidden_sizes=[16,32]", "shape.heads=[2]", "shape.ffn_ratios=[2]",
                "search.population=3", "search.offspring=2", "search.generations=1", "latency.repeats=3",
                "latency.warmup=1", "latency.seq_len=16", "run.shared_fitness=false"]
    config = load_config(str(tiny_config_toml), settings)
    evaluator = ProxyEvaluator(config)
    assert evaluator.fingerprint == ProxyEvaluator(load_config(str(tiny_config_toml))).fingerprint   # unchanged
    result = run_search(config, evaluator, tmp_path / "run", progress=False)
    assert result.failed == 0 and result.computed == 5
    info = read_run_info(tmp_path / "run")
    with Store(info.store_path(tmp_path / "run")) as store:
        rows = store.run_evaluations(info.run_id)
        shapes = {r.genome.split(":")[0] for r in rows}
        assert all(":" in r.genome for r in rows)
        assert all(store.lookup(evaluator.fingerprint, r.genome) is not None for r in rows)   # under the base key
        latencies = store._db.execute("SELECT shape FROM latency").fetchall()
    assert sorted(s for (s,) in latencies) == sorted(shapes | {"L2-H32-A2-F64"})      # + the reference's largest
    front = load_front(tmp_path / "run")
    assert front.references is not None and all("latency" in m.costs for m in front.members)
    assert all(m.headroom is None or -10 < m.headroom < 10 for m in front.members)
    shaped = ShapedGenome.parse(front.members[0].genome)
    student = evaluator.with_shape(shaped.shape).new_student(LayerMapping(shaped.genes, 4))
    assert (student.config.num_hidden_layers, student.config.hidden_size) == (shaped.shape.layers, shaped.shape.hidden_size)


def test_a_shaped_nsga2_search_on_ray_workers_follows_the_local_trajectory(tmp_path, monkeypatch):
    try:
        import ray
    except ImportError:
        pytest.skip("ray not installed (pip install layermap[ray])")
    settings = [*SHAPED, "search.generations=2", "search.population=6", "run.shared_fitness=false"]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_search(load_config(None, [*settings, "run.executor=ray", "run.workers=2"]),
                            SyntheticEvaluator(teacher_layers=4, student_layers=2), tmp_path / "ray", progress=False)
    finally:
        ray.shutdown()
    local = run_search(load_config(None, settings), SyntheticEvaluator(teacher_layers=4, student_layers=2),
                       tmp_path / "local", progress=False)
    assert _populations(tmp_path / "ray") == _populations(tmp_path / "local")
    assert any(":" in g for g in _populations(tmp_path / "ray")[-1])            # shaped genomes crossed to the workers
    assert [g.hypervolume for g in remote.generations] == [g.hypervolume for g in local.generations]


class _RowsPerShape(SyntheticEvaluator):
    """The synthetic landscape with reference rows: the teacher at 100 and the constant at 50 on both tasks, the
    undistilled student of a shape of M layers at 40 + 10 M (the [student] shape's included)."""

    reference_fingerprint = "r" * 32

    def describe(self):
        return {**super().describe(), "reference_fingerprint": "r" * 32}

    def _rows(self, layers: int, fingerprint: str):
        from layermap.evaluators.references import build_references

        row = lambda v: [{"syn_a": v, "syn_b": v}] * 2                          # noqa: E731 - two seed sets
        return build_references(row(100.0), [{"syn_a": 40.0 + 10 * layers, "syn_b": 40.5 + 10 * layers},
                                             {"syn_a": 39.0 + 10 * layers, "syn_b": 40.0 + 10 * layers}], row(50.0),
                                fingerprint=fingerprint)

    def references(self, store=None):
        refs = self._rows(self.student_layers, "r" * 32)
        store.save_references(refs.fingerprint, refs.to_json())
        return refs

    def shape_references(self, shape, store=None):
        from layermap.evaluators.references import shape_fingerprint

        refs = self._rows(shape.layers, shape_fingerprint("r" * 32, shape.text))
        store.save_references(refs.fingerprint, refs.to_json())
        return refs


def test_a_front_member_is_read_against_its_own_shape_s_undistilled_student(tmp_path, capsys):
    """The headroom of a 1-layer member is read against the 1-layer undistilled student (50), not the 2-layer
    [student] shape's (60): in show, show --json, export --front, the front plot and the run summary."""
    config = load_config(None, [*SHAPED, "search.generations=2", "search.population=6", "run.shared_fitness=false"])
    ev = _RowsPerShape(teacher_layers=4, student_layers=2)
    result = run_search(config, ev, tmp_path / "run", progress=False)
    front = load_front(tmp_path / "run")
    fixed = ev.fixed_shape
    others = [m for m in front.members if m.shape.layers != fixed.layers]
    assert others, [m.genome for m in front.members]             # params: the 1-layer shapes lead the front
    for m in front.members:
        own = ev._rows(m.shape.layers, "")
        assert m.references.no_distillation.tasks == own.no_distillation.tasks
        assert m.references.teacher.tasks == front.references.teacher.tasks             # the teacher row is shared
        assert m.headroom == pytest.approx(own.headroom(m.record.task_scores)["mean"])
    m = others[0]
    against_fixed = front.references.headroom(m.record.task_scores)["mean"]
    assert m.headroom != pytest.approx(against_fixed)
    assert main(["show", str(tmp_path / "run")]) == 0
    shown = capsys.readouterr().out
    assert f"{100 * m.headroom:.0f} %" in shown and "against each member's own shape" in shown
    assert main(["show", str(tmp_path / "run"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    entry = next(f for f in data["front"] if f["genome"] == m.genome)
    assert entry["headroom"] == pytest.approx(m.headroom) and entry["no_distillation"] == pytest.approx(39.875 + 10 * m.shape.layers)
    assert m.shape.text in data["shape_references"]
    assert main(["export", str(tmp_path / "run"), "--front", str(tmp_path / "front")]) == 0
    exported = [json.loads(p.read_text())["metadata"] for p in sorted((tmp_path / "front").glob("front-*.json"))]
    assert [e["headroom"] for e in exported] == pytest.approx([x.headroom for x in front.members])
    from layermap.plots.front import front_data

    fd = front_data(front)
    assert sorted(fd.own_floor) == sorted(x.references.no_distillation.fitness for x in front.members)
    best = result.best_record
    if ":" in best.genome and not best.genome.startswith(fixed.text):
        assert result.best_references.no_distillation.tasks != result.references.no_distillation.tasks


def test_a_run_without_per_shape_rows_says_not_measured_and_gets_them_later(tmp_path, capsys):
    from layermap.report import front as front_mod

    config = load_config(None, [*SHAPED, "search.generations=1", "search.population=6", "run.shared_fitness=false"])
    ev = _RowsPerShape(teacher_layers=4, student_layers=2)
    real = front_mod.measure_front_references
    front_mod.measure_front_references = lambda *a, **k: []            # a run made before per-shape rows
    try:
        run_search(config, ev, tmp_path / "run", progress=False)
    finally:
        front_mod.measure_front_references = real
    before = load_front(tmp_path / "run")
    missing = [m for m in before.members if m.shape != ev.fixed_shape]
    assert missing and all(m.references is None and m.headroom is None for m in missing)
    assert main(["show", str(tmp_path / "run")]) == 0
    assert "not measured" in capsys.readouterr().out
    assert front_mod.measure_run_front_references(tmp_path / "run", ev)
    assert all(m.references is not None for m in load_front(tmp_path / "run").members)
