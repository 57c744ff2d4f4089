"""Start, resume and drive one search in a run folder.

``run_search`` starts a run in a folder (``config.toml``, ``run.json`` and, by default, the store
``layermap.sqlite``); ``resume_search`` continues it from its last finished generation.  Both hand the run to
:func:`_drive`, which opens the shared fitness cache and the claims, measures the reference rows, and calls
``strategy_for(config).run(search, start)`` (:mod:`layermap.searching.strategies.registry`): no strategy branch here.
Fitness comes from an evaluator (:class:`layermap.evaluators.proxy.ProxyEvaluator` for real runs) through the one
evaluate step of :mod:`layermap.searching.state`: every genome is looked up first in the run's memo, then in the
shared cache under the evaluator's fingerprint, and only unknown genomes are evaluated; a genome is claimed in the
shared store before it is computed (two runs with the same settings started together compute it once, the second
waiting for the first's record after computing the rest of its generation).
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Callable, Sequence

from ..config import Config, ConfigError, dump_toml, load_config, parse_override
from ..distill.corpus import default_cache_dir
from ..errors import LayermapError
from ..report.results import SearchResult, load_result
from ..executors.protocol import Evaluator
from ..executors.registry import Executor
from ..storage.claims import ClaimHeartbeat, claim_owner
from ..storage.records import EvaluationRecord
from ..storage.runs import RunInfo, lock_run, open_run, write_run_info
from ..storage.store import STORE_NAME, GenerationRow, RunRow, Store, StoreError, now
from .operators import genome_space
from .state import SearchState
from .state import close as close_executor
from .strategies.registry import strategy_for

CONFIG_NAME = "config.toml"
RESUMABLE_RUN_KEYS = ("executor", "workers", "threads", "device", "ray_address", "gpus_per_eval", "cpus_per_eval", "cache_dir",
                      "shared_fitness", "retry_failed")
SHARED_CACHE_NAME = "fitness.sqlite"


def run_search(config: Config, evaluator: Evaluator, run_dir: str | Path, *, executor: Executor | None = None,
               progress: bool = True) -> SearchResult:
    """Start a new search in ``run_dir`` (which must be empty or absent) and run it to the end.  An ``executor``, if
    given, is submitted ``(genes, seed set)`` jobs: build it around
    ``layermap.searching.state.SeedSetEvaluator(evaluator)``."""
    run_dir = Path(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise StoreError(f"run folder {run_dir} is not empty; pass --resume {run_dir} to continue it, or choose a new --out folder")
    student_layers, teacher_layers = int(evaluator.student_layers), int(evaluator.teacher_layers)
    for text in config.search.seed_mappings:                     # checked against the depths before the folder exists
        genome_space(config, student_layers, teacher_layers).seed(text)
    fingerprint = evaluator.fingerprint
    store_path = Path(config.run.store_path).expanduser().resolve() if config.run.store_path else (run_dir / STORE_NAME).resolve()
    made_here = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    lock, store = lock_run(run_dir), None
    try:
        store = Store(store_path)
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        (run_dir / CONFIG_NAME).write_text(dump_toml(config), encoding="utf-8")
        store.create_run(run_id, fingerprint=fingerprint, config_toml=dump_toml(config), config=config.to_dict(),
                         description=_describe(evaluator), teacher_layers=teacher_layers, student_layers=student_layers,
                         run_dir=str(run_dir.resolve()))
        stored_as = STORE_NAME if not config.run.store_path else str(store_path)     # relative: the folder can move
        write_run_info(run_dir, RunInfo(run_id=run_id, store=stored_as, created=now()))
    except BaseException:
        if store is not None:
            store.close()
        lock.close()
        for name in ("run.json", CONFIG_NAME, "run.lock"):     # leave no half-made run behind
            (run_dir / name).unlink(missing_ok=True)
        raise
    search = SearchState(config, evaluator, store, run_id, run_dir, fingerprint, student_layers, teacher_layers,
                         random.Random(config.search.seed), {}, progress, executor, executor is None, lock)
    try:
        return _drive(search, None)
    except Exception:
        _remove_if_nothing_finished(run_dir, store_path, run_id, made_here)
        raise


def _remove_if_nothing_finished(run_dir: Path, store_path: Path, run_id: str, made_here: bool) -> None:
    """A new run that failed before any evaluation finished (bad GLUE data, a teacher without weights, ...)
    leaves no folder behind, so that the same command works once the input is fixed."""
    try:
        with Store(store_path) as store:
            finished = [r for r in store.run_evaluations(run_id) if r.status != "running"]
            if finished or store.generations(run_id):
                return
    except (LayermapError, OSError, sqlite3.Error):
        return
    own_store = store_path == (run_dir / STORE_NAME).resolve()
    names = ["run.json", CONFIG_NAME, "run.lock"] + ([STORE_NAME, STORE_NAME + "-wal", STORE_NAME + "-shm",
                                                       STORE_NAME + "-journal"] if own_store else [])
    for name in names:
        (run_dir / name).unlink(missing_ok=True)
    if made_here:
        try:
            run_dir.rmdir()
        except OSError:
            pass


def check_proxy_inputs(config: Config) -> None:
    """What can be checked of the teacher, corpus and device before a run folder is made or a genome is
    computed: each failure is one sentence (ModelError, CorpusError)."""
    from ..distill.corpus import check_source
    from ..distill.models import check_seq_len, load_teacher_config, pick_device, WEIGHT_FILES

    from ..extraction import check_config_extraction

    pick_device(config.run.device)
    teacher_cfg = load_teacher_config(config.teacher.name, config.teacher.revision)
    check_config_extraction(config, teacher_cfg)      # teacher initialisation: a student the teacher can be cut into
    check_seq_len(teacher_cfg, config.corpus.seq_len, "corpus.seq_len")
    check_seq_len(teacher_cfg, config.proxy.seq_len, "proxy.seq_len")
    local = Path(config.teacher.name).expanduser()
    if local.is_dir() and not any((local / f).is_file() for f in WEIGHT_FILES):
        from ..distill.models import ModelError

        raise ModelError(f"teacher directory {config.teacher.name!r} has no weights ({', '.join(WEIGHT_FILES[:2])}); "
                         "point --teacher at a folder written by save_pretrained")
    check_source(config.corpus.path)


def resume_search(run_dir: str | Path, evaluator_factory: Callable[[Config], Evaluator] | None = None, *,
                  executor: Executor | None = None, progress: bool = True, overrides: Sequence[str] = ()) -> SearchResult:
    """Continue the run in ``run_dir`` from its last finished generation.

    Finished evaluations are reused (none re-run); evaluations left ``running`` by a killed process
    are run again.  ``overrides`` (``--set`` strings such as ``run.workers=4``) may change only the
    ``run.*`` settings that do not change a fitness (``RESUMABLE_RUN_KEYS``).  A different fingerprint,
    or a ``config.toml`` edited since the start, is a :class:`StoreError`.  ``evaluator_factory``
    defaults to :func:`default_evaluator_factory`.
    """
    run_dir = Path(run_dir)
    info, store, row = open_run(run_dir, upgrade=True)
    try:
        lock = lock_run(run_dir)
    except BaseException:
        store.close()
        raise
    try:
        config = _resumed_config(run_dir, row, overrides)
        evaluator = (evaluator_factory or default_evaluator_factory(row))(config)
        if evaluator.fingerprint != row.fingerprint:
            was = former_device_class(evaluator, row.fingerprint)
            if was:
                raise StoreError(f"run {row.run_id} in {run_dir} was computed on {was}, but this resume would compute on "
                                 f"{evaluator.device_class} (its fitnesses differ by device class); resume it on {was} "
                                 f"(run.device = {'cpu' if was == 'cpu' else was + ':0'}), or start a new run with a "
                                 "new --out folder")
            raise StoreError(
                f"run {row.run_id} in {run_dir} was computed under fingerprint {row.fingerprint}, but the evaluator now gives "
                f"{evaluator.fingerprint} (teacher, data, corpus or library versions changed); start a new run with a new --out folder"
            )
        store.discard_unfinished(row.run_id)
        rows = store.run_evaluations(row.run_id)
        memo = {r.genome: r.record for r in rows if r.record is not None and r.record.seed_set == 0}
        start = store.last_generation(row.run_id)
        replicas: dict[str, dict[int, EvaluationRecord]] = {}     # racing: replicates up to the checkpoint ...
        backlog: dict[tuple[str, int], EvaluationRecord] = {}      # ... and after it (the race asks for them again)
        for r in rows:
            if r.record is not None and r.record.seed_set > 0:
                if start is None or r.generation > start.generation:
                    backlog[(r.genome, r.record.seed_set)] = r.record
                else:
                    replicas.setdefault(r.genome, {})[r.record.seed_set] = r.record
        retry = [g for g, rec in memo.items() if not rec.ok] if config.run.retry_failed else []
        for genome in retry:
            del memo[genome]
        seen = {r.genome for r in rows if start is not None and r.generation <= start.generation}
    except BaseException:
        store.close()
        lock.close()
        raise
    search = SearchState(config, evaluator, store, row.run_id, run_dir, row.fingerprint, row.student_layers,
                         row.teacher_layers, random.Random(config.search.seed), memo, progress, executor, executor is None, lock,
                         seen=seen, retry=retry, replicas=replicas, backlog=backlog)
    return _drive(search, start)


def former_device_class(evaluator: Evaluator, fingerprint: str) -> str | None:
    """The device class (cpu, cuda, mps) under which ``evaluator``'s settings give ``fingerprint``, when it is not the
    evaluator's own; None when the fingerprint differs for another reason (or the evaluator has no device)."""
    other = getattr(evaluator, "fingerprint_on", None)
    if other is None:
        return None
    return next((c for c in ("cpu", "cuda", "mps") if c != evaluator.device_class and other(c) == fingerprint), None)


def default_evaluator_factory(row: RunRow) -> Callable[[Config], Evaluator]:
    """The evaluator a run was made with: the synthetic landscape it describes, else the proxy fitness."""
    if row.description.get("kind") == "synthetic":
        from ..evaluators.synthetic import rebuild_synthetic

        return lambda config: rebuild_synthetic(row.description)
    from ..evaluators.proxy import ProxyEvaluator

    return lambda config: ProxyEvaluator(config)


# -- the drive's helpers --------------------------------------------------------------------------------
def _open_shared_fitness(search: SearchState) -> Store | None:
    """``<cache_dir>/fitness.sqlite``, unless disabled or it is the run's own store."""
    if not search.config.run.shared_fitness:
        return None
    path = (default_cache_dir(search.config.run.cache_dir) / SHARED_CACHE_NAME).resolve()
    return None if path == search.store.path.resolve() else Store(path)


def _claim_store(search: SearchState) -> Store | None:
    """The store other runs share with this one (the user-wide cache, else a ``run.store_path`` store), where genomes
    are claimed; ``None`` for a run alone with its private store."""
    if search.shared is not None:
        return search.shared
    private = search.store.path.resolve() == (search.run_dir / STORE_NAME).resolve()
    return None if private else search.store


def _drive(search: SearchState, start: GenerationRow | None) -> SearchResult:
    clock = time.perf_counter()
    heartbeat = None
    try:
        search.shared = _open_shared_fitness(search)
        search.claims = _claim_store(search)
        if search.claims is not None:
            search.owner = claim_owner(search.run_id)
            heartbeat = ClaimHeartbeat(search.claims.path, search.owner).start()
        from ..evaluators.references import ensure_references

        ensure_references(search.evaluator, search.store, search.config.proxy.allow_invalid)   # refuses an invalid task
        search.store.set_run_status(search.run_id, "running")
        try:
            strategy_for(search.config).run(search, start)
        except BaseException:
            search.store.set_run_status(search.run_id, "interrupted")
            raise
        finally:
            close_executor(search)
        search.store.set_run_status(search.run_id, "finished")
        return load_result(search.store, search.store.get_run(search.run_id), search.run_dir, time.perf_counter() - clock)
    finally:
        if heartbeat is not None:
            heartbeat.stop()
        if search.claims is not None:
            try:
                search.claims.release(search.owner)          # what an interrupted generation still held
            except sqlite3.Error:
                pass                                         # they go stale
        search.store.close()
        if search.shared is not None:
            search.shared.close()
        if search.lock is not None:
            search.lock.close()


def _resumed_config(run_dir: Path, row: RunRow, overrides: Sequence[str]) -> Config:
    """``RUN_DIR/config.toml`` with the allowed ``run.*`` overrides; refused if it no longer matches the run row."""
    for text in overrides:
        section, key, _ = parse_override(text)
        if section != "run" or key not in RESUMABLE_RUN_KEYS:
            raise ConfigError(f"{section}.{key} cannot change on --resume (it would mix results); only "
                              f"{', '.join('run.' + k for k in RESUMABLE_RUN_KEYS)} may - start a new run to change it")
    config = load_config(str(run_dir / CONFIG_NAME), overrides)
    ignored = ("run", "compare")        # neither changes a fitness
    now_settings = _normalised({k: v for k, v in config.to_dict().items() if k not in ignored})
    # a setting added to layermap after the run started counts as its default value
    then = _normalised({k: {**v, **row.config.get(k, {})} for k, v in Config().to_dict().items() if k not in ignored})
    if now_settings != then:
        changed = next((f"{sec}.{key}" for sec in then for key in then[sec]
                        if now_settings.get(sec, {}).get(key) != then[sec][key]), "a section")
        raise StoreError(f"{run_dir / CONFIG_NAME} differs from the settings run {row.run_id} started with ({changed}); "
                         "restore it, or start a new run with a new --out folder")
    return config


def _normalised(d: dict) -> dict:
    return json.loads(json.dumps(d, sort_keys=True))


def _describe(evaluator: Evaluator) -> dict:
    describe = getattr(evaluator, "describe", None)
    return dict(describe()) if callable(describe) else {"evaluator": type(evaluator).__name__}
