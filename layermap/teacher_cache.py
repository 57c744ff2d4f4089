"""Teacher outputs computed once per (teacher, corpus slice) and shared by every genome.

The teacher and the corpus slice are the same for every genome of a search, so its forward
pass need not be paid once per genome per step.  :func:`build_teacher_cache` runs the teacher
once over the slice and stores, in float16 ``.npy`` files that are memory-mapped on read:

* ``hidden.npy``  (S, N+1, L, D): every hidden state, embeddings included;
* ``q.npy``, ``k.npy``  (S, N, L, D): every layer's projected queries and keys, from which the
  pre-softmax attention scores are rebuilt per batch (``Q K^T / sqrt(d)``; half the bytes of
  storing the (H, L, L) scores when ``H * L >= 2 * D``).

Every layer is stored because any genome of the search space may ask for any of them.  Size:
``S * L * D * (3N + 1) * 2`` bytes (MiniLM-L6, L=64: about 0.9 MB a segment).  The folder is
written under a temporary name and renamed, so a killed build leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import digest
from .corpus import Segments, default_cache_dir
from .losses import LayerOutputs
from .models import Teacher, attention_scores, capture_qk

_FILES = ("hidden.npy", "q.npy", "k.npy")


def cache_key(teacher_identity: str, segments: Segments) -> str:
    return digest({"teacher": teacher_identity, "segments": segments.identity, "format": 1})[:24]


def cache_bytes(segments: Segments, num_layers: int, hidden_size: int) -> int:
    return len(segments) * segments.seq_len * hidden_size * (3 * num_layers + 1) * 2


@dataclass
class CachedTeacher:
    """A :class:`layermap.distill.TeacherSource` that reads precomputed outputs by segment index."""

    folder: Path
    heads: int

    def __post_init__(self) -> None:
        self.hidden = np.load(self.folder / "hidden.npy", mmap_mode="r")   # (S, N+1, L, D) fp16
        self.q = np.load(self.folder / "q.npy", mmap_mode="r")             # (S, N, L, D) fp16
        self.k = np.load(self.folder / "k.npy", mmap_mode="r")             # (S, N, L, D) fp16

    def outputs(self, indices, ids, mask, hidden_layers, att_layers) -> LayerOutputs:
        device = ids.device
        idx = np.asarray(indices)

        def _take(arr: np.ndarray, layer: int) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(arr[idx, layer])).to(device=device, dtype=torch.float32)  # (B, L, D)

        hidden = {k: _take(self.hidden, k) for k in hidden_layers}
        scores = {k: attention_scores(_take(self.q, k - 1), _take(self.k, k - 1), self.heads) for k in att_layers}
        return LayerOutputs(hidden=hidden, scores=scores)


def build_teacher_cache(teacher: Teacher, segments: Segments, *, cache_dir: str = "", batch_size: int = 64,
                        device: torch.device | str = "cpu", progress: bool = True) -> CachedTeacher:
    """Run the teacher once over ``segments`` (or find that run on disk) -> a CachedTeacher."""
    root = default_cache_dir(cache_dir) / "teacher"
    folder = root / cache_key(teacher.identity, segments)
    heads = teacher.model.config.num_attention_heads
    if all((folder / f).is_file() for f in _FILES):
        return CachedTeacher(folder, heads)
    n, d, s, l = teacher.num_layers, teacher.hidden_size, len(segments), segments.seq_len
    tmp = root / f"{folder.name}.tmp{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        hidden = np.lib.format.open_memmap(tmp / "hidden.npy", mode="w+", dtype=np.float16, shape=(s, n + 1, l, d))
        q = np.lib.format.open_memmap(tmp / "q.npy", mode="w+", dtype=np.float16, shape=(s, n, l, d))
        k = np.lib.format.open_memmap(tmp / "k.npy", mode="w+", dtype=np.float16, shape=(s, n, l, d))
        model = teacher.model.to(device).eval()
        from tqdm.auto import tqdm
        for start in tqdm(range(0, s, batch_size), desc="caching teacher outputs", disable=not progress, leave=False):
            idx = np.arange(start, min(s, start + batch_size))
            ids, mask = segments.batch(idx, device)                                    # (B, L)
            with torch.no_grad(), capture_qk(model, range(1, n + 1)) as qk:
                out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            hidden[idx] = torch.stack(out.hidden_states, 1).to("cpu", torch.float16).numpy()          # (B, N+1, L, D)
            q[idx] = torch.stack([qk[j]["q"] for j in range(1, n + 1)], 1).to("cpu", torch.float16).numpy()  # (B, N, L, D)
            k[idx] = torch.stack([qk[j]["k"] for j in range(1, n + 1)], 1).to("cpu", torch.float16).numpy()  # (B, N, L, D)
        for arr in (hidden, q, k):
            arr.flush()
        del hidden, q, k
        (tmp / "meta.json").write_text(json.dumps({"teacher": teacher.identity, "segments": segments.identity,
                                                   "shape": [s, n, l, d]}))
        try:
            os.replace(tmp, folder)
        except OSError:               # another process finished the same cache first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return CachedTeacher(folder, heads)
