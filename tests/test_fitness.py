import dataclasses
import pickle

import pytest

from layermap.config import load_config
from layermap.evaluators.proxy import ProxyEvaluator
from layermap.mapping import LayerMapping


@pytest.fixture
def config(tiny_config_toml):
    return load_config(str(tiny_config_toml))


def test_end_to_end_fitness_on_a_tiny_teacher(config):
    ev = ProxyEvaluator(config)
    assert ev.teacher_layers == 4 and ev.student_layers == 2
    record = ev.evaluate((2, 4))
    assert record.ok and record.genome == "2-4" and set(record.tasks) == {"sst2", "rte"}
    scores = [t.score for t in record.tasks.values()]
    assert record.fitness == pytest.approx(sum(scores) / 2)
    assert set(record.tasks["sst2"].metrics) == {"accuracy"}
    assert all(0 <= s <= 100 for s in scores)
    assert record.distill_loss > 0 and record.peak_memory_mb > 0
    assert {"distill", "finetune", "eval", "total"} <= set(record.timings)
    assert record.timings["total"] >= record.timings["distill"]
    env = record.environment                   # where it was computed: recorded, not fingerprinted
    assert env["device"] == "cpu" and env["threads"] >= 1 and env["torch"] and env["transformers"]
    assert type(record).from_json(record.to_json()).environment == env


def test_same_mapping_same_fitness_in_a_fresh_process_state(config):
    a = ProxyEvaluator(config).evaluate((2, 4))
    b = pickle.loads(pickle.dumps(ProxyEvaluator(config))).evaluate((2, 4))
    assert a.fitness == b.fitness and a.distill_loss == b.distill_loss


def test_every_genome_starts_from_the_same_student(config):
    ev = ProxyEvaluator(config)
    s1 = ev.new_student(ev_mapping(ev, (1, 2)))
    s2 = ev.new_student(ev_mapping(ev, (0, 4)))
    for p, q in zip(s1.parameters(), s2.parameters()):
        assert p.data.equal(q.data)


def ev_mapping(ev, genes):
    from layermap.mapping import LayerMapping
    return LayerMapping(genes, ev.teacher_layers)


def test_fingerprint_covers_what_changes_fitness_only(config):
    base = ProxyEvaluator(config).fingerprint
    same = [dataclasses.replace(config, search=dataclasses.replace(config.search, population=9)),
            dataclasses.replace(config, run=dataclasses.replace(config.run, workers=3, executor="process"))]
    diff = [dataclasses.replace(config, distill=dataclasses.replace(config.distill, max_steps=7)),
            dataclasses.replace(config, proxy=dataclasses.replace(config.proxy, tasks=("sst2",))),
            dataclasses.replace(config, corpus=dataclasses.replace(config.corpus, seed=5)),
            dataclasses.replace(config, student=dataclasses.replace(config.student, hidden_size=8))]
    assert all(ProxyEvaluator(c).fingerprint == base for c in same)
    assert len({ProxyEvaluator(c).fingerprint for c in diff} | {base}) == 5


def test_pickled_evaluator_does_not_carry_the_teacher(config):
    ev = ProxyEvaluator(config)
    ev.prepare()
    assert len(pickle.dumps(ev)) < 20_000


def test_a_killed_evaluation_resumes_its_distillation_from_a_checkpoint(tiny_config_toml, monkeypatch):
    """distill.checkpoint_every inside a search: an evaluation killed at step 5 of 6 (checkpoint at 4)
    continues from step 4 when the genome is evaluated again, ends with the uninterrupted fitness, and
    leaves no checkpoint behind."""
    import layermap.distill.loop as distill_mod

    config = load_config(str(tiny_config_toml), ["distill.checkpoint_every=2"])
    straight = ProxyEvaluator(config).evaluate((2, 4))
    real = distill_mod.forward_layers
    calls = {"n": 0}

    def dies(model, *args, **kwargs):
        if model.config.num_hidden_layers == 2:
            calls["n"] += 1
            if calls["n"] == 5:
                raise KeyboardInterrupt
        return real(model, *args, **kwargs)

    ev = ProxyEvaluator(config)
    monkeypatch.setattr(distill_mod, "forward_layers", dies)
    with pytest.raises(KeyboardInterrupt):
        ev.evaluate((2, 4))
    folder = ev.checkpoint_dir(ev_mapping(ev, (2, 4)))
    assert (folder / "checkpoint.pt").is_file()
    calls["n"] = -100                                   # no more kills; count the steps the resume runs
    resumed = ProxyEvaluator(config).evaluate((2, 4))
    assert calls["n"] == -100 + 2                       # steps 5 and 6 only
    assert resumed.fitness == pytest.approx(straight.fitness) and resumed.distill_loss == pytest.approx(straight.distill_loss)
    assert not folder.exists()


def test_no_distillation_scores_the_teacher_extracted_student_as_it_is(tiny_config_toml):
    import math

    import torch

    config = load_config(str(tiny_config_toml), ("distill.max_steps=0", "distill.epochs=0", 'student.init="teacher"',
                                                 "student.hidden_size=0", "student.heads=0"))
    ev = ProxyEvaluator(config)
    record = ev.evaluate((1, 2))
    assert record.ok and math.isnan(record.distill_loss) and record.timings["distill"] < 1.0
    tasks, _ = ev.score_student(ev.new_student(LayerMapping((1, 2), 4)), {})
    assert {t: s.score for t, s in tasks.items()} == {t: s.score for t, s in record.tasks.items()}  # the extraction itself
    from layermap.distill.loop import distill, total_steps

    assert total_steps(config.distill, 100) == 0
    student = ev.new_student(LayerMapping((1, 2), 4))
    before = {k: v.clone() for k, v in student.state_dict().items()}
    st = ev._load()
    distill(student, st.source, LayerMapping((1, 2), 4),
            st.segments, config.distill, teacher_width=st.teacher.hidden_size)
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())


def test_negative_epochs_are_still_refused():
    from layermap.config import ConfigError, DistillSettings

    with pytest.raises(ConfigError, match="no distillation"):
        DistillSettings(epochs=-1)
