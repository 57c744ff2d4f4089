"""Settings: frozen dataclasses, TOML presets and files, ``--set`` overrides, the fingerprint.

A config has sections; each is a frozen dataclass that checks its own values (``sections``).  Unknown keys and wrong
types are a :class:`ConfigError` with one sentence naming the key.  Presets ship in ``layermap/presets/*.toml``; a
user file or a preset is merged over the defaults, then ``--set section.key=value`` overrides are applied
(``files``).  ``layermap.config`` re-exports both modules' public names, as the single module it was did.

May import ``mapping``, ``shape``, ``logs`` and ``errors``; nothing above (docs/architecture.md).
"""

from .sections import (DISTILL_PRECISIONS, LATENCY_DEVICES, OBJECTIVES, PROXY_HEADS, RENAMED_SETTINGS,
                       SEARCH_STRATEGIES, CompareSettings, Config, ConfigError, CorpusSettings, DistillSettings,
                       LatencySettings, ProxySettings, RunSettings, SearchSettings, ShapeSettings, StudentSettings,
                       TeacherSettings, pipeline_check_line)
from .files import (PRESETS, SECTIONS, config_from_dict, digest, dump_toml, file_digest, format_override,
                    load_config, parse_override, read_toml)

__all__ = ["CompareSettings", "Config", "ConfigError", "CorpusSettings", "DISTILL_PRECISIONS", "DistillSettings",
           "LATENCY_DEVICES", "LatencySettings", "OBJECTIVES", "PRESETS", "PROXY_HEADS", "ProxySettings",
           "RENAMED_SETTINGS", "RunSettings", "SEARCH_STRATEGIES", "SECTIONS", "SearchSettings", "ShapeSettings",
           "StudentSettings", "TeacherSettings", "config_from_dict", "digest", "dump_toml", "file_digest",
           "format_override", "load_config", "parse_override", "pipeline_check_line", "read_toml"]
