"""The settings' sections: one frozen dataclass per ``[section]`` that checks its own values (``ConfigError``,
one sentence naming the key), and :class:`Config`, the sections together, which checks what spans two of them.
Imports ``mapping``, ``shape``, ``logs`` and ``errors``.
"""


from __future__ import annotations

import dataclasses
import functools
import math
import re
import warnings
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import LayermapError
from ..mapping import CONSTRAINTS, parse_genes
from ..shape import DEFAULT_FFN_RATIOS, DEFAULT_HIDDEN_STEP, ShapeError, check_divisible


class ConfigError(LayermapError):
    """A setting a user gave that is wrong; the message names it and says what to do."""


@dataclass(frozen=True)
class TeacherSettings:
    name: str = ""                 # hub name or local directory
    revision: str = "main"         # hub revision (ignored for a local directory)


@dataclass(frozen=True)
class StudentSettings:
    layers: int = 3
    hidden_size: int = 0           # 0 = the teacher's
    heads: int = 0                 # 0 = the teacher's
    ffn: int = 0                   # 0 = 4 * hidden_size
    init: str = "random"           # random | teacher
    slice: str = "importance"      # init = teacher, narrower than the teacher: importance (the units the teacher's
                                   # weights rank highest: layermap.distill.slicing; measured better, docs/extraction.md)
                                   # | leading (the first units: layermap before issue 30's Deliver 5)

    def __post_init__(self) -> None:
        if self.layers < 1:
            raise ConfigError(f"student.layers must be at least 1, got {self.layers}")
        if self.init not in ("random", "teacher"):
            raise ConfigError(f"student.init must be 'random' or 'teacher', got {self.init!r}")
        if self.slice not in ("leading", "importance"):
            raise ConfigError(f"student.slice must be 'leading' or 'importance', got {self.slice!r}")
        for k in ("hidden_size", "heads", "ffn"):
            if getattr(self, k) < 0:
                raise ConfigError(f"student.{k} must be >= 0 (0 = derive from the teacher), got {getattr(self, k)}")

    def identity(self, sliced: bool = True) -> dict:
        """These settings as a fingerprint takes them: ``slice`` only where it shapes the student (``sliced``:
        :func:`layermap.extraction.slice_matters`) and is not the leading slice every key before it had, so stored
        fitnesses, compare cells and checkpoints keep their keys."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "slice"}
        return {**out, **self.slice_identity(sliced)}

    def slice_identity(self, sliced: bool) -> dict:
        """``{"slice": ...}`` where the slice shapes the student (``sliced``) and is not the leading one; else ``{}``
        (the one rule of :meth:`identity` and of the proxy's student description)."""
        return {"slice": self.slice} if sliced and self.slice != "leading" else {}


@dataclass(frozen=True)
class CorpusSettings:
    path: str = ""                 # text file (one paragraph per line, blank line between documents) or a datasets name
    seq_len: int = 128
    max_segments: int = 0          # 0 = all
    fraction: float = 1.0          # used when max_segments is 0
    seed: int = 0
    max_documents: int = 0         # 0 = read the whole file before slicing; >0 stops reading after that many documents

    def __post_init__(self) -> None:
        if self.seq_len < 8:
            raise ConfigError(f"corpus.seq_len must be at least 8, got {self.seq_len}")
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"corpus.fraction must be in (0, 1], got {self.fraction}")
        if self.max_segments < 0 or self.max_documents < 0:
            raise ConfigError("corpus.max_segments and corpus.max_documents must be >= 0")


DISTILL_PRECISIONS = ("fp32", "tf32", "bf16")


@dataclass(frozen=True)
class DistillSettings:
    max_steps: int = 0             # 0 = epochs over the slice; both 0 = no distillation (a teacher-extracted student is
    epochs: float = 1.0            # scored as it is)
    batch_size: int = 32
    learning_rate: float = 5e-4
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    attention_weight: float = 1.0
    hidden_weight: float = 1.0
    embedding_weight: float = 1.0
    seed: int = 0
    checkpoint_every: int = 0      # steps; 0 = no intermediate checkpoints
    precision: str = "fp32"        # fp32 | tf32 (CUDA) | bf16 (autocast); enters the fingerprint

    def __post_init__(self) -> None:
        if self.precision not in DISTILL_PRECISIONS:
            raise ConfigError(f"distill.precision must be one of {', '.join(DISTILL_PRECISIONS)}, got {self.precision!r}")
        if self.batch_size < 1:
            raise ConfigError(f"distill.batch_size must be at least 1, got {self.batch_size}")
        if self.learning_rate <= 0:
            raise ConfigError(f"distill.learning_rate must be positive, got {self.learning_rate}")
        if self.max_steps < 0 or not 0 <= self.epochs < math.inf:
            raise ConfigError(f"distill.max_steps must be >= 0 and distill.epochs a number >= 0 (both 0: no "
                              f"distillation), got {self.max_steps} and {self.epochs}")
        if not 0 < self.learning_rate < math.inf:
            raise ConfigError(f"distill.learning_rate must be a positive number, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio <= 1:
            raise ConfigError(f"distill.warmup_ratio must be between 0 and 1, got {self.warmup_ratio}")
        for k in ("weight_decay", "max_grad_norm", "attention_weight", "hidden_weight", "embedding_weight"):
            if not 0 <= getattr(self, k) < math.inf:
                raise ConfigError(f"distill.{k} must be a number >= 0, got {getattr(self, k)}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"distill.checkpoint_every must be >= 0 (0 = no checkpoints), got {self.checkpoint_every}")


PROXY_HEADS = ("finetune", "probe")


@dataclass(frozen=True)
class ProxySettings:
    tasks: tuple[str, ...] = ("sst2", "mrpc", "rte")
    glue_dir: str = ""             # local GLUE folder; "" = datasets hub
    max_train: int = 2000          # 0 = all
    max_eval: int = 0              # 0 = all
    epochs: float = 3.0
    batch_size: int = 32
    learning_rate: float = 1e-4
    seq_len: int = 128
    seed: int = 0
    teacher_cache: bool = True     # reuse the teacher's outputs across genomes
    head: str = "finetune"         # finetune (a copy of the student is fine-tuned per task) | probe (frozen student, linear probe)
    pooling: str = "cls"           # finetune head: what it reads, cls (first token) | mean (mean of the token states; the
                                   # judge's, fair to teacher-extracted students)
    repeats: int = 1               # fine-tuning seeds per task (proxy.seed + r); fitness = their mean, with its standard error
    probe_pairs: str = "apart"     # probe head, pair tasks: apart (each sentence alone, [u, v, |u-v|, u*v]) | joint
    probe_c: float = 0.0           # probe head: the logistic regression's C (ridge alpha for stsb); 0 = chosen by
                                   # 4-fold cross-validation on the training set
    reference_seed_sets: int = 2   # seed sets the reference rows (teacher, no distillation, constant) are measured on
    allow_invalid: tuple[str, ...] = ()   # proxy tasks kept although invalid at these settings ("*" = any)
    task_noise: tuple[str, ...] = ()      # measured seed std of a distilled student's task score, "task=std" each
                                          # (benchmarks/bench_noise.py); validity uses it where it exceeds the rows' own

    def task_noise_map(self) -> dict[str, float]:
        """``task_noise`` as task -> measured seed std."""
        return _task_noise(self.task_noise)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ConfigError("proxy.tasks is empty; name at least one GLUE task, e.g. ['sst2', 'mrpc', 'rte']")
        for k in ("batch_size", "seq_len"):
            if getattr(self, k) < 1:
                raise ConfigError(f"proxy.{k} must be at least 1, got {getattr(self, k)}")
        for k in ("epochs", "learning_rate"):
            if not 0 < getattr(self, k) < math.inf:
                raise ConfigError(f"proxy.{k} must be a positive number, got {getattr(self, k)}")
        for k in ("max_train", "max_eval"):
            if getattr(self, k) < 0:
                raise ConfigError(f"proxy.{k} must be >= 0 (0 = all), got {getattr(self, k)}")
        if self.head not in PROXY_HEADS:
            raise ConfigError(f"proxy.head must be 'finetune' or 'probe', got {self.head!r}")
        if self.pooling not in ("cls", "mean"):
            raise ConfigError(f"proxy.pooling must be 'cls' or 'mean', got {self.pooling!r}")
        if isinstance(self.repeats, bool) or self.repeats < 1:
            raise ConfigError(f"proxy.repeats must be at least 1, got {self.repeats}")
        if self.probe_pairs not in ("apart", "joint"):
            raise ConfigError(f"proxy.probe_pairs must be 'apart' or 'joint', got {self.probe_pairs!r}")
        if not (self.probe_c >= 0 and math.isfinite(self.probe_c)):
            raise ConfigError(f"proxy.probe_c must be >= 0 (0 = chosen by cross-validation), got {self.probe_c}")
        if isinstance(self.reference_seed_sets, bool) or self.reference_seed_sets < 2:
            raise ConfigError(f"proxy.reference_seed_sets must be at least 2 (the seed noise of a task is their spread), "
                              f"got {self.reference_seed_sets}")
        self.task_noise_map()
        if self.head == "probe" and self.repeats > 1:
            raise ConfigError("proxy.repeats > 1 needs proxy.head = 'finetune': the probe head has no seed and gives "
                              "the same score every time; set proxy.repeats = 1")


def _task_noise(entries: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for entry in entries:
        task, _, value = str(entry).partition("=")
        try:
            std = float(value)
        except ValueError:
            std = -1.0
        if not task.strip() or not (std >= 0 and math.isfinite(std)):
            raise ConfigError(f"proxy.task_noise entry {entry!r} is not 'task=std' with a std >= 0; write e.g. "
                              "[\"sst2=1.25\", \"mrpc=1.22\"]")
        out[task.strip().lower().replace("-", "")] = std
    return out


SEARCH_STRATEGIES = ("ga", "racing", "enumerate", "enumerate-mapped", "nsga2")


@dataclass(frozen=True)
class SearchSettings:
    constraint: str = "free"
    population: int = 8
    generations: int = 4
    offspring: int = 0             # lambda; 0 = population
    crossover: str = "two_point"   # two_point | uniform
    cx_prob: float = 0.6
    mut_prob: float = 0.4
    gene_mut_prob: float = 0.0     # per-gene mutation probability; 0 = 1/M
    tournament_size: int = 3
    seed_baselines: bool = True
    seed_mappings: tuple[str, ...] = ()   # extra genomes for the first population, e.g. ["3-6-9-12"]
    hall_of_fame: int = 5          # how many best distinct genomes to keep
    seed: int = 0
    strategy: str = "ga"           # ga | racing (the GA on replicate means, elites re-evaluated under new seed sets) |
                                   # enumerate (every genome of the space, as generation 0) | enumerate-mapped (no zero gene)
                                   # | nsga2 (a Pareto front over search.objectives, layermap.searching.strategies.nsga2)
    noise_std: float = 0.0         # seed std of one fitness at this budget (benchmarks/bench_noise.py); show and the
                                   # run summary mark genomes within noise of the best with it; 0 = not measured
    replicate_cap: int = 4         # racing: the most seed sets one genome is evaluated under (the final pick needs this many)
    objectives: tuple[str, ...] = ("fitness",)   # fitness (maximised) first, then any of latency, latency_int8, params, flops
                                   # (minimised); more than fitness needs strategy "nsga2"
    confirm_seed_sets: int = 1     # racing: the last seed sets under the cap, kept out of the race: the final pick and the
                                   # best baseline are tested on them only (0 = test on the seed sets that chose them)
    genome: str = "coupled"        # coupled (one gene per student layer) | split (student.init = "teacher" only: the layer
                                   # each student layer starts from and the one it imitates, 1-2-3+2-4-6; layermap.extraction)

    def __post_init__(self) -> None:
        _check_objectives(self.objectives)
        if self.genome not in ("coupled", "split"):
            raise ConfigError(f"search.genome must be 'coupled' or 'split', got {self.genome!r}")
        if not (self.noise_std >= 0 and math.isfinite(self.noise_std)):
            raise ConfigError(f"search.noise_std must be a finite standard deviation >= 0 (0 = not measured), "
                              f"got {self.noise_std}")
        if self.replicate_cap < 1:
            raise ConfigError(f"search.replicate_cap must be at least 1 (the most seed sets a genome is evaluated under), "
                              f"got {self.replicate_cap}")
        if self.confirm_seed_sets < 0:
            raise ConfigError(f"search.confirm_seed_sets must be >= 0 (0 = no confirmation), got {self.confirm_seed_sets}")
        if self.strategy == "racing" and self.confirm_seed_sets >= self.replicate_cap:
            raise ConfigError(f"search.confirm_seed_sets = {self.confirm_seed_sets} leaves no seed set for the race under "
                              f"search.replicate_cap = {self.replicate_cap}; raise the cap above it or confirm on fewer seed sets")
        if self.strategy not in SEARCH_STRATEGIES:
            raise ConfigError(f"search.strategy must be one of {', '.join(SEARCH_STRATEGIES)}, got {self.strategy!r}")
        if self.constraint not in CONSTRAINTS:
            raise ConfigError(f"search.constraint must be one of {', '.join(CONSTRAINTS)}, got {self.constraint!r}")
        if self.population < 2:
            raise ConfigError(f"search.population must be at least 2, got {self.population}")
        if self.generations < 1:
            raise ConfigError(f"search.generations must be at least 1, got {self.generations}")
        if self.crossover not in ("two_point", "uniform"):
            raise ConfigError(f"search.crossover must be 'two_point' or 'uniform', got {self.crossover!r}")
        for k in ("cx_prob", "mut_prob", "gene_mut_prob"):
            if not 0 <= getattr(self, k) <= 1:
                raise ConfigError(f"search.{k} must be between 0 and 1, got {getattr(self, k)}")
        if self.cx_prob + self.mut_prob > 1:
            raise ConfigError("search.cx_prob + search.mut_prob must be at most 1 (DEAP varOr)")
        if self.tournament_size < 1:
            raise ConfigError(f"search.tournament_size must be at least 1, got {self.tournament_size}")
        if self.offspring < 0:
            raise ConfigError(f"search.offspring must be >= 0 (0 = population), got {self.offspring}")
        if self.hall_of_fame < 1:
            raise ConfigError(f"search.hall_of_fame must be at least 1, got {self.hall_of_fame}")
        for text in self.seed_mappings:
            _check_seed_mapping(text)


OBJECTIVES = ("fitness", "latency", "latency_int8", "params", "flops")


def _check_objectives(objectives: tuple[str, ...]) -> None:
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown:
        raise ConfigError(f"search.objectives has an unknown objective {unknown[0]!r}; choose from {', '.join(OBJECTIVES)}")
    if not objectives or objectives[0] != "fitness" or len(set(objectives)) != len(objectives):
        raise ConfigError(f"search.objectives must start with 'fitness' and name each objective once, got "
                          f"{list(objectives)}; e.g. ['fitness', 'latency']")


def _check_seed_mapping(text: str) -> None:
    """A seed mapping must be genes joined by '-', or a split genome's two such parts joined by '+' (its range is
    checked once the teacher's depth is known)."""
    try:
        for part in text.split("+", 1):
            parse_genes(part)
    except LayermapError as exc:
        raise ConfigError(f"search.seed_mappings: {exc}") from None


@dataclass(frozen=True)
class CompareSettings:
    """The final stage (``layermap compare``): the same full distillation for every compared mapping,
    then fine-tuning of each distilled student on GLUE tasks with several seeds."""

    # full task-agnostic distillation: the same budget, initialisation and corpus order for every mapping
    max_steps: int = 0             # 0 = `epochs` over the corpus slice; both 0 = no distillation (teacher-extracted students
    epochs: float = 1.0            # as they are: Extract-Then-Distill's first half)
    batch_size: int = 32
    learning_rate: float = 5e-4
    warmup_ratio: float = 0.1
    seq_len: int = 128
    max_segments: int = 0          # corpus segments for the full distillation; 0 = `fraction` of the corpus
    fraction: float = 1.0
    max_documents: int = 0         # 0 = read the whole corpus
    init: str = ""                 # random | teacher; "" = student.init
    distill_seeds: int = 3         # independent full distillations per mapping (seeds 0 .. D-1): the units of a verdict
    teacher_cache: bool = False    # share the teacher's outputs on the slice between mappings (disk: ~0.9 MB a 64-token MiniLM segment)
    checkpoint_every: int = 200    # steps between resumable checkpoints of a full distillation
    # fine-tuning and scoring on GLUE dev sets
    tasks: tuple[str, ...] = ("sst2", "mrpc", "rte", "cola")
    seeds: int = 3                 # fine-tuning seeds per (student, task)
    references: bool = True        # reference rows: the teacher and a student with no distillation fine-tuned like the
                                   # students (every fine-tuning seed), and the constant predictor of each dev set
    max_train: int = 0             # training examples per task; 0 = all
    max_eval: int = 0              # dev examples per task; 0 = all
    finetune_epochs: float = 3.0
    finetune_batch_size: int = 32
    finetune_learning_rate: float = 5e-5
    finetune_seq_len: int = 128
    # the judge's recipe (docs: the final stage): each student family's learning rate chosen from a grid on a selection
    # split of the training file, a scoring split of the training file beside the dev set, the head's pooling
    finetune_learning_rates: tuple[float, ...] = ()   # the grid; [] = finetune_learning_rate for every student
    select_examples: int = 0       # training examples held out to choose the rate on (needed with a grid)
    score_examples: int = 0        # training examples held out to score on (verdicts read them; dev alongside); 0 = dev
    finetune_pooling: str = "cls"  # what the head reads: cls (first token) | mean (mean of the token states)

    def __post_init__(self) -> None:
        if self.max_steps < 0 or self.epochs < 0:
            raise ConfigError("compare.max_steps and compare.epochs must be >= 0 (both 0: no distillation, the students "
                              "are their initialisation)")
        for k in ("batch_size", "seq_len", "seeds", "distill_seeds", "finetune_batch_size", "finetune_seq_len"):
            if getattr(self, k) < 1:
                raise ConfigError(f"compare.{k} must be at least 1, got {getattr(self, k)}")
        for k in ("learning_rate", "finetune_learning_rate", "finetune_epochs"):
            if not getattr(self, k) > 0:
                raise ConfigError(f"compare.{k} must be positive, got {getattr(self, k)}")
        if not 0 <= self.warmup_ratio <= 1:
            raise ConfigError(f"compare.warmup_ratio must be between 0 and 1, got {self.warmup_ratio}")
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"compare.fraction must be in (0, 1], got {self.fraction}")
        for k in ("max_segments", "max_documents", "max_train", "max_eval", "checkpoint_every", "select_examples",
                  "score_examples"):
            if getattr(self, k) < 0:
                raise ConfigError(f"compare.{k} must be >= 0, got {getattr(self, k)}")
        rates = self.finetune_learning_rates
        if not all(isinstance(r, (int, float)) and math.isfinite(r) and r > 0 for r in rates):
            raise ConfigError(f"compare.finetune_learning_rates must hold positive numbers, e.g. [1e-4, 3e-4, 1e-3], "
                              f"got {list(rates)}")
        if len(set(rates)) != len(rates):
            raise ConfigError(f"compare.finetune_learning_rates names a rate twice: {list(rates)}")
        if self.select_examples and len(rates) < 2:
            raise ConfigError(f"compare.select_examples = {self.select_examples} selects a learning rate, but the grid "
                              f"compare.finetune_learning_rates holds {len(rates)}; give two or more, e.g. [1e-4, 3e-4, 1e-3]")
        if len(rates) >= 2 and not self.select_examples:
            raise ConfigError("compare.finetune_learning_rates is a grid, chosen on held-out training examples: set "
                              "compare.select_examples (e.g. 500), never the dev set that scores")
        if self.finetune_pooling not in ("cls", "mean"):
            raise ConfigError(f"compare.finetune_pooling must be 'cls' or 'mean', got {self.finetune_pooling!r}")
        if self.init not in ("", "random", "teacher"):
            raise ConfigError(f"compare.init must be 'random', 'teacher' or '' (= student.init), got {self.init!r}")
        if not self.tasks:
            raise ConfigError("compare.tasks is empty; name at least one GLUE task, e.g. ['sst2', 'cola']")


@dataclass(frozen=True)
class ShapeSettings:
    """The grid of student shapes a joint shape-and-mapping search chooses from (:class:`layermap.shape.ShapeGrid`);
    empty lists take the defaults derived from the teacher.  Off by default: the student is ``[student]``'s shape."""

    search: bool = False           # choose the shape too (needs search.strategy = "nsga2")
    layers: tuple[int, ...] = ()   # [] = 1 .. the teacher's layers
    hidden_sizes: tuple[int, ...] = ()   # [] = hidden_step, 2 * hidden_step, ... up to the teacher's hidden size
    hidden_step: int = DEFAULT_HIDDEN_STEP
    heads: tuple[int, ...] = ()    # [] = every count up to the teacher's heads (each hidden size takes its divisors)
    ffn_ratios: tuple[float, ...] = DEFAULT_FFN_RATIOS   # FFN size = ratio x hidden size

    def __post_init__(self) -> None:
        for key in ("layers", "hidden_sizes", "heads"):
            if any(v < 1 for v in getattr(self, key)):
                raise ConfigError(f"shape.{key} must hold whole numbers >= 1, got {list(getattr(self, key))}")
        if self.hidden_step < 1:
            raise ConfigError(f"shape.hidden_step must be at least 1, got {self.hidden_step}")
        if not self.ffn_ratios or not all(0 < r < math.inf for r in self.ffn_ratios):
            raise ConfigError(f"shape.ffn_ratios must hold positive numbers, e.g. [1.5, 2, 3, 4], got {list(self.ffn_ratios)}")
        if self.hidden_sizes and self.heads:
            try:
                check_divisible(self.hidden_sizes, self.heads)
            except ShapeError as exc:
                raise ConfigError(f"[shape]: {exc}") from None


LATENCY_DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class LatencySettings:
    """How a student's latency is measured (:mod:`layermap.deploy.latency`, ``layermap quantize``): a forward pass of
    ``batch_size`` x ``seq_len`` tokens, the median of ``repeats`` timings after ``warmup`` untimed passes."""

    device: str = "cpu"            # cpu | cuda
    threads: int = 1               # torch / ONNX Runtime intra-op threads (CPU)
    batch_size: int = 1
    seq_len: int = 128
    warmup: int = 5
    repeats: int = 30

    def __post_init__(self) -> None:
        if self.device not in LATENCY_DEVICES:
            raise ConfigError(f"latency.device must be cpu or cuda, got {self.device!r}")
        for key in ("threads", "batch_size", "seq_len", "repeats"):
            if isinstance(getattr(self, key), bool) or getattr(self, key) < 1:
                raise ConfigError(f"latency.{key} must be at least 1, got {getattr(self, key)}")
        if self.warmup < 0:
            raise ConfigError(f"latency.warmup must be >= 0, got {self.warmup}")


@dataclass(frozen=True)
class RunSettings:
    executor: str = "local"        # local | process | ray
    workers: int = 1
    device: str = "auto"           # auto | cpu | cuda | cuda:N
    cache_dir: str = ""            # tokenised corpus + teacher outputs; "" = ~/.cache/layermap
    threads: int = 0               # torch threads per worker; 0 = cores / workers
    store_path: str = ""           # the run's SQLite store (several runs may share one); "" = RUN_DIR/layermap.sqlite
    shared_fitness: bool = True    # also look up / keep fitnesses in <cache_dir>/fitness.sqlite, across all runs
    ray_address: str = ""          # ray.init(address=...); "" = start a local Ray
    gpus_per_eval: float = 0.0     # Ray: num_gpus per evaluation task
    cpus_per_eval: float = 1.0     # Ray: num_cpus per evaluation task
    retry_failed: bool = False     # on --resume: evaluate the run's failed genomes again (each attempt keeps its error)
    population: int = 1            # genomes distilled in lockstep per evaluation call (layermap.distill.population);
                                   # not in the fingerprint: lockstep equals sequential up to float rounding
    pipeline_check: bool = False   # the settings only check that the pipeline runs end to end (the smoke preset): every
                                   # proxy task is kept although invalid (proxy.allow_invalid = ["*"]), and validate /
                                   # evolve / fitness / the API say in one line that the ranking means nothing

    def __post_init__(self) -> None:
        if isinstance(self.population, bool) or self.population < 1:
            raise ConfigError(f"run.population must be at least 1 (genomes distilled together), got {self.population}")
        if self.executor not in ("local", "process", "ray"):
            raise ConfigError(f"run.executor must be local, process or ray, got {self.executor!r}")
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise ConfigError(f"run.device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.workers < 1:
            raise ConfigError(f"run.workers must be at least 1, got {self.workers}")
        if self.threads < 0:
            raise ConfigError(f"run.threads must be >= 0 (0 = cores / workers), got {self.threads}")
        if not 0 <= self.gpus_per_eval < math.inf:
            raise ConfigError(f"run.gpus_per_eval must be >= 0, got {self.gpus_per_eval}")
        if not 0 < self.cpus_per_eval < math.inf:
            raise ConfigError(f"run.cpus_per_eval must be positive, got {self.cpus_per_eval}")

    @property
    def cache_db(self) -> str:
        """Deprecated name of :attr:`store_path`."""
        warnings.warn("RunSettings.cache_db is deprecated; use RunSettings.store_path", DeprecationWarning, stacklevel=2)
        return self.store_path

    @property
    def shared_cache(self) -> bool:
        """Deprecated name of :attr:`shared_fitness`."""
        warnings.warn("RunSettings.shared_cache is deprecated; use RunSettings.shared_fitness", DeprecationWarning,
                      stacklevel=2)
        return self.shared_fitness


# Settings that were renamed: the old names still work in TOML files and ``--set`` (with a one-line
# deprecation warning), in section dicts and stored run configs (silently), and as RunSettings keyword
# arguments and attributes (with a DeprecationWarning).  ``run.cache_db`` named the run's SQLite store,
# which is no cache; ``run.shared_cache`` the user-wide fitness store ``<cache_dir>/fitness.sqlite``.
RENAMED_SETTINGS = {"run.cache_db": "run.store_path", "run.shared_cache": "run.shared_fitness"}


def _accept_old_names(generated_init):
    """Wrap RunSettings' generated ``__init__`` so that ``RunSettings(shared_cache=False)`` and
    ``dataclasses.replace(run, cache_db=...)`` keep working (the old name, when given, wins)."""

    @functools.wraps(generated_init)
    def __init__(self, *args, cache_db: str | None = None, shared_cache: bool | None = None, **kwargs):
        for old, value in (("cache_db", cache_db), ("shared_cache", shared_cache)):
            if value is not None:
                new = RENAMED_SETTINGS[f"run.{old}"].split(".", 1)[1]
                warnings.warn(f"RunSettings({old}=...) is deprecated; use {new}=...", DeprecationWarning, stacklevel=2)
                kwargs[new] = value
        generated_init(self, *args, **kwargs)

    return __init__


RunSettings.__init__ = _accept_old_names(RunSettings.__init__)


@dataclass(frozen=True)
class Config:
    teacher: TeacherSettings = field(default_factory=TeacherSettings)
    student: StudentSettings = field(default_factory=StudentSettings)
    corpus: CorpusSettings = field(default_factory=CorpusSettings)
    distill: DistillSettings = field(default_factory=DistillSettings)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    compare: CompareSettings = field(default_factory=CompareSettings)
    run: RunSettings = field(default_factory=RunSettings)
    shape: ShapeSettings = field(default_factory=ShapeSettings)
    latency: LatencySettings = field(default_factory=LatencySettings)

    def __post_init__(self) -> None:
        if self.run.pipeline_check and "*" not in self.proxy.allow_invalid:    # a pipeline check keeps every task
            object.__setattr__(self, "proxy", dataclasses.replace(self.proxy, allow_invalid=("*",)))
        wants = ["shape.search = true"] if self.shape.search else []
        wants += [f"search.objectives = {list(self.search.objectives)}"] if self.search.objectives != ("fitness",) else []
        if wants and self.search.strategy != "nsga2":
            raise ConfigError(f"{' and '.join(wants)} need search.strategy = 'nsga2' (a Pareto front); set it, or "
                              "leave them at their defaults")
        _check_split_genome(self)

    def to_dict(self) -> dict:
        return {f.name: _section_to_dict(getattr(self, f.name)) for f in fields(self)}

    def replace(self, **sections: Any) -> "Config":
        return dataclasses.replace(self, **sections)


def pipeline_check_line(config: Config) -> str | None:
    """The one line every run of pipeline-check settings (``run.pipeline_check``) prints, else None."""
    if not config.run.pipeline_check:
        return None
    return ("pipeline check (run.pipeline_check): these settings only show that teacher, data, distillation and "
            "search run end to end; their proxy tasks are kept although invalid, so the ranking of mappings means "
            "nothing")


def _check_split_genome(config: "Config") -> None:
    """``search.genome = "split"`` needs teacher initialisation and a GA over one student shape (layermap.extraction)."""
    if config.search.genome != "split":
        return
    if config.student.init != "teacher":
        raise ConfigError("search.genome = 'split' searches the teacher layer each student layer starts from, which needs "
                          "student.init = 'teacher'; set it or use search.genome = 'coupled'")
    if config.search.strategy not in ("ga", "racing") or config.shape.search:
        raise ConfigError(f"search.genome = 'split' runs with search.strategy 'ga' or 'racing' on one student shape, not "
                          f"{'shape.search' if config.shape.search else repr(config.search.strategy)}; use "
                          "search.genome = 'coupled' there")


def _section_to_dict(section: Any) -> dict:
    return {f.name: (list(v) if isinstance(v := getattr(section, f.name), tuple) else v) for f in fields(section)}
