"""``layermap`` command line: baselines, distill, fitness, evolve, show, export."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

from ..errors import LayermapError
from ..logs import console


def _cmd_baselines(args: argparse.Namespace) -> int:
    from ..mapping import baselines

    table = baselines(args.student_layers, args.teacher_layers)
    if args.json:
        print(json.dumps({name: "-".join(map(str, g)) for name, g in table.items()}, indent=2))
    else:
        for name, genes in table.items():
            print(f"{name:<8} {'-'.join(map(str, genes))}")
    return 0


def _add_distill(sub) -> None:
    p = sub.add_parser("distill", help="task-agnostic distillation of one student with one mapping",
                       epilog="example:\n  layermap distill --teacher $TEACHER --student-layers 3 --hidden-size 192 --heads 12 "
                              "--mapping 2-4-6 --corpus corpus.txt --max-steps 1000 --out student-246",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, help="teacher: hub name or local directory")
    p.add_argument("--student-layers", type=int, default=None,
                   help="student depth M (default: the depth a mapping file names)")
    p.add_argument("--hidden-size", type=int, default=0,
                   help="student width (default: the shape a mapping file names, else the teacher's)")
    p.add_argument("--heads", type=int, default=0,
                   help="student attention heads (default: the shape a mapping file names, else the teacher's)")
    p.add_argument("--ffn", type=int, default=0,
                   help="student FFN size (default: the shape a mapping file names, else 4 x hidden)")
    p.add_argument("--mapping", required=True, help="genes like 2-4-6, or uniform/top/bottom/last, or a mapping JSON "
                   "file (one from `export --front` also gives the student's shape); with --init teacher also a split "
                   "genome, 1-2-3+2-4-6 (starts from 1-2-3, imitates 2-4-6)")
    p.add_argument("--corpus", required=True, help="text file (one paragraph per line, blank line between documents) or a datasets name")
    p.add_argument("--max-segments", type=int, default=0, help="sample this many segments (default: all)")
    p.add_argument("--max-documents", type=int, default=0, help="read only the first N documents of the corpus")
    p.add_argument("--max-steps", type=int, default=0, help="optimizer steps (default: --epochs over the segments)")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the segments when --max-steps is 0")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per corpus segment")
    p.add_argument("--batch-size", type=int, default=32, help="segments per optimizer step")
    p.add_argument("--lr", type=float, default=5e-4, help="peak AdamW learning rate (linear warm-up and decay)")
    p.add_argument("--seed", type=int, default=0, help="student initialisation, corpus slice and batch order")
    p.add_argument("--init", choices=("random", "teacher"), default="random",
                   help="random initialisation, or teacher-layer extraction g(m) (ETD)")
    p.add_argument("--slice", choices=("importance", "leading"), default="importance",
                   help="with --init teacher and a narrower student: keep the units the teacher's weights rank highest "
                        "(importance, the default) or its first units (leading)")
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps between resumable checkpoints (0: none)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--cache-dir", default="", help="where the tokenised corpus is cached (default ~/.cache/layermap)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, help="output folder (loads with AutoModel.from_pretrained)")
    p.set_defaults(func=_cmd_distill)


def _is_mapping_file(text: str) -> bool:
    return text.endswith(".json") or Path(text).is_file()


def _parse_mapping(text: str, teacher_layers: int, student_layers: int, init: str = "random"):
    """Genes, a baseline name, a split genome (``1-2-3+2-4-6``, teacher initialisation) or a mapping JSON file."""
    from ..extraction import genome_from_json, parse_genome, require_teacher_init

    if _is_mapping_file(text):
        mapping = require_teacher_init(genome_from_json(text), init, f"mapping file {text!r} holds")
        if mapping.teacher_layers != teacher_layers or mapping.student_layers != student_layers:
            raise LayermapError(
                f"mapping file {text!r} is for {mapping.student_layers} student / {mapping.teacher_layers} teacher layers, "
                f"not {student_layers} / {teacher_layers}; export a mapping for this teacher and student"
            )
        return mapping
    return parse_genome(text, teacher_layers, student_layers=student_layers, init=init)


def _student_flags_of(args: argparse.Namespace) -> tuple[int, int, int, int]:
    """The student shape ``distill`` builds: (layers, hidden, heads, ffn), 0 = derived from the teacher.

    A mapping file that names its shape (an ``export --front`` member, ``metadata.shape``) gives all four; a flag
    that contradicts it is an error.  Another mapping file gives the depth (its gene count); genes on the command
    line need ``--student-layers``."""
    import json

    from ..exporting.front import shape_of_mapping_file, student_flags
    from ..extraction import genome_from_json

    if not _is_mapping_file(args.mapping):
        if args.student_layers is None:
            raise LayermapError("give the student's depth with --student-layers (or --mapping a mapping JSON file, "
                                "which names it)")
        return args.student_layers, args.hidden_size, args.heads, args.ffn
    try:
        data = json.loads(Path(args.mapping).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None                     # LayerMapping.from_json says what is wrong with the file
    try:
        shape = shape_of_mapping_file(data) if isinstance(data, dict) else None
    except (KeyError, TypeError, ValueError):
        raise LayermapError(f"mapping file {args.mapping!r} has a metadata.shape that is not a student shape (layers, "
                            "hidden_size, heads, ffn); export the front member again") from None
    if shape is None:
        layers = genome_from_json(args.mapping).student_layers if args.student_layers is None else args.student_layers
        return layers, args.hidden_size, args.heads, args.ffn
    given = (args.student_layers, args.hidden_size or None, args.heads or None, args.ffn or None)   # None: not given
    names = ("--student-layers", "--hidden-size", "--heads", "--ffn")
    wanted = (shape.layers, shape.hidden_size, shape.heads, shape.ffn)
    clash = [f"{n} {g}" for n, g, w in zip(names, given, wanted) if g is not None and g != w]
    if clash:
        raise LayermapError(f"mapping file {args.mapping!r} is for a student {shape.text}; pass {student_flags(shape)} "
                            f"or no student flag ({', '.join(clash)} {'contradicts' if len(clash) == 1 else 'contradict'} "
                            "it)")
    return wanted


def _cmd_distill(args: argparse.Namespace) -> int:
    from .common import config_from_args
    from ..config import StudentSettings, dump_toml
    from ..distill.corpus import check_source, load_segments
    from ..distill.loop import LiveTeacher, distill, distill_run_digest
    from ..distill.models import (StudentSpec, build_student, check_seq_len, init_student_from_teacher, load_teacher,
                         load_teacher_config, pick_device)
    from ..distill.output import save_student
    from ..extraction import slice_matters

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise LayermapError(f"--out {args.out!r} is a file, not a folder; give the path of a new folder")
    if (out / "config.json").is_file() and (out / "mapping.json").is_file():
        raise LayermapError(f"output folder {args.out!r} already holds a distilled student; choose a new --out folder")
    device = pick_device(args.device)
    teacher_cfg = load_teacher_config(args.teacher)
    check_seq_len(teacher_cfg, args.seq_len, "--seq-len")
    layers, hidden, heads, ffn = _student_flags_of(args)          # the flags, or the shape the mapping file names
    mapping = _parse_mapping(args.mapping, teacher_cfg.num_hidden_layers, layers, args.init)
    spec = StudentSpec.resolve(teacher_cfg, layers, hidden, heads, ffn)
    if args.init == "teacher":                       # a student the extraction cannot cut: one sentence, no work
        from ..extraction import check_extraction

        check_extraction(spec.layers, spec.hidden_size, spec.heads, spec.ffn, teacher_cfg)
    config = config_from_args(args)                  # the flags, through the one table (layermap.cli.common)
    config = config.replace(student=StudentSettings(layers=spec.layers, hidden_size=spec.hidden_size, heads=spec.heads,
                                                    ffn=spec.ffn, init=config.student.init,
                                                    slice=config.student.slice))                # widths resolved
    corpus, settings = config.corpus, config.distill
    check_source(corpus.path)
    teacher = load_teacher(config.teacher.name, device=device)
    segments = load_segments(corpus.path, teacher.tokenizer, seq_len=corpus.seq_len, max_segments=corpus.max_segments,
                             seed=corpus.seed, max_documents=corpus.max_documents, cache_dir=config.run.cache_dir,
                             progress=not args.quiet)
    student = build_student(teacher.model.config, spec, seed=settings.seed)
    if config.student.init == "teacher":
        from ..extraction import start_mapping

        init_student_from_teacher(student, teacher.model, start_mapping(mapping), config.student.slice)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.toml").write_text(dump_toml(config))
    started = time.time()
    _, stats = distill(student, LiveTeacher(teacher.model), mapping, segments, settings,
                       teacher_width=teacher.hidden_size, device=device, progress=not args.quiet,
                       checkpoint_dir=out / "checkpoints", desc=f"distilling {mapping}",
                       run_digest=distill_run_digest(config, teacher.identity, segments.identity,
                                                     sliced=slice_matters(config.student.init, spec.hidden_size,
                                                                          spec.heads, spec.ffn, teacher_cfg)))
    save_student(out, student, teacher.tokenizer, mapping, stats, teacher=config.teacher.name)
    first = sum(stats.losses[:10]) / max(1, len(stats.losses[:10]))
    print(f"distilled {spec.layers}-layer student with mapping {mapping} in {time.time() - started:.0f}s: "
          f"{stats.steps} steps, loss {first:.4f} -> {stats.final_loss:.4f}, "
          f"{stats.segments_per_second:.1f} segments/s (teacher {100 * stats.teacher_seconds / max(stats.seconds, 1e-9):.0f}% of step time)")
    print(f"saved to {out} (load with transformers.AutoModel.from_pretrained)")
    return 0


def _add_fitness(sub) -> None:
    from .common import add_config_args

    p = sub.add_parser("fitness", help="proxy fitness of one mapping (distil on a slice, fine-tune on proxy tasks)",
                       epilog="example:\n  layermap fitness --mapping 2-4-6 --config smoke --teacher $TEACHER "
                              "--corpus corpus.txt --glue-dir glue --json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mapping", required=True, help="genes like 2-4-6, or uniform/top/bottom/last; with student.init = "
                   "teacher also a split genome, 1-2-3+2-4-6 (starts from 1-2-3, imitates 2-4-6)")
    add_config_args(p)
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no-references", action="store_true",
                   help="skip the reference rows (teacher, no distillation, constant predictor) and the headroom")
    p.set_defaults(func=_cmd_fitness)


def _cmd_fitness(args: argparse.Namespace) -> int:
    from .common import config_from_args
    from ..config import pipeline_check_line
    from ..searching.run import check_proxy_inputs
    from ..evaluators.proxy import ProxyEvaluator

    config = config_from_args(args)
    check_proxy_inputs(config)
    evaluator = ProxyEvaluator(config, progress=not args.quiet and sys.stderr.isatty())
    mapping = _parse_mapping(args.mapping, evaluator.teacher_layers, evaluator.student_layers, config.student.init)
    refs = None if args.no_references else evaluator.references()       # cached per reference fingerprint
    record = evaluator.evaluate(mapping.text if "+" in mapping.text else mapping.genes)
    from ..extraction import gene_sentence

    meaning = gene_sentence(mapping) if config.student.init == "teacher" else None
    scores = record.task_scores
    if args.json:
        d = record.to_dict()
        d["mapping"] = d.pop("genome")
        d["fingerprint"] = evaluator.fingerprint
        if meaning:
            d["gene_meaning"] = meaning
        if refs is not None:
            d["references"] = refs.to_json()
            d["headroom"] = refs.headroom(scores)
        print(json.dumps(d, indent=2))
        return 0
    from ..evaluators.references import describe, format_headroom, headroom_line, learnt_sentence

    print(f"mapping {record.genome}   fingerprint {evaluator.fingerprint}")
    if meaning:
        print(f"  {meaning}")
    room = refs.headroom(scores) if refs is not None else {}
    for name, task in record.tasks.items():
        metrics = "  ".join(f"{k} {v:6.2f}" for k, v in task.metrics.items())
        extra = f"   headroom {format_headroom(room[name])}" if refs is not None else ""
        print(f"  {name:<6} score {task.score:6.2f}   {metrics}{extra}")
    t = record.timings
    print(f"fitness {record.fitness:.2f}   distill loss {record.distill_loss:.4f}   "
          f"time: distill {t['distill']:.1f}s, fine-tune {t['finetune']:.1f}s, eval {t['eval']:.1f}s, total {t['total']:.1f}s")
    if refs is not None:
        for line in describe(refs):
            print("  " + line)
        print(headroom_line(refs, scores))
        note = learnt_sentence(refs, record.fitness, config.search.noise_std or None)
        if note:
            print(note)
        for v in refs.validity().values():
            if not v.valid:
                print(f"warning: {v.sentence()}")
    if line := pipeline_check_line(config):
        print(line)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the message and where to find help), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="layermap", description="Search the layer mapping for task-agnostic BERT distillation.",
                     epilog="example (a search, its summary, the final stage and its figures):\n"
                            "  layermap evolve --config demo --teacher $TEACHER --corpus corpus.txt --glue-dir glue "
                            "--out runs/demo\n  layermap show runs/demo\n"
                            "  layermap compare runs/demo --config demo --out runs/demo-compare\n"
                            "  layermap plot runs/demo-compare",
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"layermap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("baselines", help="print the uniform / top / bottom / last-layer mappings",
                       epilog="example:\n  layermap baselines --teacher-layers 12 --student-layers 4", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher-layers", type=int, required=True, help="teacher depth N")
    p.add_argument("--student-layers", type=int, required=True, help="student depth M (at most N)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=_cmd_baselines)
    _add_distill(sub)
    _add_fitness(sub)
    try:
        from .search import register
    except ImportError:  # pragma: no cover - only while the search module is absent
        pass
    else:
        register(sub)
    from .compare import register as register_compare
    from .validate import register as register_validate

    register_compare(sub)
    register_validate(sub)
    from .bench import register as register_bench
    from .quantize import register as register_quantize

    register_bench(sub)
    register_quantize(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)       # --help and --version end here, before torch is imported
    from ..versions import check_transformers

    try:
        check_transformers()             # before transformers is imported: an old one may not import at all
    except LayermapError as exc:
        print(f"layermap: error: {exc}", file=sys.stderr)
        return 2
    from proxy_tasks import TaskError

    from ..distill.models import quiet_transformers

    quiet_transformers()
    try:
        with console(quiet=bool(getattr(args, "quiet", False))):     # the library's log lines on stderr
            return int(args.func(args) or 0)
    except (LayermapError, TaskError) as exc:
        print(f"layermap: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:              # e.g. `layermap show --json | head -1`
        _silence_stdout()
        print("layermap: error: the output pipe was closed before everything was written", file=sys.stderr)
        return 2
    except OSError as exc:               # permission, missing folder, a folder where a file should be, disk full
        print(f"layermap: error: {_one_line(_os_error(exc))}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:  # disk full or a damaged store while a run writes
        print(f"layermap: error: the SQLite store failed ({_one_line(str(exc))}); every finished evaluation is kept - "
              "free disk space or move the run folder, then rerun with --resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("layermap: interrupted; finished work is kept (rerun with --resume where the command has it)", file=sys.stderr)
        return 130


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _os_error(exc: OSError) -> str:
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        return (f"cannot use {os.fspath(exc.filename)!r}: {what}; check the path, its permissions and the free space "
                "on its disk")
    return f"{what}; check the paths given, their permissions and the free space on their disks"


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so that Python's exit-time flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
