"""The documentation stays navigable and in step with the code.

- Every relative link of README.md, docs/*.md and the results READMEs resolves: the file exists and a ``#anchor``
  names a heading of the target (as GitHub makes anchors from headings).
- The docs pages name no module path inside the package (``layermap/evolution/...py``): modules move, so a page that
  must say where something lives links docs/architecture.md, which alone maps the package.
- The README stays a ten-minute read (at most 300 lines), CI's ``.ci/run`` runs exactly the README's install
  steps and test command, and the README's citation names the package's version.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINKED = [ROOT / "README.md", *DOCS, ROOT / "results" / "README.md", ROOT / "results" / "benchmarks" / "README.md"]
# Pages a branch not yet merged writes: a link to one may point at nothing until it lands (none now).
PENDING: set[str] = set()
README_MAX_LINES = 300


def _without_code(text: str) -> str:
    text = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`]+`", "", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[|\]\([^)]*\)", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        slug, n = _slug(heading), 1
        while slug in anchors:                  # GitHub numbers repeated headings: name, name-1, ...
            slug, n = f"{_slug(heading)}-{n}", n + 1
        anchors.add(slug)
    return anchors


def _links(path: Path) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", _without_code(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", LINKED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path):
    broken = []
    for link in _links(path):
        if re.match(r"[a-z]+:", link):
            continue                                             # https:, mailto:
        target, _, anchor = link.partition("#")
        resolved = (path.parent / target).resolve() if target else path
        name = resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(resolved)
        if not resolved.exists():
            if name not in PENDING:
                broken.append(f"{link} (no file {name})")
            continue
        if anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{link} (no heading #{anchor} in {name})")
    assert not broken, f"{path.relative_to(ROOT)}: broken links: {broken}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / link.partition("#")[0]).resolve() for link in _links(ROOT / "README.md")}
    orphans = [p.name for p in DOCS if p.resolve() not in linked]
    assert not orphans, f"docs pages missing from the README's index: {orphans}"


@pytest.mark.parametrize("path", [ROOT / "README.md", *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_pages_name_no_module_path_inside_the_package(path):
    if path.name == "architecture.md":
        pytest.skip("the architecture page is the map of the package's modules")
    text = path.read_text(encoding="utf-8")
    found = sorted(set(re.findall(r"(?<![\w.~/])layermap/[\w/]+(?:\.py|/)", text)))
    assert not found, (f"{path.relative_to(ROOT)} names module paths {found}: say what the part does, and link "
                       "docs/architecture.md for where it lives")


def test_the_readme_is_a_ten_minute_read():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/ (at most {README_MAX_LINES})"


def test_ci_runs_the_readme_install_steps_and_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b.strip() for b in re.findall(r"^```bash\n(.*?)^```", readme, re.S | re.M)]
    tests = [b for b in blocks if b.endswith("python -m pytest -q")]
    assert len(tests) == 1, "the README has one test command block, ending in 'python -m pytest -q'"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    steps = [line for line in ci if line and not line.startswith(("#", "set ", "cd "))]
    assert " && ".join(steps) == tests[0], ".ci/run and the README's test block differ: keep them in step"


def test_the_citation_names_the_package_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    cited = re.findall(r"^\s*version\s*=\s*\{([^}]*)\}", readme, re.M)
    assert cited == [version], f"the README's BibTeX cites version {cited}, pyproject.toml says {version}"
