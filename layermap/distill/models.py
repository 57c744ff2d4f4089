"""Teacher loading, student construction and initialisation, and the attention-score probe.

Teachers are Hugging Face encoders of the BERT family (BERT, RoBERTa, ELECTRA, ...) given as a
hub name or a local directory.  A student is a smaller encoder of the teacher's family,
built from the teacher's config with a :class:`StudentSpec`, sharing the teacher's tokenizer.
"""

from __future__ import annotations

import copy
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
import transformers
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ..config import digest
from ..versions import release
from ..errors import LayermapError
from .identity import file_digest, hub_identity
from ..mapping import LayerMapping, baseline

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "tf_model.h5", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
                   "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model", "spm.model", "tokenizer.model")
_TRANSFORMERS_MAJOR = release(transformers.__version__)[0]      # 4 or 5: which attention mask a forward takes


class ModelError(LayermapError):
    """A teacher that cannot be loaded or a student spec that does not fit it."""


@dataclass(frozen=True)
class StudentSpec:
    """Shape of a student: ``layers`` M, ``hidden_size``, ``heads``, ``ffn`` (intermediate) size."""

    layers: int
    hidden_size: int
    heads: int
    ffn: int

    def __post_init__(self) -> None:
        if min(self.layers, self.hidden_size, self.heads, self.ffn) < 1:
            raise ModelError(f"student spec {self} has a non-positive size; every size must be at least 1")
        if self.hidden_size % self.heads:
            raise ModelError(
                f"student hidden size {self.hidden_size} is not divisible by its {self.heads} heads; pick sizes so that hidden/heads is whole"
            )

    @classmethod
    def resolve(cls, teacher_config, layers: int, hidden_size: int = 0, heads: int = 0, ffn: int = 0) -> "StudentSpec":
        """Fill sizes given as 0 from the teacher (hidden, heads) or as ``4 * hidden`` (ffn)."""
        hidden = hidden_size or teacher_config.hidden_size
        return cls(layers=layers, hidden_size=hidden, heads=heads or teacher_config.num_attention_heads, ffn=ffn or 4 * hidden)


@dataclass(frozen=True)
class Teacher:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    identity: str          # stable id for fingerprints (teacher_identity): weights + tokenizer digest, or hub name@commit

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size


def _looks_like_path(name: str) -> bool:
    """A local path unless it reads as a hub id (``bert-base-uncased``, ``org/model``)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def _check_teacher_source(name: str) -> None:
    if not name:
        raise ModelError("no teacher given; pass --teacher with a hub name (e.g. bert-base-uncased) or a local model directory")
    path = Path(name).expanduser()
    if not path.exists() and _looks_like_path(name):
        raise ModelError(f"teacher path {name!r} does not exist; give a local model directory or a hub name")
    if path.exists() and not (path / "config.json").is_file():
        raise ModelError(f"teacher directory {name!r} has no config.json; point --teacher at a folder written by save_pretrained")


def _hub_failure(name: str, exc: BaseException) -> ModelError:
    if Path(name).expanduser().exists():
        return ModelError(f"teacher directory {name!r} could not be loaded ({_first_line(exc)}); it needs the files "
                          "save_pretrained writes for the model and its tokenizer")
    return ModelError(
        f"could not load the teacher {name!r}: it is not a local directory and the Hugging Face Hub did not serve it "
        f"({_first_line(exc)}); offline, pass a local model directory"
    )


def load_teacher_config(name: str, revision: str = "main"):
    """The teacher's config alone (cheap): layer count and widths without loading weights."""
    _check_teacher_source(name)
    try:
        return AutoConfig.from_pretrained(os.path.expanduser(name), revision=revision)
    except (OSError, ValueError) as exc:
        raise _hub_failure(name, exc) from None


def teacher_identity(name: str, revision: str = "main") -> str:
    """What a fingerprint knows of the teacher.

    A local directory: a digest of its config, every weight file (shards included) and every tokenizer
    file beside them (:data:`TOKENIZER_FILES` and any ``*.model`` sentencepiece file), so new tokenizer files
    beside the same weights make a new identity.  A hub name: ``hub:name@<commit>`` with the commit the
    revision resolves to (:func:`layermap.distill.identity.hub_identity`; by name only, with a warning, when it
    cannot be resolved).  Files are hashed once per process."""
    path = Path(name).expanduser()
    if path.is_dir():
        parts: dict = {"config": file_digest(path / "config.json")}
        for file in _weight_files(path):
            parts[file.name] = file_digest(file)
        parts["tokenizer"] = {file.name: file_digest(file) for file in tokenizer_files(path)}
        return "local:" + digest(parts)[:32]
    return "hub:" + hub_identity(name, revision, "model", what="teacher")


def _weight_files(path: Path) -> list[Path]:
    """The weight files of a saved model: single files and the shards an index names (``model-00001-of-00002...``)."""
    files = [path / f for f in WEIGHT_FILES if (path / f).is_file()]
    shards = [p for pattern in ("model-*-of-*.safetensors", "pytorch_model-*-of-*.bin", "tf_model-*-of-*.h5")
              for p in path.glob(pattern) if p.is_file()]
    return files + sorted(shards)


def tokenizer_files(path: str | os.PathLike) -> list[Path]:
    """The tokenizer files present in a model directory, sorted by name."""
    folder = Path(path)
    return sorted(p for p in folder.iterdir() if p.is_file() and (p.name in TOKENIZER_FILES or p.suffix == ".model"))


def load_teacher(name: str, revision: str = "main", *, device: str | torch.device = "cpu") -> Teacher:
    """Load a teacher encoder and its tokenizer from a hub name or a local directory."""
    _check_teacher_source(name)
    src = os.path.expanduser(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(src, revision=revision)
    except (OSError, ValueError) as exc:
        raise _hub_failure(name, exc) from None
    except Exception as exc:  # noqa: BLE001 - transformers 4.57 raises TypeError for a folder without tokenizer files
        raise ModelError(f"teacher {name!r} has no usable tokenizer ({type(exc).__name__}: {_first_line(exc)}); save "
                         "the tokenizer beside the model with save_pretrained") from None
    try:
        model = AutoModel.from_pretrained(src, revision=revision)
    except (OSError, ValueError) as exc:
        raise _hub_failure(name, exc) from None
    except Exception as exc:  # noqa: BLE001 - e.g. SafetensorError for damaged weights: one sentence, not a traceback
        raise ModelError(f"the weights of teacher {name!r} could not be read ({type(exc).__name__}: {_first_line(exc)}); "
                         "the files are damaged or incomplete - save or download the model again") from None
    if len(tokenizer) < model.config.vocab_size // 2:      # transformers 5 builds an empty tokenizer silently
        raise ModelError(
            f"teacher {name!r} has no usable tokenizer ({len(tokenizer)} tokens for a model vocabulary of "
            f"{model.config.vocab_size}); save the tokenizer beside the model with save_pretrained"
        )
    if not hasattr(model.config, "num_hidden_layers"):
        raise ModelError(f"teacher {name!r} is not a BERT-like encoder (its config has no num_hidden_layers)")
    try:
        _qk_modules(encoder_layers(model)[0])
    except (ModelError, AttributeError, IndexError, TypeError):
        raise ModelError(f"teacher {name!r} ({type(model).__name__}) is not a BERT-like encoder with encoder.layer[i]."
                         "attention.self.query/key; give a BERT, RoBERTa or ELECTRA-style model") from None
    model.eval().requires_grad_(False).to(device)
    return Teacher(model=model, tokenizer=tokenizer, name=name, identity=teacher_identity(name, revision))


def quiet_transformers() -> None:
    """No weight-loading progress bars or load reports (the CLI and every worker call this)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def build_student(teacher_config, spec: StudentSpec, *, seed: int = 0) -> PreTrainedModel:
    """A randomly initialised student of the teacher's family (same vocabulary and positions)."""
    cfg = copy.deepcopy(teacher_config)
    cfg.num_hidden_layers = spec.layers
    cfg.hidden_size = spec.hidden_size
    cfg.num_attention_heads = spec.heads
    cfg.intermediate_size = spec.ffn
    if hasattr(cfg, "embedding_size"):        # ELECTRA-style factorised embeddings
        cfg.embedding_size = spec.hidden_size
    for attr in ("_name_or_path", "architectures"):
        if hasattr(cfg, attr):
            setattr(cfg, attr, None if attr == "architectures" else "")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = AutoModel.from_config(cfg)
    return student


def init_student_from_teacher(student: PreTrainedModel, teacher: PreTrainedModel, mapping: LayerMapping,
                              slicing: str = "importance") -> None:
    """Extract-Then-Distill style initialisation, in place.

    Embeddings are copied from the teacher; student layer ``m`` starts as teacher layer
    ``g(m)``, and a layer with gene 0 starts as the uniform baseline's layer for ``m``.
    When widths differ each tensor keeps the teacher units ``slicing`` (``student.slice``) chooses (:mod:`layermap.distill.slicing`):
    ``leading`` the leading slice (``W[:d_out, :d_in]``, ``b[:d]``), ``importance`` the residual dimensions, heads
    and FFN units the teacher's weights rank highest.  A student *wider* than the teacher in any tensor is an error;
    which shapes the slice turns into an extraction of the teacher (whole teacher heads) is checked before any work
    by :func:`layermap.extraction.check_extraction`.
    """
    from .slicing import SLICES, Cut, SliceError, cut_indices, cut_tensor

    if slicing not in SLICES:
        raise ModelError(f"student.slice must be one of {', '.join(SLICES)}, got {slicing!r}")
    fallback = baseline("uniform", mapping.student_layers, mapping.teacher_layers)
    sources = [g if g > 0 else u for g, u in zip(mapping.genes, fallback)]
    t_state = teacher.state_dict()
    s_state = student.state_dict()
    s_layers, t_layers = _layer_prefix(student), _layer_prefix(teacher)
    try:
        cut = Cut()
        if slicing == "importance":
            s_cfg, t_cfg = student.config, teacher.config
            cut = cut_indices(t_state, t_layers, sources, hidden=s_cfg.hidden_size, heads=s_cfg.num_attention_heads,
                              ffn=s_cfg.intermediate_size, head_size=t_cfg.hidden_size // t_cfg.num_attention_heads)
        new_state = {}
        for key, s_tensor in s_state.items():
            t_key = _teacher_key(key, s_layers, t_layers, sources)
            if t_key not in t_state:
                new_state[key] = s_tensor          # e.g. a pooler the teacher lacks: keep the random init
                continue
            _check_narrower(t_state[t_key], s_tensor.shape, key)   # wider than the teacher: one sentence
            in_layer = key.startswith(s_layers)
            rest = key[len(s_layers):].split(".", 1)[1] if in_layer else None
            new_state[key] = cut_tensor(t_state[t_key], s_tensor.shape, key, cut, rest=rest,
                                        layer=int(t_key[len(t_layers):].split(".", 1)[0]) if in_layer else None)
    except SliceError as exc:
        raise ModelError(str(exc)) from None
    student.load_state_dict(new_state)


def _teacher_key(key: str, s_layers: str, t_layers: str, sources: list[int]) -> str:
    """The teacher parameter student parameter ``key`` starts from (its layer's source layer, 1-based)."""
    if not key.startswith(s_layers):
        return key
    idx, rest = key[len(s_layers):].split(".", 1)
    return f"{t_layers}{sources[int(idx)] - 1}.{rest}"


def _check_narrower(t: torch.Tensor, shape: torch.Size, key: str) -> None:
    if t.dim() != len(shape) or any(a < b for a, b in zip(t.shape, shape)):
        raise ModelError(
            f"cannot initialise the student from the teacher: {key} is {tuple(shape)} in the student but {tuple(t.shape)} "
            "in the teacher; use --init random for a student wider than its teacher"
        )


def _layer_prefix(model: PreTrainedModel) -> str:
    for name, _ in model.named_modules():
        if name.endswith("encoder.layer"):
            return name + "."
    raise ModelError(f"{type(model).__name__} has no encoder.layer list; only BERT-like encoders are supported")


def encoder_layers(model: PreTrainedModel) -> Sequence[nn.Module]:
    return model.get_submodule(_layer_prefix(model)[:-1])


def _qk_modules(layer: nn.Module) -> tuple[nn.Module, nn.Module]:
    attn = getattr(getattr(layer, "attention", None), "self", None)
    if attn is None or not hasattr(attn, "query") or not hasattr(attn, "key"):
        raise ModelError(f"{type(layer).__name__} has no attention.self.query/key; only BERT-like encoders are supported")
    return attn.query, attn.key


@contextmanager
def capture_qk(model: PreTrainedModel, layers: Sequence[int]) -> Iterator[dict[int, dict[str, torch.Tensor]]]:
    """Within the block, each forward of ``model`` fills ``out[k] = {"q": Q, "k": K}`` with layer
    ``k``'s (1-based) projected queries and keys, each (batch, seq, hidden).  Only the listed
    layers are hooked, so attention scores are paid for the layers the mapping uses and no
    others; :func:`attention_scores` turns a pair into pre-softmax scores.
    """
    blocks = encoder_layers(model)
    out: dict[int, dict[str, torch.Tensor]] = {}
    handles = []

    def _hook(k: int, which: str):
        def fn(_module, _inputs, output):
            out.setdefault(k, {})[which] = output
        return fn

    try:
        for k in sorted(set(layers)):
            q_mod, k_mod = _qk_modules(blocks[k - 1])
            handles.append(q_mod.register_forward_hook(_hook(k, "q")))
            handles.append(k_mod.register_forward_hook(_hook(k, "k")))
        yield out
    finally:
        for h in handles:
            h.remove()


@contextmanager
def student_attention() -> Iterator[None]:
    """The one attention path of every student forward that trains (:func:`layermap.distill.loop.distill` and the
    lockstep population alike, on every device): PyTorch's math SDPA kernel.

    Students inherit the teacher's ``sdpa`` attention.  Left to itself, SDPA on CUDA picks the flash, memory-efficient
    or cuDNN kernel, which draw attention dropout inside the kernel: their vmap batch rules refuse
    ``randomness="same"`` with dropout > 0 (the population would crash before its first step), and a sequential run
    would draw other dropout masks than the population.  The math kernel is what the CPU takes anyway: its dropout is
    an ordinary op, the same under vmap and outside it, so lockstep training equals sequential training on every
    device.  The teacher (no dropout, no gradient) keeps the fused kernels."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        yield


def model_mask(config, keys: torch.Tensor | None) -> torch.Tensor | None:
    """What a forward of a model with ``config`` gets as ``attention_mask`` for a batch whose real keys are ``keys``
    ((B, 1, 1, L) bool, :class:`layermap.distill.batches.Batch`).  transformers 5 takes a prepared 4D mask as it is
    (a 2D mask it reads on the host, ``padding_mask.all()``, to decide whether it may drop it): boolean for SDPA,
    additive for eager attention, the 2D mask for any other implementation.  transformers 4 refuses a 4D mask
    ("Wrong shape for input_ids") and takes a 3D one, (B, 1, L), which every attention implementation broadcasts
    over the queries (``get_extended_attention_mask``), with no host read; transformers 5 refuses that one."""
    if keys is None:
        return None
    if _TRANSFORMERS_MAJOR < 5:
        return keys[:, 0]                                                       # (B, 1, L)
    implementation = getattr(config, "_attn_implementation", None) or "sdpa"
    if implementation == "sdpa":
        return keys
    if implementation == "eager":
        return torch.zeros(keys.shape, device=keys.device).masked_fill(~keys, torch.finfo(torch.float32).min)
    return keys[:, 0, 0].long()


def attention_scores(q: torch.Tensor, k: torch.Tensor, heads: int) -> torch.Tensor:
    """Projected queries and keys (B, L, D) -> scores ``Q K^T / sqrt(d_head)`` (B, H, L, L),
    before softmax and before the attention mask is added."""
    b, l, d = q.shape
    dh = d // heads
    q = q.view(b, l, heads, dh).transpose(1, 2)          # (B, H, L, dh)
    k = k.view(b, l, heads, dh).transpose(1, 2)          # (B, H, L, dh)
    return torch.matmul(q, k.transpose(-1, -2)) / dh ** 0.5  # (B, H, L, L)


def check_seq_len(teacher_config, seq_len: int, setting: str) -> None:
    """A sequence length the teacher's position embeddings cannot hold is an error before any work."""
    max_positions = getattr(teacher_config, "max_position_embeddings", None)
    if max_positions is None:
        return
    offset = 2 if getattr(teacher_config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") else 0
    if seq_len > max_positions - offset:
        raise ModelError(f"{setting} = {seq_len} is longer than the teacher's {max_positions - offset} positions "
                         f"(max_position_embeddings); lower {setting}")


def pick_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else must be a device torch knows."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ModelError(f"device {device!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} was asked for but CUDA is not available; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ModelError(f"device {device!r} does not exist ({torch.cuda.device_count()} GPUs); use cuda:0 .. "
                         f"cuda:{torch.cuda.device_count() - 1}")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ModelError(f"device {device!r} is not supported; use auto, cpu, cuda or cuda:N")
    return dev
