"""Distillation and fine-tuning share one schedule and one parameter-group helper (``proxy_tasks.optim``); the
learning rates and groups they produce are, bit for bit, those of the formulas each loop had before (written
out below), so stored fitnesses stay valid under their fingerprints."""

from __future__ import annotations

import math

import pytest
import torch
import transformers

from layermap.config import DistillSettings
from layermap.distill.loop import _optimizer
from layermap.distill.losses import TransformerDistillationLoss, LossWeights
from layermap.mapping import LayerMapping
from proxy_tasks import TASKS, Example, FinetuneSettings, TaskData, finetune_and_score
from proxy_tasks.optim import linear_warmup_decay, param_groups, warmup_steps


# -- the formulas as they were --------------------------------------------------------------------
def old_distill_groups(student, loss_fn):
    decay, no_decay = [], []
    for module in (student, loss_fn):
        for name, p in module.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    return decay, no_decay


def old_distill_lambda(steps, warmup_ratio):
    warmup = int(warmup_ratio * steps)

    def lr_lambda(step):
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))
    return lr_lambda


def old_finetune_groups(model):
    params = [p for p in model.parameters() if p.requires_grad]
    return [p for p in params if p.dim() >= 2], [p for p in params if p.dim() < 2]


def old_finetune_lr(step, total_steps, warmup_ratio, peak):
    warmup_steps_ = math.ceil(warmup_ratio * total_steps)
    if step < warmup_steps_:
        return peak * (step + 1) / warmup_steps_
    return peak * (total_steps - step) / max(1, total_steps - warmup_steps_)


CASES = [(1, 0.1), (7, 0.1), (30, 0.1), (120, 0.1), (37, 0.33), (10, 0.0), (9, 1.0), (1200, 0.06)]


def _bert(hidden=16, layers=2):
    config = transformers.BertConfig(vocab_size=40, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                                     intermediate_size=2 * hidden, max_position_embeddings=64)
    torch.manual_seed(0)
    return transformers.BertModel(config)


def _same_tensors(a, b) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


@pytest.mark.parametrize("steps, ratio", CASES)
def test_distillation_learning_rates_are_the_old_ones_bit_for_bit(steps, ratio):
    student, peak = _bert(), 5e-4
    loss_fn = TransformerDistillationLoss(LayerMapping((2, 4), 4), 16, 32, LossWeights(1.0, 1.0, 1.0))
    opt, sched = _optimizer(student, loss_fn, DistillSettings(learning_rate=peak, warmup_ratio=ratio), steps)
    ref_opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    ref = torch.optim.lr_scheduler.LambdaLR(ref_opt, old_distill_lambda(steps, ratio))
    new_lrs, old_lrs = [], []
    for _ in range(steps + 1):                       # + 1: the rate after the last step
        new_lrs.append(opt.param_groups[0]["lr"])
        old_lrs.append(ref_opt.param_groups[0]["lr"])
        opt.step(), sched.step(), ref_opt.step(), ref.step()
    assert new_lrs == old_lrs                        # ==, not approx: the same floats
    assert all(g["lr"] == opt.param_groups[0]["lr"] for g in opt.param_groups)


def test_distillation_parameter_groups_are_the_old_ones():
    student = _bert()
    loss_fn = TransformerDistillationLoss(LayerMapping((2, 4), 4), 16, 32, LossWeights(1.0, 1.0, 1.0))
    opt, _ = _optimizer(student, loss_fn, DistillSettings(weight_decay=0.01), 10)
    decay, no_decay = old_distill_groups(student, loss_fn)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    assert _same_tensors(opt.param_groups[0]["params"], decay) and _same_tensors(opt.param_groups[1]["params"], no_decay)
    assert any(p.ndim == 2 for p in loss_fn.parameters())           # the projection is in the decayed group
    assert any(p is q for p in loss_fn.parameters() for q in decay)


@pytest.mark.parametrize("steps, ratio", CASES)
def test_finetuning_schedule_is_the_old_formula_bit_for_bit(steps, ratio):
    peak = 1e-4
    warmup = warmup_steps(ratio, steps, round_up=True)
    assert [linear_warmup_decay(s, steps, warmup, peak) for s in range(steps)] == \
           [old_finetune_lr(s, steps, ratio, peak) for s in range(steps)]


def test_warmup_rounding_differs_by_loop_as_it_always_did():
    assert warmup_steps(0.1, 37, round_up=False) == 3 and warmup_steps(0.1, 37, round_up=True) == 4
    assert warmup_steps(0.1, 30, round_up=False) == warmup_steps(0.1, 30, round_up=True) == 3


class _RecordingAdamW(torch.optim.AdamW):
    """AdamW that records its parameter groups and the learning rate of every step."""

    made: list = []

    def __init__(self, params, **kwargs):
        params = list(params)
        super().__init__(params, **kwargs)
        self.groups_given, self.lrs = params, []
        _RecordingAdamW.made.append(self)

    def step(self, closure=None):
        self.lrs.append(self.param_groups[0]["lr"])
        return super().step(closure)


def test_finetuning_uses_the_old_learning_rates_and_groups(monkeypatch, tiny_teacher_dir):
    import proxy_tasks.finetune as finetune

    tok = transformers.AutoTokenizer.from_pretrained(str(tiny_teacher_dir))
    encoder = transformers.AutoModel.from_pretrained(str(tiny_teacher_dir)).eval()
    examples = tuple(Example(("a good movie" if i % 2 else "a bad film") + " .", None, i % 2) for i in range(22))
    data = TaskData(TASKS["sst2"], examples, {"dev": examples[:6]}, "toy")
    settings = FinetuneSettings(epochs=2.0, batch_size=4, learning_rate=2e-3, warmup_ratio=0.1, max_seq_len=16)
    _RecordingAdamW.made.clear()
    monkeypatch.setattr(finetune.torch.optim, "AdamW", _RecordingAdamW)
    captured = {}
    real_groups = finetune.param_groups

    def spy(modules, weight_decay):
        captured["model"] = modules[0]
        return real_groups(modules, weight_decay)
    monkeypatch.setattr(finetune, "param_groups", spy)
    finetune_and_score(encoder, tok, data, settings)
    opt = _RecordingAdamW.made[-1]
    total = math.ceil(2.0 * math.ceil(22 / 4))
    assert opt.lrs == [old_finetune_lr(s, total, 0.1, 2e-3) for s in range(total)]
    decay, no_decay = old_finetune_groups(captured["model"])
    assert _same_tensors(opt.groups_given[0]["params"], decay) and _same_tensors(opt.groups_given[1]["params"], no_decay)
    assert [g["weight_decay"] for g in opt.groups_given] == [settings.weight_decay, 0.0]


def test_param_groups_skip_frozen_parameters():
    model = _bert()
    model.embeddings.requires_grad_(False)
    groups = param_groups((model,), 0.1)
    frozen = {id(p) for p in model.embeddings.parameters()}
    assert not any(id(p) in frozen for g in groups for p in g["params"])
