import pytest
import torch
from transformers import AutoConfig, AutoModel, BertConfig, BertModel

from layermap.distill import models
from layermap.mapping import LayerMapping
from layermap.distill.models import (ModelError, StudentSpec, attention_scores, build_student, capture_qk,
                             init_student_from_teacher, load_teacher, load_teacher_config)


def _tiny(layers=3, hidden=16, heads=4, attn="eager"):
    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=50, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                intermediate_size=2 * hidden, attn_implementation=attn)).eval()


def test_captured_scores_are_pre_softmax_attention():
    model = _tiny()
    ids = torch.randint(5, 50, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    with torch.no_grad(), capture_qk(model, [1, 3]) as qk:
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    assert sorted(qk) == [1, 3]
    for k in (1, 3):
        scores = attention_scores(qk[k]["q"], qk[k]["k"], 4)                  # (B, H, L, L)
        bias = (1 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        probs = torch.softmax(scores + bias, dim=-1)
        torch.testing.assert_close(probs, out.attentions[k - 1], atol=1e-5, rtol=1e-4)


def test_hooks_are_removed():
    model = _tiny()
    with capture_qk(model, [2]):
        pass
    assert all(not m._forward_hooks for m in model.modules())


def test_student_spec_resolution_and_validation():
    cfg = _tiny(hidden=16, heads=4).config
    assert StudentSpec.resolve(cfg, 2) == StudentSpec(2, 16, 4, 64)
    with pytest.raises(ModelError, match="not divisible"):
        StudentSpec(2, 10, 4, 20)


def test_build_student_is_seeded_and_shaped():
    cfg = _tiny().config
    a = build_student(cfg, StudentSpec(2, 8, 2, 16), seed=3)
    b = build_student(cfg, StudentSpec(2, 8, 2, 16), seed=3)
    assert a.config.num_hidden_layers == 2 and a.config.hidden_size == 8 and a.config.vocab_size == 50
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), n


def test_init_from_teacher_copies_mapped_layers():
    teacher = _tiny(layers=4)
    student = build_student(teacher.config, StudentSpec(2, 16, 4, 32))
    init_student_from_teacher(student, teacher, LayerMapping((3, 0), 4))
    t, s = teacher.encoder.layer, student.encoder.layer
    assert torch.equal(s[0].attention.self.query.weight, t[2].attention.self.query.weight)
    assert torch.equal(s[1].output.dense.weight, t[3].output.dense.weight)       # gene 0 -> uniform (2, 4)[1] = 4
    assert torch.equal(student.embeddings.word_embeddings.weight, teacher.embeddings.word_embeddings.weight)


def test_init_from_teacher_slices_narrower_and_rejects_wider():
    teacher = _tiny(layers=2, hidden=16)
    narrow = build_student(teacher.config, StudentSpec(1, 8, 2, 16))
    init_student_from_teacher(narrow, teacher, LayerMapping((2,), 2), "leading")
    torch.testing.assert_close(narrow.encoder.layer[0].attention.self.key.weight,
                               teacher.encoder.layer[1].attention.self.key.weight[:8, :8])
    wide = build_student(teacher.config, StudentSpec(1, 32, 4, 64))
    with pytest.raises(ModelError, match="--init random"):
        init_student_from_teacher(wide, teacher, LayerMapping((1,), 2))


def test_load_teacher_from_local_dir(tiny_teacher_dir):
    teacher = load_teacher(str(tiny_teacher_dir))
    assert teacher.num_layers == 4 and teacher.identity.startswith("local:")
    assert not any(p.requires_grad for p in teacher.model.parameters())


def test_teacher_errors(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="does not exist"):
        load_teacher(str(tmp_path / "nowhere"))
    with pytest.raises(ModelError, match="no config.json"):
        load_teacher(str(tmp_path))
    with pytest.raises(ModelError, match="no teacher given"):
        load_teacher("")

    def offline(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co'")
    monkeypatch.setattr(AutoConfig, "from_pretrained", offline)
    with pytest.raises(ModelError, match="Hugging Face Hub did not serve it"):
        load_teacher_config("some-org/some-bert")


def test_hub_names_go_to_from_pretrained(tiny_teacher_dir, monkeypatch, tmp_path):
    """Without a network: a hub id is passed through to transformers with its revision."""
    calls = []
    real = {cls: cls.from_pretrained for cls in (AutoConfig, AutoModel, models.AutoTokenizer)}

    def fake(cls):
        def load(name, *args, revision="main", **kwargs):
            calls.append((cls.__name__, name, revision))
            return real[cls](str(tiny_teacher_dir), **kwargs)
        return load
    for cls in real:
        monkeypatch.setattr(cls, "from_pretrained", fake(cls))
    from proxy_tasks import hub

    monkeypatch.setattr(hub, "_resolve_online", lambda *args: None)         # no Hub: the HF cache names the commit
    refs = tmp_path / "hub" / "models--google--bert_uncased_L-4_H-256_A-4" / "refs"
    refs.mkdir(parents=True)
    (refs / "v1").write_text("ab" * 20)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    teacher = load_teacher("google/bert_uncased_L-4_H-256_A-4", revision="v1")
    assert teacher.identity == "hub:google/bert_uncased_L-4_H-256_A-4@" + "ab" * 20
    assert ("AutoModel", "google/bert_uncased_L-4_H-256_A-4", "v1") in calls
    assert ("AutoTokenizer", "google/bert_uncased_L-4_H-256_A-4", "v1") in calls


@pytest.mark.parametrize("family", ["roberta", "electra"])
def test_other_bert_like_families_build_and_distil(family):
    import numpy as np
    from transformers import ElectraConfig, ElectraModel, RobertaConfig, RobertaModel

    from layermap.config import DistillSettings
    from layermap.distill.corpus import Segments
    from layermap.distill.loop import LiveTeacher, distill

    cfg_cls, model_cls = {"roberta": (RobertaConfig, RobertaModel), "electra": (ElectraConfig, ElectraModel)}[family]
    torch.manual_seed(0)
    teacher = model_cls(cfg_cls(vocab_size=60, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=40)).eval().requires_grad_(False)
    student = build_student(teacher.config, StudentSpec(2, 8, 2, 16))
    assert type(student) is model_cls and student.config.num_hidden_layers == 2
    rng = np.random.default_rng(0)
    segments = Segments(input_ids=rng.integers(5, 60, (16, 12)).astype(np.int32),
                        lengths=np.full(16, 12, dtype=np.int32), identity="random")
    _, stats = distill(student, LiveTeacher(teacher), LayerMapping((1, 3), 3), segments,
                       DistillSettings(max_steps=3, batch_size=4), teacher_width=16)
    assert len(stats.losses) == 3 and all(np.isfinite(stats.losses))


def test_local_teacher_without_tokenizer_names_the_directory(tiny_teacher_dir, tmp_path):
    import shutil

    broken = tmp_path / "no_tokenizer"
    broken.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(tiny_teacher_dir / f, broken / f)
    with pytest.raises(ModelError, match="no usable tokenizer|could not be loaded"):
        load_teacher(str(broken))
