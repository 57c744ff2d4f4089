"""Which of the teacher's units a narrower student keeps when it is cut from the teacher (``student.slice``).

A student narrower than its teacher in the residual stream (hidden size), in attention heads or in FFN units starts
from a subset of the teacher's units; every other tensor is the teacher's, so the subset is the whole question.
Two ways to choose it:

- ``leading``: the first units of each kind (``W[:d_out, :d_in]``, ``b[:d]``), what layermap always did; simple,
  and blind to what the units do.
- ``importance``: the most important units by the teacher's weights alone (no data, deterministic), in the spirit of
  ETD-Impt (Chen et al. 2021, "Extract Then Distill"), which ranks units by importance before it cuts:

  * residual dimensions by the summed ``|gamma|`` of every LayerNorm of the teacher (embeddings and each layer): a
    dimension every LayerNorm scales up is one the network reads; one choice for the embeddings and every layer,
    because the residual connections add them dimension by dimension;
  * a layer's attention heads by ``||W_v[head rows, kept dims]|| x ||W_o[kept dims, head columns]||``, the size of
    what the head can write into the kept residual dimensions;
  * a layer's FFN units by ``||W_in[unit, kept dims]|| x ||W_out[kept dims, unit]||``, likewise.

  Heads and units are ranked in the teacher layer a student layer starts from; the kept ones stay in the teacher's
  order.

:func:`cut_indices` chooses, :func:`cut_tensor` applies a choice to one tensor by the role of each of its axes
(residual, attention unit, FFN unit), read from the BERT-family parameter name.  Imports ``torch`` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch

SLICES = ("leading", "importance")
HIDDEN, UNIT, FFN = "hidden", "unit", "ffn"       # the roles an axis can have: residual dim, attention unit, FFN unit

# parameter-name endings of a BERT-family layer -> the role of each axis (out, in)
_LAYER_ROLES = {
    "attention.self.query.weight": (UNIT, HIDDEN), "attention.self.query.bias": (UNIT,),
    "attention.self.key.weight": (UNIT, HIDDEN), "attention.self.key.bias": (UNIT,),
    "attention.self.value.weight": (UNIT, HIDDEN), "attention.self.value.bias": (UNIT,),
    "attention.output.dense.weight": (HIDDEN, UNIT), "attention.output.dense.bias": (HIDDEN,),
    "attention.output.LayerNorm.weight": (HIDDEN,), "attention.output.LayerNorm.bias": (HIDDEN,),
    "intermediate.dense.weight": (FFN, HIDDEN), "intermediate.dense.bias": (FFN,),
    "output.dense.weight": (HIDDEN, FFN), "output.dense.bias": (HIDDEN,),
    "output.LayerNorm.weight": (HIDDEN,), "output.LayerNorm.bias": (HIDDEN,),
}
# outside the layers (matched on the name's ending): embeddings and pooler
_OTHER_ROLES = {
    "word_embeddings.weight": (None, HIDDEN), "position_embeddings.weight": (None, HIDDEN),
    "token_type_embeddings.weight": (None, HIDDEN),
    "embeddings.LayerNorm.weight": (HIDDEN,), "embeddings.LayerNorm.bias": (HIDDEN,),
    "pooler.dense.weight": (HIDDEN, HIDDEN), "pooler.dense.bias": (HIDDEN,),
}


class SliceError(ValueError):
    """A tensor the chosen slice cannot cut (a parameter it does not know the roles of)."""


@dataclass(frozen=True)
class Cut:
    """The teacher units a student keeps: residual dimensions (``hidden``, for every tensor), and per teacher layer
    (0-based) the attention units (``units``: whole heads) and FFN units (``ffn``).  ``None`` / a missing layer:
    the leading slice."""

    hidden: torch.Tensor | None = None
    units: Mapping[int, torch.Tensor] = field(default_factory=dict)
    ffn: Mapping[int, torch.Tensor] = field(default_factory=dict)

    @property
    def leading(self) -> bool:
        """Whether this cut is the leading slice of every tensor (it names no unit)."""
        return self.hidden is None and not self.units and not self.ffn

    def indices(self, role: str | None, layer: int | None, size: int) -> torch.Tensor | slice:
        """What an axis of ``role`` keeps in teacher layer ``layer`` (None outside the layers), ``size`` long."""
        chosen = None
        if role == HIDDEN:
            chosen = self.hidden
        elif role in (UNIT, FFN) and layer is not None:
            chosen = (self.units if role == UNIT else self.ffn).get(layer)
        if chosen is None:
            return slice(0, size)
        assert len(chosen) == size, (role, layer, len(chosen), size)
        return chosen


def roles_of(key: str, in_layer: bool) -> tuple | None:
    """The role of each axis of the parameter ``key`` (its name inside a layer when ``in_layer``), None if unknown."""
    if in_layer:
        return _LAYER_ROLES.get(key)
    return next((roles for end, roles in _OTHER_ROLES.items() if key.endswith(end)), None)


def cut_tensor(t: torch.Tensor, shape: torch.Size, key: str, cut: Cut, *, rest: str | None = None,
               layer: int | None = None) -> torch.Tensor:
    """``t`` cut to ``shape``: each axis whose size differs keeps the units ``cut`` names for its role.  ``rest`` and
    ``layer``: the name inside the layer and the teacher layer (0-based) for a layer's parameter."""
    if tuple(t.shape) == tuple(shape):
        return t.clone()
    if cut.leading:
        return t[tuple(slice(0, n) for n in shape)].clone()
    roles = roles_of(rest if rest is not None else key, rest is not None)
    if roles is None or len(roles) != t.dim():
        raise SliceError(f"student.slice = 'importance' knows the BERT family's parameters, not {key} "
                         f"{tuple(t.shape)} -> {tuple(shape)}; use student.slice = 'leading' for this teacher")
    out = t
    for axis, (role, n) in enumerate(zip(roles, shape)):
        if out.shape[axis] == n:
            continue
        index = cut.indices(role, layer, n) if role is not None else slice(0, n)
        out = out[(slice(None),) * axis + (index,)] if isinstance(index, slice) else out.index_select(axis, index)
    return out.clone()


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` highest-scoring indices, in increasing order (ties: the lower index)."""
    order = torch.argsort(-scores, stable=True)[:k]
    return torch.sort(order).values


def cut_indices(t_state: Mapping[str, torch.Tensor], layer_prefix: str, sources: list[int], *, hidden: int,
                heads: int, ffn: int, head_size: int) -> Cut:
    """The importance cut (module docstring) of a teacher with state ``t_state`` (its layers under ``layer_prefix``)
    for a student of ``hidden`` residual dimensions, ``heads`` heads of ``head_size`` and ``ffn`` FFN units whose
    layers start from the 1-based teacher layers ``sources``."""
    gammas = [t.float().abs() for k, t in t_state.items() if k.endswith("LayerNorm.weight") and t.dim() == 1]
    if not gammas or len({g.shape[0] for g in gammas}) != 1:
        raise SliceError("student.slice = 'importance' ranks residual dimensions by the teacher's LayerNorm weights "
                         "(parameters named ...LayerNorm.weight, all of the hidden size), and this teacher has none "
                         "such; use student.slice = 'leading' for this teacher")
    t_hidden = gammas[0].shape[0]
    kept = _top(torch.stack(gammas).sum(0), hidden) if hidden < t_hidden else torch.arange(t_hidden)

    def weight(layer: int, rest: str) -> torch.Tensor:
        return t_state[f"{layer_prefix}{layer}.{rest}"].float()

    units, ffns = {}, {}
    for layer in sorted({s - 1 for s in sources}):
        w_v = weight(layer, "attention.self.value.weight")[:, kept]                    # (units, kept)
        w_o = weight(layer, "attention.output.dense.weight")[kept, :]                  # (kept, units)
        t_heads = w_v.shape[0] // head_size
        if heads < t_heads:
            score = (w_v.reshape(t_heads, head_size, -1).flatten(1).norm(dim=1)
                     * w_o.reshape(-1, t_heads, head_size).transpose(0, 1).flatten(1).norm(dim=1))
            chosen = _top(score, heads)
            units[layer] = (chosen[:, None] * head_size + torch.arange(head_size)).flatten()
        w_in = weight(layer, "intermediate.dense.weight")[:, kept]                     # (ffn, kept)
        w_out = weight(layer, "output.dense.weight")[kept, :]                          # (kept, ffn)
        if ffn < w_in.shape[0]:
            ffns[layer] = _top(w_in.norm(dim=1) * w_out.norm(dim=0), ffn)
    return Cut(hidden=kept if hidden < t_hidden else None, units=units, ffn=ffns)
