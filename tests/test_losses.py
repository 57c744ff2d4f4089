import pytest
import torch

from layermap.distill.losses import LayerOutputs, LossWeights, TransformerDistillationLoss, attention_mse, hidden_mse
from layermap.mapping import LayerMapping


def test_hidden_mse_masks_padding():
    s = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])             # (1, 2, 2)
    t = torch.zeros(1, 2, 2)
    assert hidden_mse(s, t, torch.tensor([[1, 1]])).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    assert hidden_mse(s, t, torch.tensor([[1, 0]])).item() == pytest.approx((1 + 4) / 2)


def test_attention_mse_masks_query_and_key_padding():
    s = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])           # (1, 1, 2, 2)
    t = torch.zeros(1, 1, 2, 2)
    assert attention_mse(s, t, torch.tensor([[1, 1]])).item() == pytest.approx(30 / 4)
    assert attention_mse(s, t, torch.tensor([[1, 0]])).item() == pytest.approx(1.0)


def test_attention_mse_head_by_head_when_counts_agree():
    s = torch.zeros(1, 2, 2, 2)
    s[0, 1] = 2.0                                            # head 1 differs by 2 everywhere
    t = torch.zeros(1, 2, 2, 2)
    assert attention_mse(s, t, torch.ones(1, 2)).item() == pytest.approx((4 * 4) / 8)


def test_attention_mse_averages_heads_when_counts_differ():
    s = torch.stack([torch.full((2, 2), 1.0), torch.full((2, 2), 3.0)])[None]   # (1, 2, 2, 2): mean 2
    t = torch.zeros(1, 3, 2, 2)                                                 # (1, 3, 2, 2): mean 0
    assert attention_mse(s, t, torch.ones(1, 2)).item() == pytest.approx(4.0)


def _outputs(value: float, width: int, layers: int, heads: int = 1) -> LayerOutputs:
    hidden = {k: torch.full((1, 2, width), value + k) for k in range(layers + 1)}
    scores = {k: torch.full((1, heads, 2, 2), value * k) for k in range(1, layers + 1)}
    return LayerOutputs(hidden, scores)


def test_total_is_weighted_sum_and_gene_zero_adds_nothing():
    mapping = LayerMapping((0, 2), 2)
    loss = TransformerDistillationLoss(mapping, 3, 3, LossWeights(attention=2.0, hidden=3.0, embedding=5.0))
    s, t = _outputs(1.0, 3, 2), _outputs(0.0, 3, 2)
    mask = torch.ones(1, 2)
    total, parts = loss(s, t, mask)
    # embedding: (1+0 - 0)^2 = 1; hidden s[2]=3 vs t[2]=2 -> 1; attention s[2]=2 vs t[2]=0 -> 4
    assert parts["embedding"].item() == pytest.approx(1.0)
    assert parts["hidden"].item() == pytest.approx(1.0)
    assert parts["attention"].item() == pytest.approx(4.0)
    assert total.item() == pytest.approx(5 * 1 + 3 * 1 + 2 * 4)
    s.hidden[1].fill_(100.0)                                  # student layer 1 has gene 0
    s.scores[1].fill_(100.0)
    assert loss(s, t, mask)[0].item() == pytest.approx(total.item())


def test_projection_only_when_widths_differ():
    same = TransformerDistillationLoss(LayerMapping((1,), 1), 8, 8)
    diff = TransformerDistillationLoss(LayerMapping((1,), 1), 4, 8)
    assert isinstance(same.projection, torch.nn.Identity)
    assert isinstance(diff.projection, torch.nn.Linear) and diff.projection.weight.shape == (8, 4)
    total, _ = diff(_outputs(1.0, 4, 1), _outputs(0.0, 8, 1), torch.ones(1, 2))
    total.backward()
    assert diff.projection.weight.grad is not None


def test_teacher_layers_needed_only_mapped_ones():
    loss = TransformerDistillationLoss(LayerMapping((0, 3, 3), 6), 4, 4)
    assert loss.teacher_layers_needed() == ((0, 3), (3,))
    no_emb = TransformerDistillationLoss(LayerMapping((0, 3, 5), 6, embedding=False), 4, 4)
    assert no_emb.teacher_layers_needed() == ((3, 5), (3, 5))
