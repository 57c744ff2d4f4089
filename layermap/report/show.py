"""What ``layermap show`` reports on a run folder, read in one pass: the result, the top genomes with their
ties within noise, the verdict against the baselines, and the run's status."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..distill.identity import teacher_label
from ..storage.records import EvaluationRecord
from .results import SearchResult, confirm_seed_sets, final_seed_sets, load_result, run_genome
from ..storage.store import RunRow
from ..storage.runs import open_run
from .verdict import Verdict, best_vs_baselines, ranked_records, resolve_noise, verdict_of, within_noise_of_best


@dataclass(frozen=True)
class RunReport:
    """A run as ``layermap show`` prints it."""

    run_dir: Path
    row: RunRow
    status: str                                   # running | finished | interrupted | ...
    result: SearchResult
    running: int                                  # evaluations still marked running
    top: list[EvaluationRecord]                   # best first
    ties: list[bool | None]                       # per top record: within noise of the best? (None: unknown)
    verdict: Verdict
    best_vs_baselines: dict | None                # the verdict's numbers in the older dict form (show --json)
    teacher: str | None                           # as teacher_label names it (no machine path)
    teacher_identity: str | None                  # its digest, where the run recorded one


def run_report(run_dir: str | Path, top: int = 5, noise_std: float | None = None,
               noise_std_from: str = "noise_std") -> RunReport:
    """Read the run in ``run_dir``: its ``top`` best genomes and the verdict, with ``noise_std`` as every
    genome's standard error if given, else the run's ``search.noise_std``, else each record's own."""
    from ..storage.runs import run_status

    _, store, row = open_run(run_dir)
    with store:
        noise_std, noise_std_from = resolve_noise(row, noise_std, noise_std_from)
        result = load_result(store, row, run_dir)
        ranked = ranked_records(store, row)
        running = sum(r.status == "running" for r in store.run_evaluations(row.run_id))
    best = ranked[:max(0, top)]
    min_seed_sets, confirm = final_seed_sets(row.config), confirm_seed_sets(row.config)
    genome = run_genome(row.config)
    verdict = verdict_of(ranked, row.run_id, row.student_layers, row.teacher_layers, noise_std, noise_std_from,
                         min_seed_sets, confirm, genome)
    return RunReport(Path(run_dir), row, run_status(run_dir, row), result, running, best,
                     within_noise_of_best(best, noise_std), verdict,
                     best_vs_baselines(ranked, row.student_layers, row.teacher_layers, noise_std, min_seed_sets, confirm,
                                       genome),
                     teacher_label(row.description.get("teacher")), row.description.get("teacher_identity"))
