import json

import pytest

from layermap.mapping import (LayerMapping, MappingError, baseline, baselines, enumerate_space, parse_genes, repair,
                              satisfies, space_size)


def test_baselines_bert_base_to_four_layers():
    assert baselines(4, 12) == {"uniform": (3, 6, 9, 12), "top": (9, 10, 11, 12),
                                "bottom": (1, 2, 3, 4), "last": (0, 0, 0, 12)}


def test_baselines_minilm_to_three_layers():
    assert baseline("uniform", 3, 6) == (2, 4, 6)
    assert baseline("top", 3, 6) == (4, 5, 6)
    assert baseline("last", 3, 6) == (0, 0, 6)


@pytest.mark.parametrize("m,n,expected", [
    (5, 12, (2, 5, 7, 10, 12)),   # 2.4 4.8 7.2 9.6 12 -> nearest
    (4, 6, (2, 3, 5, 6)),         # 1.5 3 4.5 6 -> halves round up
    (3, 4, (1, 3, 4)),            # 1.33 2.67 4
    (1, 12, (12,)),
    (6, 6, (1, 2, 3, 4, 5, 6)),
])
def test_uniform_rounding_when_m_does_not_divide_n(m, n, expected):
    genes = baseline("uniform", m, n)
    assert genes == expected
    assert genes[-1] == n and all(a < b for a, b in zip(genes, genes[1:]))


def test_baseline_rejects_deeper_student():
    with pytest.raises(MappingError, match="no deeper than the teacher"):
        baseline("uniform", 7, 6)


def test_text_round_trip_and_pairs():
    m = LayerMapping.parse("0-6-0-12", 12)
    assert m.text == "0-6-0-12" and str(m) == "0-6-0-12"
    assert m.pairs() == [(0, 0), (2, 6), (4, 12)]
    assert m.teacher_layers_used() == (6, 12)
    assert LayerMapping.parse("uniform", 12, student_layers=4).genes == (3, 6, 9, 12)


@pytest.mark.parametrize("text,match", [
    ("3-x-9", "malformed"),
    ("", "empty"),
    ("3-6-13", "teacher has layers 1..12"),
    ("-1-3", "malformed|teacher has layers"),
])
def test_malformed_and_out_of_range(text, match):
    with pytest.raises(MappingError, match=match):
        LayerMapping.parse(text, 12)


def test_wrong_gene_count():
    with pytest.raises(MappingError, match="has 3 genes but the student has 4 layers"):
        LayerMapping.parse("1-2-3", 12, student_layers=4)


def test_constraints():
    assert satisfies((3, 3, 5), "non-decreasing") and not satisfies((3, 3, 5), "increasing")
    assert satisfies((0, 3, 0, 12), "increasing")
    assert not satisfies((5, 3), "non-decreasing")
    with pytest.raises(MappingError, match="order constraint"):
        LayerMapping((5, 3), 6, constraint="increasing")
    with pytest.raises(MappingError, match="unknown order constraint"):
        LayerMapping((1, 2), 6, constraint="sorted")


def test_json_round_trip_with_metadata(tmp_path):
    m = LayerMapping((2, 0, 6), 6, constraint="increasing")
    path = tmp_path / "m.json"
    m.to_json(path, teacher="minilm", fitness=71.5)
    d = json.loads(path.read_text())
    assert d["mapping"] == "2-0-6" and d["metadata"]["teacher"] == "minilm" and d["student_layers"] == 3
    assert LayerMapping.from_json(path) == m


def test_json_errors(tmp_path):
    with pytest.raises(MappingError, match="does not exist"):
        LayerMapping.from_json(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(MappingError, match="not valid JSON"):
        LayerMapping.from_json(bad)
    (tmp_path / "k.json").write_text('{"genes": [1, 2]}')
    with pytest.raises(MappingError, match="teacher_layers"):
        LayerMapping.from_json(tmp_path / "k.json")


@pytest.mark.parametrize("constraint", ["free", "non-decreasing", "increasing"])
@pytest.mark.parametrize("m,n", [(2, 3), (3, 6), (4, 5)])
def test_space_size_matches_enumeration(constraint, m, n):
    genomes = list(enumerate_space(m, n, constraint))
    assert len(genomes) == space_size(m, n, constraint) == len(set(genomes))
    assert all(satisfies(g, constraint) for g in genomes)


def test_space_sizes_known_values():
    assert space_size(4, 12, "free") == 13 ** 4
    assert space_size(1, 6, "increasing") == 7


def test_repair():
    assert repair((5, 3, 0, 3), 6, "non-decreasing") == (3, 3, 0, 3)
    assert repair((5, 3, 0, 3), 6, "increasing") == (5, 6, 0, 0)
    assert repair((12, 1, 2, 3), 12, "non-decreasing") == (1, 1, 2, 3)        # one gene, not four (issue 9.9)
    assert repair((12, 1, 2, 3), 12, "increasing") == (0, 1, 2, 3)
    assert repair((9, -1), 6, "free") == (6, 0)
    for genes in [(6, 5, 4, 3), (2, 2, 2, 2), (0, 0, 1, 0)]:
        assert satisfies(repair(genes, 6, "increasing"), "increasing")


def test_parse_genes_separators():
    assert parse_genes("3, 6, 9") == (3, 6, 9)


@pytest.mark.parametrize("constraint", ["non-decreasing", "increasing"])
def test_repair_changes_the_fewest_genes(constraint):
    """Against brute force: the repaired genome is valid and as close (in changed genes) as any valid genome."""
    import itertools

    n, m = 4, 4
    valid = [g for g in itertools.product(range(n + 1), repeat=m) if satisfies(g, constraint)]
    for genes in itertools.product(range(n + 1), repeat=m):
        fixed = repair(genes, n, constraint)
        assert satisfies(fixed, constraint)
        changed = sum(a != b for a, b in zip(genes, fixed))
        assert changed == min(sum(a != b for a, b in zip(genes, v)) for v in valid)
        if satisfies(genes, constraint):
            assert fixed == genes
