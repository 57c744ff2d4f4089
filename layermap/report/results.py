"""What a search produced, read back from its store: per-generation statistics and the result.

Written by :mod:`layermap.searching.run` (one ``generations`` row per finished generation, one
``evaluations`` row per genome) and read here by the search itself, ``layermap show`` and
``layermap export``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..extraction import Genome, SplitGenome, genome_text, is_split
from ..mapping import LayerMapping
from ..storage.records import EvaluationRecord
from ..evaluators.references import References, references_of
from ..evaluators.replicates import combined_records, final_pick, racing_pick
from ..storage.store import RunRow, Store


@dataclass(frozen=True)
class GenerationStats:
    """One finished generation: fitness statistics of the population after selection (over successful
    genomes) and the evaluations the generation needed (``evaluated`` distinct genomes, of which
    ``computed`` ran successfully, ``failed`` ran and failed, ``cached`` came from the shared store)."""

    generation: int
    best: float | None
    mean: float | None
    std: float | None
    unique: int
    evaluated: int
    computed: int
    cached: int
    failed: int
    best_genome: str | None
    wall_time: float
    hypervolume: float | None = None     # nsga2: of the run's front so far, up to `reference`
    reference: list | None = None        # nsga2: the hypervolume's reference point (one value per objective)
    front_size: int | None = None        # nsga2: genomes on the noise-aware front (ties included)


@dataclass(frozen=True)
class SearchResult:
    """A run's outcome: the best genome (highest fitness, earliest on ties) and its record, the hall of
    fame of the last finished generation, per-generation statistics and the run's evaluation counts."""

    run_id: str
    run_dir: Path
    store_path: Path
    teacher_layers: int
    constraint: str
    best_genome: tuple[int, ...] | None
    best_record: EvaluationRecord | None
    hall_of_fame: list[tuple[tuple[int, ...], EvaluationRecord]]
    generations: list[GenerationStats]
    computed: int            # over the whole run (all sessions)
    cached: int
    failed: int
    wall_time: float         # this session
    references: References | None = None     # teacher / no distillation / constant rows, where the run has them
    best_references: References | None = None    # the rows the best is read against: its own shape's (joint search)
    init: str = "random"                     # student.init: with "teacher" a gene also says where a layer starts from

    @property
    def best_mapping(self) -> Genome | None:
        """The best genome as a mapping: a :class:`LayerMapping`, or a split search's
        :class:`layermap.extraction.SplitGenome` (``1-2-3+2-4-6``)."""
        if self.best_genome is None:
            return None
        if self.best_record is not None and is_split(self.best_record.genome):
            return SplitGenome.parse(self.best_record.genome, self.teacher_layers, constraint=self.constraint)
        return LayerMapping(self.best_genome, teacher_layers=self.teacher_layers, constraint=self.constraint)


def load_result(store: Store, row: RunRow, run_dir: str | Path | None = None, wall_time: float = 0.0) -> SearchResult:
    """The result of a run (finished or not) as recorded in its store.

    Each genome's record combines its replicates (:func:`layermap.evaluators.replicates.combine`: the mean over
    seed sets, with its standard error; a genome evaluated once keeps its record).  The best genome is the
    highest fitness (the earliest on ties), so it exists as soon as one evaluation has finished; for a racing
    run it is the best mean on the race's seed sets among genomes with all of them
    (:func:`layermap.evaluators.replicates.racing_pick`)."""
    gens = store.generations(row.run_id)
    done = [r.record for r in store.run_evaluations(row.run_id) if r.record is not None and r.record.ok]
    memo = combined_records(done, run_noise_std(row.config))
    hof_genomes = gens[-1].checkpoint["hall_of_fame"] if gens else []
    genome = run_genome(row.config)

    def text(genes) -> str:
        return genome_text(genes, row.student_layers, genome)

    hof = [(tuple(g), memo[text(g)]) for g in hof_genomes if text(g) in memo]
    best = run_pick(list(memo.values()), row.config)
    counts = store.count_evaluations(row.run_id)
    refs = references_of(store, row.description, row.config)
    fixed = gens[-1].checkpoint.get("fixed_shape") if gens else None
    shape = best.genome.split(":", 1)[0] if best is not None and ":" in best.genome else fixed
    best_refs = refs if refs is None or shape == fixed else references_of(store, row.description, row.config, shape)
    return SearchResult(row.run_id, Path(run_dir or row.run_dir), store.path, row.teacher_layers,
                        row.config.get("search", {}).get("constraint", "free"),
                        _genes_of(best.genome) if best else None, best, hof,
                        [GenerationStats(**g.stats) for g in gens], counts.computed, counts.cached, counts.failed, wall_time,
                        refs, best_refs, run_init(row.config))


def _genes_of(text: str) -> tuple[int, ...]:
    """The mapping genes of a genome text (a shaped genome's, ``L4-H256-A4-F1024:3-6-9-12``, after its shape; a split
    genome's imitation part, ``1-2-3+2-4-6`` -> 2-4-6)."""
    from ..extraction import genes_of

    return genes_of(text)


def run_init(config: dict) -> str:
    """The run's ``student.init`` (random or teacher)."""
    return str(((config or {}).get("student") or {}).get("init") or "random")


def run_genome(config: dict) -> str:
    """The run's ``search.genome`` (coupled, or split; coupled for a run made before it)."""
    return str(((config or {}).get("search") or {}).get("genome") or "coupled")


def run_noise_std(config: dict) -> float | None:
    """The run's ``search.noise_std`` (the measured seed std of one fitness), or None when not measured."""
    value = (config or {}).get("search", {}).get("noise_std") or 0.0
    return float(value) if value > 0 else None


def final_seed_sets(config: dict) -> int:
    """How many seed sets the run's answer needs: ``search.replicate_cap`` for a racing run, else 1."""
    search = (config or {}).get("search", {})
    return int(search.get("replicate_cap", 1)) if search.get("strategy") == "racing" else 1


def confirm_seed_sets(config: dict) -> int:
    """How many of a racing run's seed sets are kept for the confirmation (``search.confirm_seed_sets``; 0 for a run
    made before it existed, whose race used them all, and for any other strategy)."""
    search = (config or {}).get("search", {})
    return int(search.get("confirm_seed_sets", 0)) if search.get("strategy") == "racing" else 0


def run_pick(records: list[EvaluationRecord], config: dict) -> EvaluationRecord | None:
    """The run's answer: for a racing run :func:`layermap.evaluators.replicates.racing_pick` on its race's seed sets,
    else the best fitness (the earliest on ties)."""
    if (config or {}).get("search", {}).get("strategy") == "racing":
        return racing_pick(records, final_seed_sets(config) - confirm_seed_sets(config))
    return final_pick(records, 1)
