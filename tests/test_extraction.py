"""Teacher-extracted students (issue 30): what a gene means, the split genome, the shapes the extraction can produce,
and the reference rows of teacher initialisation."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from layermap.config import ConfigError, load_config
from layermap.searching.operators import GenomeSpace
from layermap.evaluators.references import build_references
from layermap.extraction import (ExtractionError, SplitGenome, as_split, baseline_genomes, baseline_texts,
                                 check_extraction, gene_legend, gene_sentence, genes_of, init_layers, parse_genome,
                                 truncation)
from layermap.mapping import LayerMapping, satisfies

MINILM = SimpleNamespace(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536)


def test_split_genome_text_round_trips_and_reads_like_a_mapping():
    g = SplitGenome.parse("1-2-3+2-4-6", 6, student_layers=3)
    assert g.init == (1, 2, 3) and g.genes == (2, 4, 6) and g.text == "1-2-3+2-4-6" and str(g) == g.text
    assert g.pairs() == [(0, 0), (1, 2), (2, 4), (3, 6)] and g.teacher_layers_used() == (2, 4, 6)
    assert g.flat == (1, 2, 3, 2, 4, 6) and SplitGenome.from_flat(g.flat, 6) == g
    d = g.to_dict(teacher="t")
    assert d["mapping"] == "1-2-3+2-4-6" and d["genes"] == [2, 4, 6] and d["init_genes"] == [1, 2, 3]
    assert list(d)[-1] == "metadata"
    assert "+" not in "L4-H256-A4-F1024:3-6-9-12" and ":" not in g.text      # distinct from the shaped text


@pytest.mark.parametrize("text, fragment", [
    ("1-0-3+2-4-6", "starts student layer 2 from teacher layer 0"),
    ("1-9-3+2-4-6", "starts student layer 2 from teacher layer 9, but the teacher has layers 1..6"),
    ("1-2+2-4-6", "2 init genes and 3 imitation genes"),
    ("1-2-3+2-4-9", "imitation part: mapping 2-4-9 uses teacher layer 9"),
    ("1-2-3+2+4", "exactly one '+'"),
    ("1-a-3+2-4-6", "is malformed"),
])
def test_a_bad_split_genome_is_one_sentence_naming_the_gene(text, fragment):
    with pytest.raises(ExtractionError, match=fragment.replace("(", r"\(").replace("+", r"\+")):
        SplitGenome.parse(text, 6)


def test_the_order_constraint_binds_the_imitation_part_only():
    assert SplitGenome.parse("3-2-1+1-2-3", 6, constraint="increasing").init == (3, 2, 1)
    with pytest.raises(ExtractionError, match="breaks the 'increasing' order constraint"):
        SplitGenome.parse("1-2-3+3-2-1", 6, constraint="increasing")


def test_a_split_genome_needs_teacher_initialisation():
    with pytest.raises(ExtractionError, match="needs student.init = 'teacher'.*2-4-6"):
        parse_genome("1-2-3+2-4-6", 6, init="random")
    assert parse_genome("2-4-6", 6, init="random") == LayerMapping((2, 4, 6), 6)
    assert parse_genome("uniform", 6, student_layers=3).genes == (2, 4, 6)


def test_a_coupled_genome_is_its_split_equal():
    assert init_layers(LayerMapping((0, 0, 6), 6)) == (2, 4, 6)            # gene 0 starts from the uniform layer
    assert as_split(LayerMapping((0, 0, 6), 6)).text == "2-4-6+0-0-6"
    assert as_split(LayerMapping((2, 4, 6), 6)).text == "2-4-6+2-4-6"
    assert genes_of("1-2-3+2-4-6") == (2, 4, 6) and genes_of("L3-H384-A12-F1536:2-4-6") == (2, 4, 6)
    assert truncation(3, 6).genes == (1, 2, 3)
    assert baseline_genomes(3, 6, "split") == {"uniform": "2-4-6+2-4-6", "top": "4-5-6+4-5-6", "bottom": "1-2-3+1-2-3",
                                               "last": "2-4-6+0-0-6"}
    assert baseline_texts(3, 6) == {"2-4-6": "uniform", "4-5-6": "top", "1-2-3": "bottom", "0-0-6": "last"}
    assert baseline_texts(8, 6, "split") == {}


def test_one_function_says_what_every_gene_means():
    assert gene_sentence(LayerMapping((2, 4, 6), 6)) == (
        "2-4-6: student layer 1 starts from and imitates teacher layer 2, student layer 2 starts from and imitates "
        "teacher layer 4, student layer 3 starts from and imitates teacher layer 6")
    assert gene_sentence(SplitGenome.parse("1-4-6+2-4-0", 6)) == (
        "1-4-6+2-4-0: student layer 1 starts from teacher layer 1 and imitates teacher layer 2, student layer 2 starts "
        "from and imitates teacher layer 4, student layer 3 starts from teacher layer 6 and has no intermediate loss")
    assert "starts from teacher layer 2 and has no intermediate loss" in gene_sentence(LayerMapping((0, 0, 6), 6))
    assert gene_sentence(LayerMapping((0, 4, 6), 6), "random").startswith(
        "0-4-6: student layer 1 has no intermediate loss, student layer 2 imitates teacher layer 4")
    assert "student layer m starts from and imitates teacher layer k" in gene_legend("teacher")
    assert "starts from teacher layer i_m and imitates teacher layer k_m" in gene_legend("teacher", "split")
    assert "starts from" not in gene_legend("random")


@pytest.mark.parametrize("sizes, fragment", [
    ((8, 0, 0, 0), "the student has 8 layers and the teacher 6; use at most 6"),
    ((3, 512, 16, 0), "hidden size 512 is wider than the teacher's 384"),
    ((3, 384, 12, 2048), "FFN size 2048 is wider than the teacher's 1536"),
    ((3, 200, 8, 0), "hidden size 200 is not a multiple of 32"),
    ((3, 192, 12, 768), "a 192-wide student has 6 heads, not 12; set student.heads = 6"),
    ((3, 384, 6, 0), "a 384-wide student has 12 heads, not 6"),
])
def test_a_student_the_extraction_cannot_cut_is_one_sentence(sizes, fragment):
    with pytest.raises(ExtractionError, match=fragment.replace("(", r"\(")) as info:
        check_extraction(*sizes, MINILM)
    assert "student.init = 'random'" in str(info.value) and "\n" not in str(info.value)


def test_whole_teacher_heads_are_what_the_extraction_produces():
    for sizes in ((3, 0, 0, 0), (6, 384, 12, 1536), (3, 192, 6, 768), (2, 96, 3, 0), (1, 32, 1, 64)):
        check_extraction(*sizes, MINILM)


def test_split_genome_settings_are_checked_before_any_work():
    with pytest.raises(ConfigError, match="search.genome = 'split'.*needs student.init = 'teacher'"):
        load_config(None, ["search.genome='split'"])
    with pytest.raises(ConfigError, match="not 'nsga2'"):
        load_config(None, ["search.genome='split'", "student.init='teacher'", "search.strategy='nsga2'"])
    with pytest.raises(ConfigError, match="search.genome must be 'coupled' or 'split'"):
        load_config(None, ["search.genome='both'"])
    assert load_config(None, ["search.genome='split'", "student.init='teacher'"]).search.genome == "split"
    assert load_config(None, ["search.seed_mappings=['1-2-3+2-4-6']"]).search.seed_mappings == ("1-2-3+2-4-6",)


@pytest.mark.parametrize("constraint", ["free", "non-decreasing", "increasing"])
def test_split_operators_keep_each_part_in_its_range(constraint):
    space = GenomeSpace("split", 3, 6, constraint)
    rng = random.Random(0)
    population = space.initial(rng, 12)
    assert population[:4] == [space.genes(t) for t in ("2-4-6+2-4-6", "4-5-6+4-5-6", "1-2-3+1-2-3", "2-4-6+0-0-6")]
    assert len(set(population)) == 12
    for _ in range(300):
        a, b = list(rng.choice(population)), list(rng.choice(population))
        from layermap.searching.operators import crossover_two_point

        child = space.repair(crossover_two_point(rng, a, b)[0])
        parent = list(child)
        mutant = tuple(space.mutate(rng, list(parent), space.mutation_prob(0.0))[0])
        assert mutant != tuple(parent)
        for genes in (child, space.repair(mutant)):
            assert all(1 <= i <= 6 for i in genes[:3]) and all(0 <= k <= 6 for k in genes[3:])
            assert satisfies(genes[3:], constraint)
            assert SplitGenome.parse(space.text(genes), 6, constraint=constraint).flat == tuple(genes)
    assert space.mutation_prob(0.0) == pytest.approx(1 / 6) and GenomeSpace("coupled", 3, 6).mutation_prob(0.0) == 1 / 3
    assert space.seed("2-4-6") == (2, 4, 6, 2, 4, 6) and space.seed("1-1-1+0-0-6") == (1, 1, 1, 0, 0, 6)
    with pytest.raises(Exception, match="search.seed_mappings: split genome 0-1-1"):
        space.seed("0-1-1+0-0-6")


def test_a_coupled_space_reads_as_before():
    space = GenomeSpace("coupled", 3, 6)
    assert space.text((2, 4, 6)) == "2-4-6" and space.genes("2-4-6") == (2, 4, 6)
    from layermap.searching.operators import initial_genomes

    assert space.initial(random.Random(3), 8) == initial_genomes(random.Random(3), 8, 3, 6, "free")


def test_teacher_initialisation_reference_rows_floor_at_their_best():
    t = [{"sst2": 80.0, "mrpc": 70.0}, {"sst2": 81.0, "mrpc": 71.0}]
    refs = build_references(t, {"truncation": [{"sst2": 76.0, "mrpc": 60.0}] * 2,
                                 "random": [{"sst2": 55.0, "mrpc": 66.0}] * 2},
                            [{"sst2": 50.0, "mrpc": 68.0}] * 2)
    assert [r.name for r in refs.rows] == ["teacher", "truncation", "random", "constant"]
    assert refs.floor("sst2") == 76.0 and refs.floor("mrpc") == 68.0
    assert refs.average_floor() == pytest.approx(72.0)                   # the mean of the task floors, not a max of means
    assert refs.headroom({"sst2": 78.25, "mrpc": 69.0})["sst2"] == pytest.approx(0.5)
    again = type(refs).from_json(refs.to_json())
    assert [r.name for r in again.rows] == ["teacher", "truncation", "random", "constant"] and again.floor("sst2") == 76.0
    sentence = refs.validity()["sst2"].sentence()
    assert "the plain truncation (the bottom teacher layers, no distillation) 76.0" in sentence
    assert "a random student with no distillation 55.0" in sentence
    from layermap.evaluators.references import learnt_sentence

    assert "(truncation, random or the constant predictor)" in learnt_sentence(
        build_references([{"sst2": 60.0}], {"truncation": [{"sst2": 59.9}], "random": [{"sst2": 50.0}]},
                         [{"sst2": 50.0}]), 59.0)


def test_the_undistilled_student_of_a_genome_is_the_layers_it_starts_from():
    from layermap.extraction import undistilled_student_text

    assert [undistilled_student_text(t, 6, 3) for t in ("0-0-6", "0-4-6", "2-4-6", "1-2-3+2-4-6", "1-2-4+0-0-0")] == \
        ["2-4-6", "2-4-6", "2-4-6", "1-2-3", "1-2-4"]
    assert undistilled_student_text("L2-H64-A2-F128:1-2", 6, 2) == "L2-H64-A2-F128:1-2"   # a shaped genome: its own
    assert undistilled_student_text("not a genome", 6, 3) == "not a genome"
