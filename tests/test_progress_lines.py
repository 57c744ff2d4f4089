"""A piped log is never silent until the first evaluation finishes: the driver says what it prepares (teacher,
tokenising, teacher cache) and how many genomes it evaluates on how many workers, at INFO on the "layermap" logger."""

from __future__ import annotations

import logging

import pytest

import layermap


@pytest.mark.slow
def test_a_tiny_search_logs_its_preparation_before_the_first_result(tiny_config_toml, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="layermap"):
        layermap.search(str(tiny_config_toml), tmp_path / "run", progress=True,
                        search={"population": 2, "generations": 1, "offspring": 1})
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("layermap")]
    first_result = next(i for i, line in enumerate(lines) if " eval 1/" in line)
    before = lines[:first_result]
    assert any(line.startswith("gen 0/1: evaluating 2 genome(s) on 1 local worker(s); preparing first") for line in before)
    for step in ("preparing: loading the teacher", "preparing: tokenising the corpus",
                 "preparing: caching the teacher's outputs on", "prepared in"):
        assert any(line.startswith(step) for line in before), (step, before)
    assert all(r.levelno == logging.INFO for r in caplog.records if "prepar" in r.getMessage())
