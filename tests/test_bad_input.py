"""Bad input, tried as a new user would: every case ends in one sentence on stderr and exit code 2.

Each row of ``CASES`` builds the command line (and whatever files it needs) and names a piece of the
expected message; the test runs ``layermap.cli.main.main`` in-process and asserts exit code 2, exactly one
line on stderr, no traceback, and, where the row says so, that no half-made run folder was left.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from layermap.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Ctx:
    tmp: Path
    teacher: Path
    corpus: Path
    glue: Path
    config: Path
    monkeypatch: pytest.MonkeyPatch
    leaves_nothing: list[Path] = field(default_factory=list)     # paths that must not exist afterwards

    def run_dir(self) -> Path:
        """A finished (synthetic) run to show and export."""
        out = self.tmp / "run"
        if not out.exists():
            assert main(["evolve", "--synthetic", "6", "--set", "search.generations=1", "--set", "search.population=4",
                         "--set", "run.shared_fitness=false", "--quiet", "--out", str(out)]) == 0
        return out

    def file(self, name: str, content: str | bytes) -> str:
        path = self.tmp / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return str(path)

    def distill(self, *extra: str, mapping: str = "2-4", out: str | None = None) -> list[str]:
        return ["distill", "--teacher", str(self.teacher), "--student-layers", "2", "--hidden-size", "16", "--heads", "2",
                "--mapping", mapping, "--corpus", str(self.corpus), "--max-segments", "16", "--max-steps", "2",
                "--batch-size", "8", "--seq-len", "32", "--quiet", "--out", out or str(self.tmp / "student"), *extra]

    def evolve(self, *extra: str, out: str | None = None) -> list[str]:
        out = out or str(self.tmp / "search")
        self.leaves_nothing.append(Path(out))
        return ["evolve", "--config", str(self.config), "--quiet", "--out", out, *extra]

    def fitness(self, *extra: str) -> list[str]:
        return ["fitness", "--mapping", "2-4", "--config", str(self.config), "--quiet", *extra]

    def teacher_copy(self, name: str) -> Path:
        path = self.tmp / name
        shutil.copytree(self.teacher, path)
        return path


def _deny_open(ctx: Ctx, path: str, exc: OSError) -> None:
    real_open = builtins.open

    def fake_open(file, *a, **k):
        if str(file) == path:
            raise exc
        return real_open(file, *a, **k)
    ctx.monkeypatch.setattr(builtins, "open", fake_open)


def _unreadable_corpus(ctx: Ctx) -> list[str]:
    path = ctx.file("locked.txt", "the movie was good . " * 50 + "\n")
    _deny_open(ctx, path, PermissionError(13, "Permission denied", path))
    return ctx.distill("--corpus", path)


def _io_error_corpus(ctx: Ctx) -> list[str]:
    path = ctx.file("bad_disk.txt", "the movie was good . " * 50 + "\n")
    _deny_open(ctx, path, OSError(5, "Input/output error", path))
    return ctx.distill("--corpus", path)


def _corrupt_weights(ctx: Ctx) -> list[str]:
    teacher = ctx.teacher_copy("corrupt_teacher")
    weights = teacher / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return ctx.distill("--teacher", str(teacher))


def _teacher_without_weights(ctx: Ctx) -> list[str]:
    teacher = ctx.teacher_copy("no_weights")
    (teacher / "model.safetensors").unlink()
    return ctx.evolve("--teacher", str(teacher))


def _non_encoder_teacher(ctx: Ctx) -> list[str]:
    from transformers import AutoTokenizer, GPT2Config, GPT2Model

    path = ctx.tmp / "gpt2"
    tokenizer = AutoTokenizer.from_pretrained(str(ctx.teacher))
    GPT2Model(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=4, n_head=4, n_positions=128)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return ctx.distill("--teacher", str(path))


def _read_only_out(ctx: Ctx) -> list[str]:
    out = ctx.tmp / "readonly" / "student"
    real_mkdir = Path.mkdir

    def fake_mkdir(self, *a, **k):
        if str(self).startswith(str(ctx.tmp / "readonly")):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *a, **k)
    ctx.monkeypatch.setattr(Path, "mkdir", fake_mkdir)
    return ctx.distill(out=str(out))


def _bad_glue_header(ctx: Ctx) -> list[str]:
    glue = ctx.tmp / "glue_bad"
    shutil.copytree(ctx.glue, glue)
    train = glue / "SST-2" / "train.tsv"
    lines = train.read_text().splitlines()
    train.write_text("\n".join(["text\tlabel"] + lines[1:]) + "\n")
    return ctx.evolve("--glue-dir", str(glue))


def _racing_resume_other_cap(ctx: Ctx) -> list[str]:
    out = ctx.tmp / "racing"
    assert main(["evolve", "--synthetic", "6", "--set", "search.strategy=\"racing\"", "--set", "search.replicate_cap=2",
                 "--set", "search.generations=1", "--set", "search.population=4", "--set", "run.shared_fitness=false",
                 "--quiet", "--out", str(out)]) == 0
    return ["evolve", "--resume", str(out), "--set", "search.replicate_cap=3"]


def _empty_store(ctx: Ctx) -> list[str]:
    run = ctx.run_dir()
    store = run / "layermap.sqlite"
    store.write_bytes(b"")
    ctx.leaves_nothing.append(store.with_name("layermap.sqlite-wal"))
    return ["show", str(run)]


def _store_missing_a_table(ctx: Ctx) -> list[str]:
    run = ctx.run_dir()
    with sqlite3.connect(run / "layermap.sqlite") as db:
        db.execute("DROP TABLE generations")
    return ["show", str(run)]


def _distill_out_is_a_file(ctx: Ctx) -> list[str]:
    return ctx.distill(out=ctx.file("taken.txt", "x"))


def _evolve_out_is_a_file(ctx: Ctx) -> list[str]:
    path = ctx.file("taken", "x")
    return ["evolve", "--synthetic", "6", "--quiet", "--out", path]


# (id, build(ctx) -> argv, a piece of the expected message)
CASES: list[tuple[str, Callable[[Ctx], list[str]], str]] = [
    # mappings
    ("mapping-json-list", lambda c: c.distill(mapping=c.file("m.json", "[2, 4, 6]")), "must be an object"),
    ("mapping-json-string-genes", lambda c: c.distill(mapping=c.file("m.json", '{"genes": ["2", "4"], "teacher_layers": 4}')),
     "list of teacher layer numbers"),
    ("mapping-json-int-genes", lambda c: c.distill(mapping=c.file("m.json", '{"genes": 2, "teacher_layers": 4}')),
     "list of teacher layer numbers"),
    ("mapping-json-teacher-layers", lambda c: c.distill(mapping=c.file("m.json", '{"genes": [2, 4], "teacher_layers": "four"}')),
     "'teacher_layers' must be a whole number"),
    ("mapping-json-directory", lambda c: (c.tmp.joinpath("x.json").mkdir(), c.distill(mapping=str(c.tmp / "x.json")))[1],
     "cannot be read"),
    ("mapping-json-invalid", lambda c: c.distill(mapping=c.file("m.json", "{genes: [2, 4]")), "is not valid JSON"),
    ("mapping-json-missing-key", lambda c: c.distill(mapping=c.file("m.json", '{"genes": [2, 4]}')), "lacks the key"),
    ("mapping-malformed", lambda c: c.distill(mapping="2-x"), "is malformed"),
    ("mapping-out-of-range", lambda c: c.distill(mapping="2-9"), "teacher layer 9"),
    ("mapping-gene-count", lambda c: c.distill(mapping="1-2-3"), "has 3 genes"),
    ("mapping-fitness-unknown-baseline", lambda c: c.fitness("--mapping", "middle"), "is malformed"),
    # settings files and --set
    ("settings-key-outside-section", lambda c: c.evolve("--config", c.file("s.toml", "generations = 4\n[search]\nseed = 1\n")),
     "outside any [section]; put it under [search]"),
    ("settings-not-utf8", lambda c: c.evolve("--config", c.file("s.toml", "[search]\n# caf\xe9\n".encode("latin-1"))),
     "is not UTF-8"),
    ("settings-invalid-toml", lambda c: c.evolve("--config", c.file("s.toml", "[search\npopulation = 4\n")), "not valid TOML"),
    ("settings-missing-file", lambda c: c.evolve("--config", str(c.tmp / "nope.toml")), "neither a preset"),
    ("settings-unknown-key", lambda c: c.evolve("--set", "search.popsize=3"), "unknown setting search.popsize"),
    ("settings-unknown-section", lambda c: c.evolve("--set", "serch.population=3"), "unknown config section"),
    ("settings-malformed-set", lambda c: c.evolve("--set", "population"), "is malformed"),
    ("settings-wrong-type", lambda c: c.evolve("--set", "search.population='many'"), "must be an integer"),
    ("proxy-batch-size-0", lambda c: c.evolve("--set", "proxy.batch_size=0"), "proxy.batch_size must be at least 1"),
    ("distill-warmup-ratio-negative", lambda c: c.evolve("--set", "distill.warmup_ratio=-3"), "warmup_ratio must be between"),
    ("distill-lr-nan-setting", lambda c: c.fitness("--set", "distill.learning_rate=nan"), "learning_rate must be a positive"),
    ("search-cx-plus-mut", lambda c: c.evolve("--set", "search.cx_prob=0.8"), "cx_prob + search.mut_prob"),
    ("run-device-banana", lambda c: c.evolve("--device", "banana"), "run.device must be"),
    ("corpus-seq-len-beyond-positions", lambda c: c.evolve("--set", "corpus.seq_len=600"),
     "corpus.seq_len = 600 is longer than the teacher's 128 positions"),
    ("proxy-seq-len-beyond-positions", lambda c: c.fitness("--set", "proxy.seq_len=256"), "proxy.seq_len = 256 is longer"),
    ("resume-changes-a-setting", lambda c: ["evolve", "--resume", str(c.run_dir()), "--set", "search.seed=4"],
     "cannot change on --resume"),
    # distill flags
    ("distill-lr-nan", lambda c: c.distill("--lr", "nan"), "learning_rate must be a positive number"),
    ("distill-device-banana", lambda c: c.distill("--device", "banana"), "'banana' is not a device"),
    ("distill-seq-len-beyond-positions", lambda c: c.distill("--seq-len", "1000"), "--seq-len = 1000 is longer"),
    ("distill-student-layers-not-a-number", lambda c: c.distill("--student-layers", "x"), "invalid int value"),
    ("distill-unknown-flag", lambda c: c.distill("--epochz", "3"), "unrecognized arguments"),
    ("distill-out-is-a-file", _distill_out_is_a_file, "is a file, not a folder"),
    # files and the operating system
    ("teacher-missing", lambda c: c.distill("--teacher", str(c.tmp / "no_teacher")), "does not exist"),
    ("teacher-corrupt-weights", _corrupt_weights, "could not be read"),
    ("teacher-without-weights", _teacher_without_weights, "has no weights"),
    ("teacher-not-an-encoder", _non_encoder_teacher, "not a BERT-like encoder"),
    ("corpus-missing", lambda c: c.distill("--corpus", str(c.tmp / "none.txt")), "does not exist"),
    ("corpus-empty", lambda c: c.distill("--corpus", c.file("empty.txt", "\n\n")), "is empty"),
    ("corpus-empty-evolve", lambda c: c.evolve("--corpus", c.file("empty.txt", "")), "is empty"),
    ("corpus-unreadable", _unreadable_corpus, "cannot be read (Permission denied)"),
    ("corpus-io-error", _io_error_corpus, "cannot be read (Input/output error)"),
    ("out-in-read-only-folder", _read_only_out, "Permission denied"),
    ("glue-bad-header", _bad_glue_header, "SST-2"),
    ("evolve-out-is-a-file", _evolve_out_is_a_file, "is a file, not a folder"),
    ("evolve-without-out", lambda c: ["evolve", "--synthetic", "6"], "needs --out"),
    ("evolve-retry-failed-new-run", lambda c: ["evolve", "--synthetic", "6", "--retry-failed", "--out", str(c.tmp / "r")],
     "only works with --resume"),
    ("resume-not-a-run", lambda c: ["evolve", "--resume", str(c.tmp)], "not a layermap run folder"),
    ("show-not-a-run", lambda c: ["show", str(c.tmp / "nothing")], "not a layermap run folder"),
    ("show-empty-store", _empty_store, "is empty (0 bytes)"),
    ("show-store-missing-a-table", _store_missing_a_table, "no such table"),
    ("export-into-missing-folder", lambda c: ["export", str(c.run_dir()), "-o", str(c.tmp / "no" / "best.json")],
     "does not exist"),
    ("export-onto-a-folder", lambda c: ["export", str(c.run_dir()), "-o", str(c.tmp)], "is a folder"),
    ("baselines-deeper-student", lambda c: ["baselines", "--teacher-layers", "4", "--student-layers", "6"],
     "no deeper than the teacher"),
    # noise-aware search (issue 17)
    ("search-replicate-cap-zero", lambda c: ["evolve", "--synthetic", "6", "--set", "search.replicate_cap=0", "--quiet",
                                             "--out", str(c.tmp / "r")], "search.replicate_cap must be at least 1"),
    ("resume-racing-with-another-cap", _racing_resume_other_cap, "search.replicate_cap cannot change on --resume"),
    ("bench-noisy-table-one-seed-set", lambda c: ["bench", "search", str(ROOT / "results/benchmarks/landscape_synthetic.csv"),
                                                  "--noisy", "--seeds", "1"], "has only one seed set"),
    # statistics that hold up (issue 21)
    ("search-confirm-without-a-race", lambda c: ["evolve", "--synthetic", "6", "--set", 'search.strategy="racing"', "--set",
                                                 "search.replicate_cap=2", "--set", "search.confirm_seed_sets=2", "--quiet",
                                                 "--out", str(c.tmp / "r")], "leaves no seed set for the race"),
    ("bench-confirm-beyond-the-table", lambda c: ["bench", "search", str(ROOT / "results/benchmarks/landscape.csv"),
                                                  "--noisy", "--seeds", "1", "--methods", "racing", "--set",
                                                  "search.confirm_seed_sets=2"], "leaves no seed set for the race"),
    ("compare-distill-seeds-zero", lambda c: ["compare", "--mappings", "1-2", "--teacher", "t", "--corpus", "c",
                                              "--set", "compare.distill_seeds=0", "--out", str(c.tmp / "cmp")],
     "compare.distill_seeds must be at least 1"),
    # teacher-extracted students (issue 30): before any work
    ("init-teacher-deeper-student", lambda c: c.evolve("--set", "student.init='teacher'", "--set", "student.layers=6"),
     "the student has 6 layers and the teacher 4; use at most 4 student layers"),
    ("init-teacher-wider-student", lambda c: c.distill("--init", "teacher", "--hidden-size", "64", "--heads", "8"),
     "hidden size 64 is wider than the teacher's 32"),
    ("init-teacher-other-head-size", lambda c: c.distill("--init", "teacher", "--heads", "4"),
     "a 16-wide student has 2 heads, not 4; set student.heads = 2"),
    ("init-teacher-width-not-whole-heads", lambda c: c.fitness("--set", "student.init='teacher'", "--set",
                                                                 "student.hidden_size=12", "--set", "student.heads=3"),
     "hidden size 12 is not a multiple of 8"),
    ("init-teacher-compare-other-head-size", lambda c: ["compare", "--mappings", "1-2", "--config", str(c.config), "--set",
                                                        "compare.init='teacher'", "--set", "student.heads=1", "--out",
                                                        str(c.tmp / "cmp")], "a 16-wide student has 2 heads, not 1"),
    ("split-genome-init-layer-0", lambda c: c.fitness("--set", "student.init='teacher'", "--mapping", "0-4+2-4"),
     "starts student layer 1 from teacher layer 0"),
    ("split-genome-init-out-of-range", lambda c: c.distill("--init", "teacher", mapping="1-7+2-4"),
     "starts student layer 2 from teacher layer 7, but the teacher has layers 1..4"),
    ("split-genome-random-init", lambda c: c.fitness("--mapping", "1-2+2-4"), "needs student.init = 'teacher'"),
    ("split-genome-search-random-init", lambda c: c.evolve("--set", "search.genome='split'"),
     "search.genome = 'split' searches the teacher layer each student layer starts from"),
    ("split-genome-compare-init-0", lambda c: ["compare", "--mappings", "0-1+2-4", "--config", str(c.config), "--set",
                                               "compare.init='teacher'", "--out", str(c.tmp / "cmp")],
     "starts student layer 1 from teacher layer 0"),
    ("split-genome-seed-init-0", lambda c: c.evolve("--set", "student.init='teacher'", "--set", "search.genome='split'",
                                                    "--set", "search.seed_mappings=['0-1+2-4']"),
     "search.seed_mappings: split genome 0-1+2-4 starts student layer 1 from teacher layer 0"),
]


@pytest.fixture
def ctx(tmp_path, tiny_teacher_dir, tiny_corpus, tiny_glue_dir, tiny_config_toml, monkeypatch):
    return Ctx(tmp_path, tiny_teacher_dir, tiny_corpus, tiny_glue_dir, tiny_config_toml, monkeypatch)


@pytest.mark.parametrize("build, expected", [pytest.param(b, e, id=i) for i, b, e in CASES])
def test_bad_input_is_one_sentence_and_exit_code_2(ctx, build, expected, capsys):
    argv = build(ctx)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:                                  # argparse's usage errors
        code = exc.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("layermap")
    assert expected in lines[0], lines[0]
    for path in ctx.leaves_nothing:
        assert not path.exists(), f"{path} was left behind"


def test_the_table_is_long_enough():
    assert len(CASES) >= 30


def test_show_json_into_a_closed_pipe_is_one_line(ctx):
    """``layermap show --json | true``: a BrokenPipeError becomes one line, not a traceback."""
    run = ctx.run_dir()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(f"{sys.executable} -m layermap show --json --top 50 {run} | true", shell=True,
                          capture_output=True, text=True, env=env, timeout=300)
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 1          # the pipe may also drain before it closes


def test_broken_pipe_in_process_is_one_line(ctx, capsys, monkeypatch):
    run = ctx.run_dir()

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    code = main(["show", "--json", str(run)])
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pipe was closed" in err[0]


def test_a_failed_first_check_leaves_no_stuck_run_folder(ctx, capsys):
    """Issue 9.16: fix the input, rerun the same command: it works (no 'pass --resume', no fingerprint refusal)."""
    glue = ctx.tmp / "glue_fixable"
    shutil.copytree(ctx.glue, glue)
    train = glue / "SST-2" / "train.tsv"
    good = train.read_text()
    train.write_text(good.replace("sentence\tlabel", "text\tlabel", 1))
    out = ctx.tmp / "fixable"
    argv = ["evolve", "--config", str(ctx.config), "--glue-dir", str(glue), "--quiet", "--out", str(out),
            "--set", "search.generations=1", "--set", "search.population=2", "--set", "search.offspring=1"]
    assert main(argv) == 2
    assert not out.exists()
    train.write_text(good)
    assert main(argv) == 0
    assert (out / "run.json").is_file()


def test_show_says_interrupted_for_a_killed_run(ctx, capsys):
    from layermap.storage.store import Store
    from layermap.storage.runs import read_run_info

    run = ctx.run_dir()
    info = read_run_info(run)
    with Store(info.store_path(run)) as store:
        store.set_run_status(info.run_id, "running")          # what a kill -9 leaves behind
    capsys.readouterr()
    assert main(["show", str(run)]) == 0
    assert "(interrupted)" in capsys.readouterr().out
    assert main(["show", "--json", str(run)]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "interrupted"
    from layermap.storage.runs import lock_run

    holder = lock_run(run)                                     # a live driver holds the lock
    try:
        assert main(["show", str(run)]) == 0
        assert "(running)" in capsys.readouterr().out
    finally:
        holder.close()


def test_show_does_not_write_into_an_empty_store(ctx, capsys):
    run = ctx.run_dir()
    (run / "layermap.sqlite").write_bytes(b"")
    assert main(["show", str(run)]) == 2
    assert (run / "layermap.sqlite").stat().st_size == 0


def test_evolve_out_naming_a_file_does_not_suggest_resume(ctx, capsys):
    assert main(_evolve_out_is_a_file(ctx)) == 2
    assert "--resume" not in capsys.readouterr().err


def test_distill_rerun_with_another_mapping_refuses_the_old_checkpoint(ctx, capsys, monkeypatch):
    """Issue 9.1 at the command line: crash a 2-4 distillation after a checkpoint, rerun into the same --out
    with 1-3 and another seed: refused in one sentence instead of resumed and labelled 1-3."""
    import layermap.distill.output as output

    def crash(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(output, "save_student", crash)
    out = str(ctx.tmp / "crashed")
    argv = ctx.distill("--max-steps", "4", "--checkpoint-every", "2", out=out)
    assert main(argv) == 130
    assert (Path(out) / "checkpoints" / "checkpoint.pt").is_file()
    monkeypatch.undo()
    capsys.readouterr()
    assert main(ctx.distill("--max-steps", "4", "--checkpoint-every", "2", "--seed", "1", mapping="1-3", out=out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "belongs to another distillation" in err[0]
    assert main(argv) == 0                                     # the same command resumes
