"""The shipped settings presets (``smoke``, ``demo``, ``paper``, ``gpu``) as TOML package data; no code, imports nothing."""
