import pytest

from layermap.config import ConfigError, dump_toml, load_config, parse_override, read_toml


@pytest.mark.parametrize("preset", ["smoke", "demo", "paper"])
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
