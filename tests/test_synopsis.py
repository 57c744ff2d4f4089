"""The command synopsis cannot drift from the argument parser.

The synopsis blocks of README.md and docs/commands.md (each the fenced block after a ``<!-- synopsis: ... -->`` line)
are parsed and checked against ``layermap <command> --help``: every command they write exists, every flag they write
for a command is one of its flags, and every flag of every command appears in them (an option with two spellings,
``-o``/``--output``, counts once). The commands written elsewhere in the documentation (fenced shell blocks and
inline code in README.md, docs/ and results/README.md) may use only flags their command has.

The parser is reached through the ``layermap`` console script named in pyproject.toml, so moving the command-line
module moves the test with it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import os
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SYNOPSIS_FILES = ("README.md", "docs/commands.md")
MARKER = "<!-- synopsis:"
FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
HELP_FLAGS = {"-h", "--help"}

Command = tuple[str, ...]


def _entry_point():
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["layermap"]
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


@functools.lru_cache(maxsize=None)
def _help(command: Command) -> str:
    """``layermap <command> --help``, one option per line (a wide terminal keeps argparse from wrapping)."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "1000"
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
            _entry_point()([*command, "--help"])
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    assert done.value.code == 0, f"layermap {' '.join(command)} --help exited with {done.value.code}"
    return out.getvalue()


def _subcommands(command: Command) -> list[str]:
    match = re.search(r"^  \{([\w,-]+)\}$", _help(command), re.M)
    return match.group(1).split(",") if match else []


def _options(command: Command) -> list[frozenset[str]]:
    """Each option of the command as the set of its spellings, from the help's option lines."""
    options = []
    for line in _help(command).splitlines():
        if re.match(r"^  -", line):
            head = re.split(r"\s{2,}", line.strip())[0]
            options.append(frozenset(part.split()[0] for part in head.split(", ")))
    return options


@functools.lru_cache(maxsize=None)
def _commands() -> dict[Command, list[frozenset[str]]]:
    """Every command of the parser, the top level () included, with its options."""
    found: dict[Command, list[frozenset[str]]] = {}
    todo: list[Command] = [()]
    while todo:
        command = todo.pop()
        found[command] = _options(command)
        todo.extend(command + (sub,) for sub in _subcommands(command))
    return found


def _leaves() -> set[Command]:
    return {c for c in _commands() if not _subcommands(c)}


def _flags(command: Command) -> set[str]:
    return {spelling for option in _commands()[command] for spelling in option}


def _split_command(words: list[str]) -> tuple[Command, list[str], str | None]:
    """(the command named by the words after ``layermap``, the remaining words, a problem or None)."""
    command: Command = ()
    rest = list(words)
    while rest and command + (rest[0],) in _commands():
        command += (rest.pop(0),)
    if rest and re.fullmatch(r"[a-z][a-z-]*", rest[0]) and _subcommands(command):
        return command, rest, f"no command 'layermap {' '.join(command + (rest[0],))}'"
    if _subcommands(command) and command != ():
        return command, rest, f"'layermap {' '.join(command)}' needs one of {_subcommands(command)}"
    return command, rest, None


def _synopsis(path: Path) -> list[tuple[Command, str]]:
    """The (command, text) entries of the file's synopsis block: a line starting with ``layermap`` and its
    indented continuation lines."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(MARKER))
    assert lines[start + 1].startswith("```"), f"{path.name}: the synopsis marker must precede a fenced block"
    block = []
    for line in lines[start + 2:]:
        if line.startswith("```"):
            break
        block.append(line)
    entries: list[list[str]] = []
    for line in block:
        if line.startswith("layermap"):
            entries.append([line])
        else:
            assert line.startswith(" ") and entries, f"{path.name}: synopsis line outside an entry: {line!r}"
            entries[-1].append(line)
    parsed = []
    for entry in entries:
        words = entry[0].split()[1:]
        command, rest, problem = _split_command(words)
        assert problem is None, f"{path.name}: {problem}: {entry[0]!r}"
        assert command != () or not rest or rest[0].startswith("-"), f"{path.name}: unknown command in {entry[0]!r}"
        parsed.append((command, " ".join([" ".join(rest)] + [line.strip() for line in entry[1:]])))
    return parsed


@pytest.mark.parametrize("name", SYNOPSIS_FILES)
def test_every_command_and_flag_of_the_synopsis_exists(name):
    wrong = []
    for command, text in _synopsis(ROOT / name):
        for flag in FLAG.findall(text):
            if flag not in _flags(command):
                wrong.append(f"layermap {' '.join(command)} {flag}")
    assert not wrong, f"{name}: the synopsis writes flags the parser does not have: {wrong}"


@pytest.mark.parametrize("name", SYNOPSIS_FILES)
def test_every_command_and_flag_of_the_parser_is_in_the_synopsis(name):
    written: dict[Command, set[str]] = {}
    for command, text in _synopsis(ROOT / name):
        written.setdefault(command, set()).update(FLAG.findall(text))
    missing_commands = sorted(" ".join(c) for c in _leaves() - {()} if c not in written)
    assert not missing_commands, f"{name}: the synopsis lacks the commands {missing_commands}"
    missing = [f"layermap {' '.join(command)} {'/'.join(sorted(option))}"
               for command in sorted(_leaves() | {()})
               for option in _commands()[command]
               if not option & HELP_FLAGS and not option & written.get(command, set())]
    assert not missing, f"{name}: the synopsis lacks these flags of the parser: {missing}"


def test_the_parser_reading_sees_the_known_commands_and_flags():
    """A guard on the help parsing itself: if it read nothing, the two tests above would pass vacuously."""
    assert {("evolve",), ("compare",), ("bench", "fidelity"), ("quantize",)} <= _leaves()
    assert {"--retry-failed", "--synthetic", "--store"} <= _flags(("evolve",))
    assert {"-o", "--output", "--proxy"} <= _flags(("bench", "fidelity"))
    assert "--version" in _flags(())


def _documented_commands() -> list[tuple[str, str]]:
    """(file, command text) for every ``layermap <command> ...`` in the docs' shell blocks and inline code."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "results" / "README.md"]
    found = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        pieces = []
        for lang, body in re.findall(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", text, re.S | re.M):
            if lang in ("", "bash", "sh", "console", "text"):
                body = re.sub(r"\\\n\s*", " ", body)
                pieces += [re.sub(r"\s#\s.*$", "", line) for line in body.splitlines()]
        text = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", text, flags=re.S | re.M)
        pieces += [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", text)]
        for piece in pieces:
            for segment in re.split(r"&&|\|\||[|;]|\$\(", piece):
                match = re.search(r"(?<![\w./-])layermap (.*)", segment)
                if match:
                    found.append((path.relative_to(ROOT).as_posix(), match.group(1)))
    return found


def test_commands_written_in_the_docs_use_flags_their_command_has():
    documented = _documented_commands()
    assert len(documented) > 50, "the documentation's commands were not found"
    wrong = []
    for name, text in documented:
        command, rest, problem = _split_command(text.split())
        if problem is not None:
            wrong.append(f"{name}: {problem} in 'layermap {text}'")
            continue
        if command == () and rest and re.fullmatch(r"[a-z][a-z-]*", rest[0]):
            wrong.append(f"{name}: no command 'layermap {rest[0]}'")
            continue
        for flag in FLAG.findall(" ".join(rest)):
            if flag not in _flags(command):
                wrong.append(f"{name}: 'layermap {' '.join(command)}' has no {flag} (in 'layermap {text}')")
    assert not wrong, "\n".join(wrong)
