"""Student shapes, the shape grid, shaped genomes and their operators; the [shape] / [latency] settings."""

from __future__ import annotations

import random

import pytest

from layermap.config import ConfigError, load_config
from layermap.searching.shaped_operators import (crossover_shaped, is_valid, mutate_shaped, novel_offspring, random_shaped,
                                       resize_genes)
from layermap.mapping import CONSTRAINTS
from layermap.shape import ShapedGenome, ShapeError, ShapeGrid, StudentShape

MINILM = dict(teacher_layers=6, teacher_hidden=384, teacher_heads=12, teacher_ffn=1536)


def test_shape_and_genome_text_round_trip():
    shape = StudentShape(4, 256, 4, 1024)
    assert shape.text == "L4-H256-A4-F1024" and StudentShape.parse(shape.text) == shape
    genome = ShapedGenome(shape, (3, 6, 9, 12))
    assert genome.text == "L4-H256-A4-F1024:3-6-9-12"
    assert ShapedGenome.parse(genome.text, teacher_layers=12, constraint="increasing") == genome


@pytest.mark.parametrize("text, fragment", [("L4-H250-A4-F1024", "not divisible"), ("L4-H256-A4", "malformed"),
                                            ("L0-H256-A4-F1024", ">= 1")])
def test_bad_shape_text_is_one_sentence(text, fragment):
    with pytest.raises(ShapeError, match=fragment):
        StudentShape.parse(text)


def test_genome_needs_one_gene_per_layer_and_valid_genes():
    with pytest.raises(ShapeError, match="3 genes for 4 layers"):
        ShapedGenome.parse("L4-H256-A4-F1024:3-6-9")
    with pytest.raises(Exception, match="teacher layer 13"):
        ShapedGenome.parse("L2-H256-A4-F1024:3-13", teacher_layers=12)


def test_default_grid_follows_the_anchors_capped_by_the_teacher():
    grid = ShapeGrid.resolve(**MINILM)
    assert grid.layers == (1, 2, 3, 4, 5, 6)
    assert grid.hidden_sizes == (64, 128, 192, 256, 320, 384)
    assert grid.heads_for(64) == (1, 2, 4, 8) and grid.heads_for(384) == (1, 2, 3, 4, 6, 8, 12)
    assert grid.ffns_for(64) == (96, 128, 160, 192, 224, 256)
    assert grid.contains(StudentShape(3, 192, 12, 384)) and not grid.contains(StudentShape(3, 192, 12, 400))
    assert grid.size == len(list(grid.shapes())) == 6 * sum(len(grid.heads_for(h)) * 6 for h in grid.hidden_sizes)


def test_grid_refuses_what_cannot_be_built():
    with pytest.raises(ShapeError, match="hidden size 100 is divisible by none"):
        ShapeGrid(layers=(2,), hidden_sizes=(96, 100), heads=(3, 8))
    with pytest.raises(ShapeError, match="wider than the teacher's 384.*student.init = 'teacher'"):
        ShapeGrid.resolve(**MINILM, hidden_sizes=(256, 448), init="teacher")
    with pytest.raises(ShapeError, match="FFN of 1920, wider than the teacher's 1536"):
        ShapeGrid.resolve(**MINILM, ffn_ratios=(2.0, 5.0), init="teacher")
    with pytest.raises(ShapeError, match="the teacher has 6"):
        ShapeGrid.resolve(**MINILM, layers=(2, 8))
    assert max(ShapeGrid.resolve(**MINILM, hidden_sizes=(448,)).hidden_sizes) == 448   # random init may be wider


def test_shape_settings_off_by_default_and_checked():
    config = load_config("demo")
    assert config.shape.search is False and config.search.objectives == ("fitness",)
    custom = load_config(None, ["shape.hidden_sizes=[128, 192]", "shape.heads=[2, 3]", "shape.ffn_ratios=[2, 4]"])
    assert custom.shape.hidden_sizes == (128, 192) and custom.shape.ffn_ratios == (2.0, 4.0)
    with pytest.raises(ConfigError, match="hidden size 100 is divisible by none"):
        load_config(None, ["shape.hidden_sizes=[100]", "shape.heads=[3]"])
    with pytest.raises(ConfigError, match="shape.layers must be an integer"):
        load_config(None, ["shape.layers=[2, 'x']"])
    with pytest.raises(ConfigError, match="unknown objective 'energy'"):
        load_config(None, ["search.objectives=['fitness', 'energy']"])
    with pytest.raises(ConfigError, match="need search.strategy = 'nsga2'"):
        load_config(None, ["shape.search=true"])
    with pytest.raises(ConfigError, match="need search.strategy = 'nsga2'"):
        load_config(None, ["search.objectives=['fitness', 'latency']"])
    with pytest.raises(ConfigError, match="latency.threads must be at least 1"):
        load_config(None, ["latency.threads=0"])


def test_resize_genes_keeps_relative_depth_and_the_constraint():
    assert resize_genes((3, 6, 9, 12), 2, 12, "increasing") == (6, 12)
    assert resize_genes((2, 4), 4, 6, "increasing") == (2, 3, 4, 5)
    assert resize_genes((2, 4), 4, 6, "non-decreasing") == (2, 2, 4, 4)
    assert resize_genes((0, 0, 6), 1, 6, "free") == (6,)
    assert resize_genes((5, 6), 4, 6, "increasing") == (5, 6, 0, 0)     # no teacher layer left above 6: no loss


@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_every_offspring_is_valid_and_mutants_differ(constraint):
    rng = random.Random(0)
    grid = ShapeGrid.resolve(**MINILM, hidden_sizes=(128, 192, 384), ffn_ratios=(2.0, 4.0))
    changed_depth = 0
    for _ in range(400):
        a, b = (random_shaped(rng, grid, 6, constraint) for _ in range(2))
        assert is_valid(a, grid, 6, constraint)
        mutant = mutate_shaped(rng, a, grid, 6, constraint)
        assert mutant != a and is_valid(mutant, grid, 6, constraint)
        changed_depth += mutant.shape.layers != a.shape.layers
        for child in crossover_shaped(rng, a, b, grid, 6, constraint):
            assert is_valid(child, grid, 6, constraint)
            assert child.shape.layers in (a.shape.layers, b.shape.layers)
    assert changed_depth > 40          # a fifth of the mutations change the depth, each with a repaired mapping


def test_a_fixed_shape_grid_varies_only_the_mapping():
    rng = random.Random(1)
    grid = ShapeGrid(layers=(3,), hidden_sizes=(192,), heads=(12,), ffn_ratios=(4.0,))
    genome = ShapedGenome(StudentShape(3, 192, 12, 768), (2, 4, 6))
    for _ in range(50):
        mutant = mutate_shaped(rng, genome, grid, 6, "increasing")
        assert mutant.shape == genome.shape and mutant.genes != genome.genes


def test_novel_offspring_avoids_known_genomes_and_says_when_it_cannot():
    rng = random.Random(2)
    grid = ShapeGrid(layers=(1, 2), hidden_sizes=(64,), heads=(1, 2), ffn_ratios=(2.0,))
    seen: set[str] = set()
    for _ in range(20):
        child, new = novel_offspring(lambda: random_shaped(rng, grid, 3, "free"), seen, tries=50)
        assert new and child.text not in seen
        seen.add(child.text)
    everything = {f"{s.text}:{g}" for s in grid.shapes() for g in
                  (["0", "1", "2", "3"] if s.layers == 1 else [f"{i}-{j}" for i in range(4) for j in range(4)])}
    child, new = novel_offspring(lambda: random_shaped(rng, grid, 3, "free"), everything, tries=5)
    assert not new and child.text in everything


def test_a_bad_grid_on_the_command_line_is_one_sentence_and_exit_2(capsys):
    from layermap.cli.main import main

    assert main(["validate", "--set", "shape.hidden_sizes=[100]", "--set", "shape.heads=[3]"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hidden size 100 is divisible by none of the head counts 3" in err
    assert main(["validate", "--set", "search.objectives=['fitness', 'energy']"]) == 2
    assert "unknown objective 'energy'" in capsys.readouterr().err


def test_the_first_population_holds_the_baselines_at_the_anchor_and_uniform_at_other_depths():
    from layermap.searching.shaped_operators import initial_shaped

    grid = ShapeGrid.resolve(**MINILM)
    anchor = StudentShape(3, 192, 12, 768)
    genomes = initial_shaped(random.Random(0), 20, grid, 6, "increasing", anchor=anchor)
    texts = [g.text for g in genomes]
    assert texts[:3] == ["L3-H192-A12-F768:2-4-6", "L3-H192-A12-F768:4-5-6", "L3-H192-A12-F768:1-2-3"]
    assert "L3-H192-A12-F768:0-0-6" in texts and "L6-H192-A12-F768:1-2-3-4-5-6" in texts
    assert len(set(texts)) == 20 and all(is_valid(g, grid, 6, "increasing") for g in genomes)
