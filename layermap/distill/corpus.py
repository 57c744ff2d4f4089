"""Corpus -> tokenised fixed-length segments, deterministic slices, and an on-disk cache.

Input: a plain-text file with one paragraph per line and a blank line between documents (the
usual BERT pre-training layout), or a ``datasets`` name (``name`` or ``name:config``, split
``train``, column ``text``; an empty row separates documents).

Segmentation: each document's paragraphs are tokenised (no special tokens) and concatenated;
the token stream is cut into pieces of ``seq_len - 2`` tokens, each wrapped as
``[CLS] piece [SEP]`` and padded to ``seq_len``.  Segments never cross a document boundary; a
document's last piece is kept when it has at least ``seq_len // 4`` tokens.

The tokenised corpus is cached under ``cache_dir`` keyed by the corpus bytes, the tokenizer
and ``seq_len`` (and ``max_documents``), so a second run does not tokenise again.  A segment
set's ``identity`` is a hash of its token ids and lengths (not of the parameters that produced
them), so anything keyed by it (the teacher cache, distillation checkpoints) follows the data
even if tokenisation or numpy's random stream changes.

Bytes that are not UTF-8 are replaced (U+FFFD) and counted; a warning on stderr gives the count.
"""

from __future__ import annotations

import codecs
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from ..config import digest
from ..errors import LayermapError
from .identity import file_digest, hub_identity
from ..logs import get_logger

_log = get_logger(__name__)

_TOKENIZE_BATCH = 256


class CorpusError(LayermapError):
    """A corpus that cannot be read or yields no segments."""


@dataclass(frozen=True)
class Segments:
    """Token ids (S, L) int32 and true lengths (S,) of S fixed-length segments."""

    input_ids: np.ndarray
    lengths: np.ndarray
    identity: str          # hash of the token ids and lengths (content_identity): keys teacher caches and checkpoints

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[1])

    def batch(self, indices: np.ndarray, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask), each (B, L) int64, for the given segment indices."""
        ids = torch.from_numpy(self.input_ids[indices].astype(np.int64))                         # (B, L)
        mask = (torch.arange(self.seq_len)[None, :] < torch.from_numpy(self.lengths[indices])[:, None]).long()  # (B, L)
        return ids.to(device), mask.to(device)


def content_identity(input_ids: np.ndarray, lengths: np.ndarray) -> str:
    """sha256 of the segments' token ids (as int32) and lengths, with their shape."""
    h = hashlib.sha256(repr((tuple(input_ids.shape), "int32")).encode())
    h.update(np.ascontiguousarray(input_ids, dtype=np.int32).tobytes())
    h.update(np.ascontiguousarray(lengths, dtype=np.int32).tobytes())
    return h.hexdigest()[:32]


def default_cache_dir(cache_dir: str = "") -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("LAYERMAP_CACHE", Path.home() / ".cache" / "layermap"))


def tokenizer_identity(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return digest(backend.to_str())[:32]
    return digest(sorted(tokenizer.get_vocab().items()))[:32]


def corpus_identity(path: str) -> str:
    """What a fingerprint knows of the corpus: ``file:<sha256>`` of a local file (hashed once per process), or
    ``datasets:<name>[:config]@<commit>`` for a ``datasets`` name, with the commit its ``main`` revision
    resolves to (by name only, with a warning, when it cannot be resolved; see :mod:`layermap.distill.identity`)."""
    p = Path(path).expanduser()
    if p.is_file():
        return "file:" + file_digest(p)
    ds_name, _, ds_config = path.partition(":")
    commit = hub_identity(ds_name, "main", "dataset", config=ds_config or None, what="corpus").rpartition("@")[2]
    return f"datasets:{path}@{commit}"


def _split_documents(lines: Iterable[str], max_documents: int) -> Iterator[list[str]]:
    """Lines -> documents (lists of paragraphs); a blank line ends a document."""
    doc: list[str] = []
    count = 0
    for line in lines:
        line = (line or "").strip()
        if line:
            doc.append(line)
        elif doc:
            yield doc
            count += 1
            doc = []
            if max_documents and count >= max_documents:
                return
    if doc:
        yield doc


_UNDECODABLE = [0]


def _count_and_replace(exc: UnicodeDecodeError) -> tuple[str, int]:
    _UNDECODABLE[0] += exc.end - exc.start
    return "\ufffd", exc.end


codecs.register_error("layermap_count", _count_and_replace)


def _iter_documents_from_file(path: Path, max_documents: int) -> Iterator[list[str]]:
    _UNDECODABLE[0] = 0
    try:
        with open(path, encoding="utf-8", errors="layermap_count") as f:
            yield from _split_documents(f, max_documents)
    except OSError as exc:
        raise CorpusError(f"corpus file {os.fspath(path)!r} cannot be read ({exc.strerror or exc}); "
                          "check its permissions and the disk it is on") from None
    if _UNDECODABLE[0]:
        _log.warning(f"corpus {os.fspath(path)!r} has {_UNDECODABLE[0]} bytes that are not UTF-8 "
                     "(replaced by U+FFFD); give a UTF-8 text file")


def _iter_documents_from_datasets(name: str, max_documents: int) -> Iterator[list[str]]:
    import datasets

    ds_name, _, ds_config = name.partition(":")
    try:
        ds = datasets.load_dataset(ds_name, ds_config or None, split="train")
    except Exception as exc:  # noqa: BLE001 - any hub/parse failure becomes one sentence
        raise CorpusError(
            f"corpus {name!r} is not a file and could not be loaded with datasets ({str(exc).splitlines()[0][:160]}); "
            "give a text file with one paragraph per line"
        ) from None
    if "text" not in ds.column_names:
        raise CorpusError(f"dataset {name!r} has no 'text' column (it has {', '.join(ds.column_names)}); give a text corpus")
    yield from _split_documents((row["text"] for row in ds), max_documents)


def check_source(path: str) -> None:
    """Fail early, in one sentence, for a corpus that names a local file which is not there.

    A path is read as a local file when it exists, starts with ``.``, ``/`` or ``~``, or ends in
    ``.txt``; anything else is taken for a ``datasets`` name (``name`` or ``name:config``)."""
    if not path:
        raise CorpusError("no corpus given; pass --corpus with a text file (one paragraph per line) or a datasets name")
    p = Path(path).expanduser()
    if not p.is_file() and (p.exists() or path.startswith((".", "/", "~")) or path.endswith((".txt", ".text"))):
        raise CorpusError(f"corpus file {path!r} does not exist (or is not a file); give a text file with one paragraph per line")
    if p.is_file():
        try:
            with open(p, "rb") as f:
                head = f.read(1 << 16)
        except OSError as exc:
            raise CorpusError(f"corpus file {path!r} cannot be read ({exc.strerror or exc}); "
                              "check its permissions and the disk it is on") from None
        if not head.strip():
            raise CorpusError(f"corpus file {path!r} is empty; give a text file with one paragraph per line")


def iter_documents(path: str, max_documents: int = 0) -> Iterator[list[str]]:
    check_source(path)
    p = Path(path).expanduser()
    if p.is_file():
        return _iter_documents_from_file(p, max_documents)
    return _iter_documents_from_datasets(path, max_documents)


def _segment_document(token_lists: list[list[int]], cls_id: int, sep_id: int, seq_len: int,
                      out_ids: list[np.ndarray], out_len: list[int]) -> None:
    stream = [t for toks in token_lists for t in toks]
    body = seq_len - 2
    for start in range(0, len(stream), body):
        piece = stream[start:start + body]
        if len(piece) < max(1, seq_len // 4):     # a short tail (or a short document) is dropped
            break
        row = np.zeros(seq_len, dtype=np.int32)
        row[0], row[1:1 + len(piece)], row[1 + len(piece)] = cls_id, piece, sep_id
        out_ids.append(row)
        out_len.append(len(piece) + 2)


def tokenize_corpus(path: str, tokenizer, seq_len: int = 128, *, max_documents: int = 0,
                    cache_dir: str = "", progress: bool = True) -> Segments:
    """All segments of a corpus, tokenised once and cached on disk (``.npz``)."""
    check_source(path)
    key = digest({"corpus": corpus_identity(path),
                  "tokenizer": tokenizer_identity(tokenizer), "seq_len": seq_len, "max_documents": max_documents})[:24]
    cache_file = default_cache_dir(cache_dir) / "corpus" / f"{key}.npz"
    if cache_file.is_file():
        with np.load(cache_file) as z:
            ids, lengths = z["input_ids"], z["lengths"]
        return Segments(input_ids=ids, lengths=lengths, identity=content_identity(ids, lengths))
    docs = iter_documents(path, max_documents)
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls_id is None or sep_id is None:
        raise CorpusError("the teacher's tokenizer has no [CLS]/[SEP] tokens; only BERT-style tokenizers are supported")
    out_ids: list[np.ndarray] = []
    out_len: list[int] = []
    bar = _progress(progress, f"tokenising {Path(path).name}", max_documents or None)
    pending: list[list[str]] = []
    for doc in docs:
        pending.append(doc)
        if sum(len(d) for d in pending) >= _TOKENIZE_BATCH:
            _flush(pending, tokenizer, cls_id, sep_id, seq_len, out_ids, out_len)
            bar.update(len(pending))
            pending = []
    _flush(pending, tokenizer, cls_id, sep_id, seq_len, out_ids, out_len)
    bar.update(len(pending))
    bar.close()
    if not out_ids:
        raise CorpusError(f"corpus {path!r} yielded no segments of at least {max(1, seq_len // 4)} tokens; give more text")
    ids, lengths = np.stack(out_ids), np.asarray(out_len, dtype=np.int32)
    segments = Segments(input_ids=ids, lengths=lengths, identity=content_identity(ids, lengths))
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, input_ids=segments.input_ids, lengths=segments.lengths)
    os.replace(tmp, cache_file)
    return segments


def _flush(docs: list[list[str]], tokenizer, cls_id: int, sep_id: int, seq_len: int,
           out_ids: list[np.ndarray], out_len: list[int]) -> None:
    if not docs:
        return
    flat = [p for d in docs for p in d]
    encoded = tokenizer(flat, add_special_tokens=False, return_attention_mask=False,
                        return_token_type_ids=False)["input_ids"]
    i = 0
    for d in docs:
        _segment_document(encoded[i:i + len(d)], cls_id, sep_id, seq_len, out_ids, out_len)
        i += len(d)


def _progress(enabled: bool, desc: str, total: int | None):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="doc", disable=not enabled, leave=False)


def slice_segments(segments: Segments, *, count: int = 0, fraction: float = 1.0, seed: int = 0) -> Segments:
    """A deterministic sample: ``count`` segments (or ``fraction`` of them when count is 0),
    drawn without replacement by ``numpy.random.default_rng(seed)``, in corpus order."""
    n = len(segments)
    k = min(count, n) if count else max(1, int(round(n * fraction)))
    if k >= n:
        idx = np.arange(n)
    else:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
    ids, lengths = segments.input_ids[idx], segments.lengths[idx]
    return Segments(input_ids=ids, lengths=lengths, identity=content_identity(ids, lengths))


def load_segments(path: str, tokenizer, *, seq_len: int = 128, max_segments: int = 0, fraction: float = 1.0,
                  seed: int = 0, max_documents: int = 0, cache_dir: str = "", progress: bool = True) -> Segments:
    """Tokenise (or read from cache) and slice: the one call the rest of layermap uses."""
    full = tokenize_corpus(path, tokenizer, seq_len, max_documents=max_documents, cache_dir=cache_dir, progress=progress)
    return slice_segments(full, count=max_segments, fraction=fraction, seed=seed)
