import pytest

from layermap.config import ConfigError, dump_toml, load_config, parse_override, read_toml


@pytest.mark.parametrize("preset", ["smoke", "demo", "paper", "gpu"])
def test_presets_load_and_round_trip(preset, tmp_path):
    cfg = load_config(preset)
    path = tmp_path / "c.toml"
    path.write_text(dump_toml(cfg))
    assert load_config(str(path)) == cfg


def test_paper_preset_is_tinybert4_from_bert_base():
    cfg = load_config("paper")
    assert cfg.teacher.name == "bert-base-uncased"
    assert (cfg.student.layers, cfg.student.hidden_size, cfg.student.heads, cfg.student.ffn) == (4, 312, 12, 1200)


def test_overrides_and_flags_take_precedence():
    cfg = load_config("smoke", ["search.population=12", "proxy.tasks=['cola']", "distill.learning_rate=1e-4"],
                      teacher={"name": "x"})
    assert cfg.search.population == 12 and cfg.proxy.tasks == ("cola",) and cfg.teacher.name == "x"
    assert cfg.distill.learning_rate == 1e-4


@pytest.mark.parametrize("override,match", [
    ("search.populaton=3", "unknown setting search.populaton"),
    ("nosuch.key=1", "unknown config section"),
    ("search.population=many", "must be an integer"),
    ("search.population=1", "at least 2"),
    ("proxy.teacher_cache=1", "true or false"),
    ("populationonly", "malformed"),
    ("search.constraint='sorted'", "constraint must be one of"),
])
def test_bad_settings_are_one_clear_error(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config("smoke", [override])


def test_unknown_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="neither a preset"):
        read_toml(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[search\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_toml(str(bad))


def test_parse_override_reads_toml_values():
    assert parse_override("a.b=1.5") == ("a", "b", 1.5)
    assert parse_override("a.b=hello") == ("a", "b", "hello")
    assert parse_override("a.b=true") == ("a", "b", True)


def test_renamed_run_settings_keep_their_old_names_with_a_warning(tmp_path, caplog):
    import dataclasses
    import logging

    from layermap.config import RunSettings

    old = tmp_path / "old.toml"
    old.write_text('[run]\ncache_db = "shared.sqlite"\nshared_cache = false\n')
    with caplog.at_level(logging.WARNING, logger="layermap"):
        cfg = load_config(str(old))
    assert cfg.run.store_path == "shared.sqlite" and cfg.run.shared_fitness is False
    assert f"run.cache_db in {old} is the old name of run.store_path" in caplog.text
    assert "run.shared_cache" in caplog.text and len(caplog.records) == 2
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="layermap"):
        assert load_config(None, ["run.shared_cache=false"]).run.shared_fitness is False
        assert load_config(str(old), ["run.store_path='other.sqlite'"]).run.store_path == "other.sqlite"   # --set wins
    assert "run.shared_cache in --set is the old name of run.shared_fitness" in caplog.text
    assert "store_path = " in dump_toml(cfg) and "cache_db" not in dump_toml(cfg)        # files are written new
    both = tmp_path / "both.toml"
    both.write_text('[run]\ncache_db = "a"\nstore_path = "b"\n')
    with pytest.raises(ConfigError, match="keep only run.store_path"):
        load_config(str(both))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="layermap"):            # a run's stored settings: silently
        assert load_config({"run": {"shared_cache": False}}).run.shared_fitness is False
    assert not caplog.records
    with pytest.warns(DeprecationWarning, match="shared_fitness"):        # the Python names too
        run = RunSettings(shared_cache=False)
    with pytest.warns(DeprecationWarning):
        assert dataclasses.replace(run, cache_db="x").store_path == "x" and run.shared_cache is False
