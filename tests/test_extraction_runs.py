"""Teacher-extracted students end to end on the tiny teacher (issue 30): a coupled genome equals its split genome in
every number, the reference rows of teacher initialisation (proxy and final stage), a split search through show,
export and plot, and what every output says a gene means."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from layermap.cli.main import main
from layermap.config import load_config

TEACHER_INIT = ("student.init='teacher'", "proxy.reference_seed_sets=2")


def _config(path: Path, *overrides: str):
    return load_config(str(path), overrides)


def test_a_coupled_genome_equals_its_split_genome_in_every_number(tiny_config_toml):
    from layermap.evaluators.proxy import ProxyEvaluator

    evaluator = ProxyEvaluator(_config(tiny_config_toml, *TEACHER_INIT))
    coupled, split = evaluator.evaluate((2, 4)), evaluator.evaluate("2-4+2-4")
    assert split.genome == "2-4+2-4" and coupled.genome == "2-4"
    assert split.fitness == coupled.fitness and split.distill_loss == coupled.distill_loss
    assert {t: (s.score, s.metrics) for t, s in split.tasks.items()} == \
        {t: (s.score, s.metrics) for t, s in coupled.tasks.items()}
    zero = evaluator.evaluate((0, 4))                              # gene 0 starts from the uniform layer: 2-4+0-4
    assert evaluator.evaluate("2-4+0-4").distill_loss == zero.distill_loss
    other = evaluator.evaluate("1-1+2-4")                          # another start is another student
    assert other.distill_loss != coupled.distill_loss


def test_fitness_says_what_a_gene_means_with_teacher_initialisation(tiny_config_toml, capsys):
    argv = ["fitness", "--config", str(tiny_config_toml), "--quiet", "--no-references", "--set", "student.init='teacher'"]
    assert main([*argv, "--mapping", "1-2+2-0"]) == 0
    out = capsys.readouterr().out
    assert ("1-2+2-0: student layer 1 starts from teacher layer 1 and imitates teacher layer 2, student layer 2 starts "
            "from teacher layer 2 and has no intermediate loss") in out
    assert main([*argv, "--mapping", "2-4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gene_meaning"].startswith("2-4: student layer 1 starts from and imitates")
    assert main(["fitness", "--config", str(tiny_config_toml), "--quiet", "--no-references", "--mapping", "2-4"]) == 0
    assert "starts from" not in capsys.readouterr().out                    # a random initialisation: as before


def test_teacher_initialisation_reads_against_the_truncation_and_a_random_student(tiny_config_toml):
    from layermap.evaluators.proxy import ProxyEvaluator

    teacher_init = ProxyEvaluator(_config(tiny_config_toml, *TEACHER_INIT, "proxy.head='probe'"))
    refs = teacher_init.references()
    assert [r.name for r in refs.rows] == ["teacher", "truncation", "random", "constant"]
    random_init = ProxyEvaluator(_config(tiny_config_toml, "proxy.reference_seed_sets=2", "proxy.head='probe'"))
    assert [r.name for r in random_init.references().rows] == ["teacher", "no distillation", "constant"]
    assert refs.extra[0].tasks == random_init.references().no_distillation.tasks     # the same random student
    bottom = teacher_init.new_student(teacher_init.genome((1, 2)))                   # the truncation is the bottom copy
    scores, _ = teacher_init.score_student(bottom)
    assert {t: s.score for t, s in scores.items()} == {t: v[0] for t, v in refs.no_distillation.replicates.items()}
    assert refs.floor("sst2") == max(r.tasks["sst2"] for r in refs.rows[1:])


def test_a_student_the_extraction_cannot_cut_is_refused_before_the_evaluator_loads(tiny_config_toml):
    from layermap.evaluators.proxy import ProxyEvaluator
    from layermap.extraction import ExtractionError

    with pytest.raises(ExtractionError, match="a 16-wide student has 2 heads, not 4"):
        ProxyEvaluator(_config(tiny_config_toml, "student.init='teacher'", "student.heads=4"))


def test_a_split_search_runs_and_every_output_says_what_a_gene_means(tiny_config_toml, tmp_path, capsys):
    out = tmp_path / "split"
    argv = ["evolve", "--config", str(tiny_config_toml), "--quiet", "--out", str(out), "--set", "student.init='teacher'",
            "--set", "search.genome='split'", "--set", "search.generations=1", "--set", "proxy.reference_seed_sets=2",
            "--set", "proxy.head='probe'", "--set", "search.seed_mappings=['3-4+1-2']"]
    assert main(argv) == 0
    summary = capsys.readouterr().out
    assert "best " in summary and "starts from" in summary and "truncation" in summary and "random" in summary
    from layermap.storage.runs import open_run

    _, store, row = open_run(out)
    with store:
        genomes = {r.genome for r in store.run_evaluations(row.run_id)}
    assert {"3-4+1-2", "2-4+2-4", "3-4+3-4", "1-2+1-2"} <= genomes and all("+" in g for g in genomes)   # seeds, baselines

    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "student.init = teacher: genome i+k: student layer m starts from teacher layer i_m" in shown
    assert "\nbest " in shown and "starts from" in shown.split("\nbest ")[1]
    assert main(["show", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["student_init"] == "teacher" and data["meanings"][data["best"]["mapping"]].startswith(data["best"]["mapping"])
    assert data["best_vs_baselines"]["baseline"] in {"2-4+2-4", "3-4+3-4", "1-2+1-2", "2-4+0-4"}

    assert main(["export", str(out), "-o", str(tmp_path / "best.json")]) == 0
    exported = json.loads((tmp_path / "best.json").read_text())
    best = data["best"]["mapping"]
    assert exported["mapping"] == best and exported["init_genes"] == [int(g) for g in best.split("+")[0].split("-")]
    assert exported["metadata"]["gene_meaning"].startswith(best)
    assert main(["export", str(out), "--format", "textbrewer", "-o", str(tmp_path / "matches.json")]) == 0
    provenance = json.loads((tmp_path / "matches.provenance.json").read_text())
    assert provenance["starts_from"] == best.split("+")[0] and provenance["imitates"] == best.split("+")[1]
    assert provenance["slice"] == "importance"                  # the 16-wide student was cut by the default slice
    matches = json.loads((tmp_path / "matches.json").read_text())["intermediate_matches"]
    imitated = [int(g) for g in best.split("+")[1].split("-")]
    assert {(m["layer_S"], m["layer_T"]) for m in matches if m["feature"] == "hidden"} == \
        {(0, 0), *((s, k) for s, k in enumerate(imitated, start=1) if k > 0)}

    capsys.readouterr()
    assert main(["plot", str(out), "-o", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "gene_frequency_init.png").is_file()

    distilled = tmp_path / "student"                       # the exported file distils the student it names
    assert main(["distill", "--teacher", row.config["teacher"]["name"], "--student-layers", "2", "--hidden-size", "16",
                 "--heads", "2", "--mapping", str(tmp_path / "best.json"), "--corpus", row.config["corpus"]["path"],
                 "--max-segments", "16", "--max-steps", "1", "--batch-size", "8", "--seq-len", "32", "--init", "teacher",
                 "--quiet", "--out", str(distilled)]) == 0
    assert json.loads((distilled / "mapping.json").read_text())["mapping"] == best


def test_a_random_initialisation_run_says_nothing_new(tiny_config_toml, tmp_path, capsys):
    out = tmp_path / "coupled"
    assert main(["evolve", "--config", str(tiny_config_toml), "--quiet", "--out", str(out), "--set",
                 "search.generations=1", "--set", "proxy.reference_seed_sets=2", "--set", "proxy.head='probe'"]) == 0
    assert "starts from" not in capsys.readouterr().out
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "starts from" not in shown and "student.init" not in shown and "| no distillation" not in shown
    assert "no distillation" in shown


def test_the_final_stage_of_teacher_initialisation_reads_against_the_truncation_and_a_random_student(compare_toml,
                                                                                                    tmp_path):
    import torch
    from transformers import AutoModel

    from layermap.final.jobs import student_dir
    from layermap.final.run import render_folder, run_compare

    config = _config(compare_toml, "compare.init='teacher'", "student.slice='leading'", "compare.references=true",
                     "compare.max_steps=0", "compare.epochs=0", "compare.teacher_cache=false")
    out = tmp_path / "cmp"
    result = run_compare(config, ["1-2", "3-4+1-2", "1-2+1-2"], out, progress=False)
    table = json.loads((out / "comparison.json").read_text())
    assert table["mappings"] == ["1-2", "3-4+1-2"] and result.failed == 0      # 1-2+1-2 is 1-2: one student
    refs = table["references"]
    assert list(refs) == ["teacher", "truncation", "random", "constant"]
    rows = {(r["mapping"], r["task"]): r for r in table["rows"]}
    assert refs["truncation"]["average"]["mean"] == pytest.approx(rows[("1-2", "average")]["mean"])  # the same student
    teacher = AutoModel.from_pretrained(config.teacher.name)
    student = AutoModel.from_pretrained(student_dir(out, "3-4+1-2", 0))
    assert torch.equal(student.encoder.layer[0].attention.self.query.weight[:16, :16],
                       teacher.encoder.layer[2].attention.self.query.weight[:16, :16])   # starts from teacher layer 3
    md = (out / "comparison.md").read_text()
    assert "| truncation |" in md and "| random |" in md and "max(truncation, random, constant)" in md
    assert "student layer m starts from and imitates teacher layer k" in md and "plain truncation" in md
    assert render_folder(out).table["references"] == refs and (out / "comparison.md").read_text() == md
    from layermap.plots import plot_compare

    assert plot_compare(out)


@pytest.mark.integration
def test_an_old_random_initialisation_run_keeps_its_fingerprints_and_opens_as_before(minilm, shared_data, capsys):
    """results/demo-run (coupled, random initialisation) under today's code: the proxy's fitness and reference
    fingerprints are the ones its store recorded, and `layermap show` reads it without a word about teacher layers."""
    from layermap.evaluators.proxy import ProxyEvaluator
    from layermap.storage.runs import open_run

    run = Path(__file__).resolve().parents[1] / "results" / "demo-run"
    _, store, row = open_run(run)
    store.close()
    config = load_config(str(run / "config.toml"), [f"teacher.name={json.dumps(str(minilm))}",
                                                    f"corpus.path={json.dumps(str(shared_data / 'corpus' / 'enwiki_sample.txt'))}",
                                                    f"proxy.glue_dir={json.dumps(str(shared_data / 'glue'))}"])
    evaluator = ProxyEvaluator(config)
    if evaluator.fingerprint != row.fingerprint and evaluator.fingerprint_on("cpu") != row.fingerprint:
        pytest.skip("another torch/transformers release than the run's: its fingerprint differs for that reason")
    assert evaluator.fingerprint_on("cpu") == row.fingerprint
    assert evaluator.reference_fingerprint == row.description["reference_fingerprint"]
    assert main(["show", str(run)]) == 0
    shown = capsys.readouterr().out
    assert "starts from" not in shown and "| no distillation" not in shown and "no distillation" in shown


def test_racing_anchors_a_split_search_on_the_split_baselines(tiny_config_toml, tmp_path, capsys):
    out = tmp_path / "race"
    assert main(["evolve", "--config", str(tiny_config_toml), "--quiet", "--out", str(out), "--set",
                 "student.init='teacher'", "--set", "search.genome='split'", "--set", "search.strategy='racing'", "--set",
                 "search.replicate_cap=2", "--set", "search.confirm_seed_sets=1", "--set", "search.generations=1",
                 "--set", "search.offspring=2", "--set", "proxy.head='probe'"]) == 0
    capsys.readouterr()
    assert main(["show", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["best_vs_baselines"]["baseline"] in {"2-4+2-4", "3-4+3-4", "1-2+1-2", "2-4+0-4"}
    assert "+" in data["best"]["mapping"] and data["best"]["replicates"] >= 1
