"""student.slice: which teacher units a narrower student extracted from the teacher keeps (issue 30, Deliver 5)."""

import pytest
import torch
from transformers import BertConfig, BertModel

from layermap.config import ConfigError, StudentSettings
from layermap.distill.models import ModelError, StudentSpec, build_student, init_student_from_teacher
from layermap.distill.slicing import Cut, SliceError, cut_indices, cut_tensor
from layermap.mapping import LayerMapping


def _teacher(layers=2, hidden=16, heads=4, ffn=32):
    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=50, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                intermediate_size=ffn)).eval()


def _mark(teacher, dims=(13, 2, 9, 6, 0, 11, 4, 15), head=2, units=(30, 3, 17, 8)):
    """Make residual dims ``dims``, head ``head`` of the last layer and FFN units ``units`` of the last layer the
    teacher's most important by its weights, the first of each the least of them."""
    with torch.no_grad():
        for name, p in teacher.named_parameters():
            if name.endswith("LayerNorm.weight"):
                p.fill_(0.1)
                p[list(dims)] = torch.linspace(1.0, 2.0, len(dims))
        last = teacher.encoder.layer[-1]
        size = teacher.config.hidden_size // teacher.config.num_attention_heads
        last.attention.self.value.weight.mul_(0.01)
        last.attention.self.value.weight[head * size:(head + 1) * size] *= 1000
        last.intermediate.dense.weight.mul_(0.01)
        last.intermediate.dense.weight[list(units)] *= 1000
    return teacher


def test_importance_keeps_the_highest_ranked_units_in_the_teachers_order():
    teacher = _mark(_teacher())
    student = build_student(teacher.config, StudentSpec(1, 8, 2, 4))
    init_student_from_teacher(student, teacher, LayerMapping((2,), 2), "importance")
    dims = torch.tensor(sorted((13, 2, 9, 6, 0, 11, 4, 15)))
    torch.testing.assert_close(student.embeddings.word_embeddings.weight, teacher.embeddings.word_embeddings.weight[:, dims])
    torch.testing.assert_close(student.embeddings.LayerNorm.weight, teacher.embeddings.LayerNorm.weight[dims])
    s, t = student.encoder.layer[0], teacher.encoder.layer[1]
    units = torch.tensor(sorted((30, 3, 17, 8)))
    torch.testing.assert_close(s.intermediate.dense.weight, t.intermediate.dense.weight[units][:, dims])
    torch.testing.assert_close(s.output.dense.weight, t.output.dense.weight[dims][:, units])
    torch.testing.assert_close(s.output.dense.bias, t.output.dense.bias[dims])
    v = s.attention.self.value.weight                       # head 2 (units 8..11) kept, with one other whole head
    kept = [h for h in range(4) if torch.equal(v[:4], t.attention.self.value.weight[h * 4:(h + 1) * 4][:, dims])
            or torch.equal(v[4:], t.attention.self.value.weight[h * 4:(h + 1) * 4][:, dims])]
    assert 2 in kept and len(kept) == 2
    heads = torch.tensor([i for h in sorted(kept) for i in range(h * 4, h * 4 + 4)])
    torch.testing.assert_close(s.attention.self.query.weight, t.attention.self.query.weight[heads][:, dims])
    torch.testing.assert_close(s.attention.output.dense.weight, t.attention.output.dense.weight[dims][:, heads])
    torch.testing.assert_close(student.pooler.dense.weight, teacher.pooler.dense.weight[dims][:, dims])


def test_the_leading_slice_is_unchanged_and_importance_the_default_differs_from_it():
    teacher = _mark(_teacher())
    leading = build_student(teacher.config, StudentSpec(1, 8, 2, 4))
    init_student_from_teacher(leading, teacher, LayerMapping((2,), 2), "leading")
    torch.testing.assert_close(leading.encoder.layer[0].output.dense.weight,
                               teacher.encoder.layer[1].output.dense.weight[:8, :4])
    important = build_student(teacher.config, StudentSpec(1, 8, 2, 4))
    init_student_from_teacher(important, teacher, LayerMapping((2,), 2))
    assert not torch.equal(leading.encoder.layer[0].output.dense.weight, important.encoder.layer[0].output.dense.weight)
    assert StudentSettings().slice == "importance"


def test_a_student_as_wide_as_the_teacher_is_a_copy_under_either_slice():
    teacher = _teacher()
    for slicing in ("leading", "importance"):
        student = build_student(teacher.config, StudentSpec(2, 16, 4, 32), seed=5)
        init_student_from_teacher(student, teacher, LayerMapping((1, 2), 2), slicing)
        student.eval()
        ids = torch.randint(5, 50, (2, 6))
        with torch.no_grad():
            torch.testing.assert_close(student(input_ids=ids).last_hidden_state, teacher(input_ids=ids).last_hidden_state)


def test_heads_and_units_are_ranked_in_each_source_layer():
    teacher = _mark(_teacher())
    cut = cut_indices(teacher.state_dict(), "encoder.layer.", [2, 1], hidden=16, heads=2, ffn=4, head_size=4)
    assert cut.hidden is None                                       # full width: every residual dimension
    assert set(cut.units) == set(cut.ffn) == {0, 1}
    assert cut.ffn[1].tolist() == [3, 8, 17, 30] and 2 in (cut.units[1] // 4).tolist()
    assert len(cut.units[1]) == 8 and (cut.units[1].diff() >= 0).all()


def test_bad_slices_are_refused_in_one_sentence():
    with pytest.raises(ConfigError, match="student.slice must be 'leading' or 'importance'"):
        StudentSettings(slice="magnitude")
    for key in ("hidden_size", "heads", "ffn"):          # the checks after it still run (an edit once cut them off)
        with pytest.raises(ConfigError, match=f"student.{key} must be >= 0"):
            StudentSettings(**{key: -1})
    teacher = _teacher()
    student = build_student(teacher.config, StudentSpec(1, 8, 2, 4))
    with pytest.raises(ModelError, match="student.slice must be one of"):
        init_student_from_teacher(student, teacher, LayerMapping((2,), 2), "random")
    with pytest.raises(SliceError, match="student.slice = 'leading' for this teacher"):
        cut_tensor(torch.zeros(4, 4), torch.Size((2, 2)), "head.extra.weight", Cut(hidden=torch.tensor([0, 3])))
    wide = build_student(teacher.config, StudentSpec(1, 32, 8, 64))
    with pytest.raises(ModelError, match="--init random"):
        init_student_from_teacher(wide, teacher, LayerMapping((1,), 2), "importance")


def test_the_leading_slice_enters_no_fingerprint(compare_toml):
    """Every stored fitness, compare cell and checkpoint keyed before student.slice keeps its key where the student
    is the same (the leading slice, a full-width or a random student: the settings hash as they did without it); the
    importance slice of a narrower extracted student keys its own."""
    import dataclasses

    from layermap.config import load_config
    from layermap.distill.loop import distill_run_digest
    from layermap.evaluators.proxy import ProxyEvaluator
    from layermap.final.fingerprints import compare_fingerprint

    base = load_config(str(compare_toml), ['student.init="teacher"', 'student.slice="leading"'])
    other = base.replace(student=dataclasses.replace(base.student, slice="importance"))
    assert "slice" not in base.student.identity() and other.student.identity()["slice"] == "importance"
    assert base.student.identity() == {k: getattr(base.student, k) for k in ("layers", "hidden_size", "heads", "ffn",
                                                                            "init")}
    assert compare_fingerprint(base) != compare_fingerprint(other)
    assert ProxyEvaluator(base).fingerprint != ProxyEvaluator(other).fingerprint
    assert "slice" not in ProxyEvaluator(base)._student_description()
    assert distill_run_digest(base, "t", "s") != distill_run_digest(other, "t", "s")
    assert distill_run_digest(base, "t", "s") == distill_run_digest(other, "t", "s", sliced=False)
    wide = load_config(str(compare_toml), ['student.init="teacher"', "student.hidden_size=0", "student.heads=0",
                                           "student.ffn=64", 'student.slice="leading"'])   # the teacher's width
    wide_important = wide.replace(student=dataclasses.replace(wide.student, slice="importance"))
    assert compare_fingerprint(wide) == compare_fingerprint(wide_important)
    assert ProxyEvaluator(wide).fingerprint == ProxyEvaluator(wide_important).fingerprint
    randomly = base.replace(student=dataclasses.replace(other.student, init="random"))   # a random student: neither
    assert compare_fingerprint(randomly) == compare_fingerprint(randomly.replace(student=dataclasses.replace(
        randomly.student, slice="leading")))


def test_the_final_stage_and_distill_cut_by_the_slice_the_settings_name(compare_toml, tmp_path):
    """compare records the slice of a narrower extracted student and says it; its students are the slice's cut;
    ``distill --slice importance`` starts from the importance cut and says so in its config.toml."""
    import json

    from transformers import AutoModel

    from layermap.cli.main import main
    from layermap.config import load_config
    from layermap.final.jobs import student_dir
    from layermap.final.run import run_compare

    config = load_config(str(compare_toml), ["compare.init='teacher'", "student.slice='importance'",
                                             "compare.max_steps=0", "compare.epochs=0", "compare.teacher_cache=false"])
    out = tmp_path / "cmp"
    run_compare(config, ["1-2"], out, progress=False)
    table = json.loads((out / "comparison.json").read_text())
    assert table["student"]["slice"] == "importance" and "importance slice" in (out / "comparison.md").read_text()
    teacher = AutoModel.from_pretrained(config.teacher.name)
    s = config.student
    expected = build_student(teacher.config, StudentSpec.resolve(teacher.config, s.layers, s.hidden_size, s.heads, s.ffn))
    init_student_from_teacher(expected, teacher, LayerMapping((1, 2), 4), "importance")
    saved = AutoModel.from_pretrained(student_dir(out, "1-2", 0))
    assert torch.equal(saved.encoder.layer[1].intermediate.dense.weight, expected.encoder.layer[1].intermediate.dense.weight)
    assert torch.equal(saved.embeddings.word_embeddings.weight, expected.embeddings.word_embeddings.weight)

    made = {}
    for slicing in ("leading", "importance"):
        folder = tmp_path / slicing
        assert main(["distill", "--teacher", config.teacher.name, "--student-layers", "2", "--hidden-size", "16",
                     "--heads", "2", "--mapping", "1-2", "--corpus", config.corpus.path, "--max-segments", "16",
                     "--max-steps", "0", "--epochs", "0", "--seq-len", "32", "--init", "teacher", "--slice", slicing,
                     "--quiet", "--out", str(folder)]) == 0
        made[slicing] = AutoModel.from_pretrained(folder)
        assert f'slice = "{slicing}"' in (folder / "config.toml").read_text()
    torch.testing.assert_close(made["leading"].embeddings.word_embeddings.weight,
                               teacher.embeddings.word_embeddings.weight[:, :16])
    assert torch.equal(made["importance"].embeddings.word_embeddings.weight, expected.embeddings.word_embeddings.weight)
    assert not all(torch.equal(a, b) for a, b in zip(made["leading"].parameters(), made["importance"].parameters()))


def test_a_teacher_without_bert_layernorms_is_refused_in_one_sentence():
    state = {"encoder.layer.0.attention.self.value.weight": torch.zeros(8, 8)}
    with pytest.raises(SliceError, match="has none such; use student.slice = 'leading'"):
        cut_indices(state, "encoder.layer.", [1], hidden=4, heads=1, ffn=4, head_size=4)
