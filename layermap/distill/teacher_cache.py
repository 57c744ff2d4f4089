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
written under a temporary name (``<key>.tmp<PID>``) and renamed, so a killed build leaves nothing
half-written; the next build removes temporary folders whose process is gone.

The folder is keyed by the teacher's identity and the slice's identity, a hash of its token ids
(:func:`layermap.distill.corpus.content_identity`).  ``meta.json`` records both, the shape and the sha256 of
every file; opening a cache checks the identities and the shapes, and the file digests too when the
cache is at most ``VERIFY_BYTES`` (a larger cache is checked by size only, to keep opening cheap).
A value that overflows float16 (``|x| > 65504``) is an error at build time, not a later NaN.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import digest
from .batches import to_device
from .corpus import Segments, default_cache_dir
from ..errors import LayermapError
from .losses import LayerOutputs
from .models import Teacher, attention_scores, capture_qk

_FILES = ("hidden.npy", "q.npy", "k.npy")
FORMAT = 2
VERIFY_BYTES = 4 << 30
_TMP = re.compile(r"\.tmp(\d+)$")


class TeacherCacheError(LayermapError):
    """A teacher cache that does not match its slice or teacher, is damaged, or cannot be built."""


def cache_key(teacher_identity: str, segments: Segments) -> str:
    return digest({"teacher": teacher_identity, "segments": segments.identity, "format": FORMAT})[:24]


def cache_bytes(segments: Segments, num_layers: int, hidden_size: int) -> int:
    return len(segments) * segments.seq_len * hidden_size * (3 * num_layers + 1) * 2


@dataclass
class CachedTeacher:
    """A :class:`layermap.distill.loop.TeacherSource` that reads precomputed outputs by segment index."""

    folder: Path
    heads: int

    def __post_init__(self) -> None:
        self.hidden = np.load(self.folder / "hidden.npy", mmap_mode="r")   # (S, N+1, L, D) fp16
        self.q = np.load(self.folder / "q.npy", mmap_mode="r")             # (S, N, L, D) fp16
        self.k = np.load(self.folder / "k.npy", mmap_mode="r")             # (S, N, L, D) fp16

    def outputs(self, indices, ids, mask, hidden_layers, att_layers) -> LayerOutputs:
        """The asked-for layers of the batch ``indices``: one gather per file on the host, one non-blocking copy each
        from pinned memory to the device (no host sync), then float32 and the scores there."""
        device = ids.device
        idx = np.asarray(indices)
        hidden_layers, att_layers = list(hidden_layers), list(att_layers)

        def _take(arr: np.ndarray, layers: list[int]) -> torch.Tensor:
            if not layers:
                return torch.empty(0)
            gathered = arr[idx[:, None], np.asarray(layers)[None, :]]                          # (B, n, L, D) fp16
            return to_device(gathered, device).to(torch.float32)

        h, q, k = _take(self.hidden, hidden_layers), _take(self.q, [j - 1 for j in att_layers]), \
            _take(self.k, [j - 1 for j in att_layers])
        hidden = {layer: h[:, j] for j, layer in enumerate(hidden_layers)}                     # each (B, L, D)
        scores = {layer: attention_scores(q[:, j], k[:, j], self.heads) for j, layer in enumerate(att_layers)}
        return LayerOutputs(hidden=hidden, scores=scores)


def build_teacher_cache(teacher: Teacher, segments: Segments, *, cache_dir: str = "", batch_size: int = 64,
                        device: torch.device | str = "cpu", progress: bool = True) -> CachedTeacher:
    """Run the teacher once over ``segments`` (or find that run on disk) -> a CachedTeacher."""
    root = default_cache_dir(cache_dir) / "teacher"
    folder = root / cache_key(teacher.identity, segments)
    heads = teacher.model.config.num_attention_heads
    n, d, s, l = teacher.num_layers, teacher.hidden_size, len(segments), segments.seq_len
    if all((folder / f).is_file() for f in _FILES):
        verify_cache(folder, teacher.identity, segments.identity, [s, n, l, d])
        return CachedTeacher(folder, heads)
    remove_stale_builds(root)
    tmp = root / f"{folder.name}.tmp{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "host").write_text(socket.gethostname())
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
            hidden[idx] = _half(torch.stack(out.hidden_states, 1), "hidden state", start)                # (B, N+1, L, D)
            q[idx] = _half(torch.stack([qk[j]["q"] for j in range(1, n + 1)], 1), "query", start)        # (B, N, L, D)
            k[idx] = _half(torch.stack([qk[j]["k"] for j in range(1, n + 1)], 1), "key", start)          # (B, N, L, D)
        for arr in (hidden, q, k):
            arr.flush()
        del hidden, q, k
        (tmp / "host").unlink()
        (tmp / "meta.json").write_text(json.dumps({"teacher": teacher.identity, "segments": segments.identity,
                                                   "shape": [s, n, l, d], "format": FORMAT,
                                                   "files": {f: _file_sha256(tmp / f) for f in _FILES}}))
        try:
            os.replace(tmp, folder)
        except OSError:               # another process finished the same cache first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return CachedTeacher(folder, heads)


def _half(x: torch.Tensor, what: str, first_segment: int) -> np.ndarray:
    """``x`` as float16 on the CPU; a value float16 cannot hold is an error, not a later NaN."""
    if not torch.isfinite(x).all():
        raise TeacherCacheError(f"the teacher gave a non-finite {what} on the corpus segments from {first_segment}; "
                                "check the teacher's weights")
    y = x.to("cpu", torch.float16)
    if not torch.isfinite(y).all():
        raise TeacherCacheError(
            f"a teacher {what} on the corpus segments from {first_segment} reaches {float(x.abs().max()):.4g}, beyond "
            "float16's 65504; set proxy.teacher_cache = false to run the teacher live instead"
        )
    return y.numpy()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def verify_cache(folder: Path, teacher_identity: str, segments_identity: str, shape: list[int]) -> None:
    """Check ``meta.json`` against the teacher, the slice and the files (see the module docstring)."""
    fix = f"delete {folder} and it is rebuilt on the next run"
    try:
        meta = json.loads((folder / "meta.json").read_text("utf-8"))
    except (OSError, ValueError):
        raise TeacherCacheError(f"teacher cache {folder} has no readable meta.json; {fix}") from None
    if (meta.get("teacher"), meta.get("segments"), meta.get("shape")) != (teacher_identity, segments_identity, shape):
        raise TeacherCacheError(f"teacher cache {folder} was built for another teacher or corpus slice; {fix}")
    files = meta.get("files") or {}
    total = sum((folder / f).stat().st_size for f in _FILES)
    if total > VERIFY_BYTES:
        return
    for f in _FILES:
        if files.get(f) != _file_sha256(folder / f):
            raise TeacherCacheError(f"teacher cache {folder} is damaged ({f} differs from the digest in meta.json); {fix}")


def remove_stale_builds(root: Path) -> list[Path]:
    """Remove ``*.tmp<PID>`` folders left under ``root`` by builds on this machine whose process is gone."""
    removed = []
    if not root.is_dir():
        return removed
    here = socket.gethostname()
    for path in root.iterdir():
        match = _TMP.search(path.name)
        if not match or not path.is_dir():
            continue
        try:
            host = (path / "host").read_text().strip()
        except OSError:
            host = here                   # a build finished writing (or an older layermap): judge by the PID
        if host != here or _alive(int(match.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True
