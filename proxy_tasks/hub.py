"""What a Hugging Face Hub repository is at a revision: the commit the revision points to (a fingerprint's part).

:func:`hub_identity` names a repository at a revision by its commit: ``org/name@<40-hex sha>``.  The commit comes
from the Hub (``HfApi().model_info`` / ``dataset_info``, skipped when ``HF_HUB_OFFLINE`` is set), else from the local
caches an offline load would read (the hub cache's ``<type>s--org--name/refs/<revision>``; for a dataset also the
``datasets`` cache folder ``org___name/<config>/<version>/<sha>``, the newest one).  When neither gives one, the
identity is ``org/name@<revision>`` and one warning line says that the fingerprint holds the name only (a change on
the Hub would not be noticed).  Each answer is kept for the process, so a run sees one identity throughout and warns
once.  Here, below ``layermap``, because the GLUE loaders need it as much as the teacher and corpus do
(:mod:`layermap.distill.identity` re-exports it); imports nothing of ``layermap``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

_log = logging.getLogger("layermap.proxy_tasks.hub")      # under the "layermap" logger, as every message of layermap

_SHA = re.compile(r"[0-9a-f]{40}")
_REVISIONS: dict[tuple, str | None] = {}


def hub_identity(repo_id: str, revision: str = "main", repo_type: str = "model", *, config: str | None = None,
                 what: str = "") -> str:
    """``repo_id@<commit>`` where the commit can be found, else ``repo_id@revision`` with one warning line.

    ``config`` (datasets) narrows the search of the ``datasets`` cache; ``what`` names the input in the
    warning (``teacher``, ``corpus``, ``GLUE task sst2``)."""
    revision = revision or "main"
    key = (repo_type, repo_id, revision, config, _hub_cache_dir(), _datasets_cache_dir())
    if key not in _REVISIONS:
        _REVISIONS[key] = resolve_revision(repo_id, revision, repo_type, config=config)
        if _REVISIONS[key] is None:
            subject = f"{what} ({repo_id}@{revision})" if what else f"{repo_type} {repo_id}@{revision}"
            _log.warning(f"the {subject} could not be resolved to a commit "
                         "(the Hub is unreachable and no cached copy names one), so its fingerprint is by name only: a "
                         "change on the Hub would not be noticed")
    return f"{repo_id}@{_REVISIONS[key] or revision}"


def resolve_revision(repo_id: str, revision: str = "main", repo_type: str = "model", *,
                     config: str | None = None) -> str | None:
    """The commit hash ``revision`` of the hub repository points to, or ``None`` (see the module docstring)."""
    if _SHA.fullmatch(revision):
        return revision
    return (_resolve_online(repo_id, revision, repo_type) or _resolve_from_hub_cache(repo_id, revision, repo_type)
            or (_resolve_from_datasets_cache(repo_id, config) if repo_type == "dataset" and revision == "main" else None))


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"))


def _resolve_online(repo_id: str, revision: str, repo_type: str) -> str | None:
    if _offline():
        return None
    try:
        from huggingface_hub import HfApi

        api = HfApi()
        info = (api.dataset_info if repo_type == "dataset" else api.model_info)(repo_id, revision=revision, timeout=10)
    except Exception:  # noqa: BLE001 - no network, no such repo, auth: fall back to the caches
        return None
    sha = getattr(info, "sha", None)
    return sha if isinstance(sha, str) and _SHA.fullmatch(sha) else None


def _hub_cache_dir() -> Path:
    """The hub cache as huggingface_hub finds it (read from the environment at each call)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    return _hf_home() / "hub"


def _datasets_cache_dir() -> Path:
    if os.environ.get("HF_DATASETS_CACHE"):
        return Path(os.environ["HF_DATASETS_CACHE"]).expanduser()
    return _hf_home() / "datasets"


def _hf_home() -> Path:
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "huggingface"


def _resolve_from_hub_cache(repo_id: str, revision: str, repo_type: str) -> str | None:
    """``<hub cache>/<type>s--org--name/refs/<revision>`` holds the commit; a revision that is the name of a
    snapshot folder (a commit given in short) is that commit."""
    repo = _hub_cache_dir() / f"{repo_type}s--{repo_id.replace('/', '--')}"
    try:
        sha = (repo / "refs" / revision).read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError, ValueError):
        sha = ""
    if _SHA.fullmatch(sha):
        return sha
    try:
        matches = [p.name for p in (repo / "snapshots").iterdir() if _SHA.fullmatch(p.name) and p.name.startswith(revision)]
    except OSError:
        return None
    return matches[0] if len(matches) == 1 and len(revision) >= 7 else None


def _resolve_from_datasets_cache(repo_id: str, config: str | None) -> str | None:
    """The newest ``<datasets cache>/<org>___<name>/<config>/<version>/<sha>`` folder (what ``load_dataset``
    falls back to offline)."""
    org, _, name = repo_id.rpartition("/")
    root = _datasets_cache_dir() / (f"{org}___{name}" if org else name)
    found = [p for p in root.glob(f"{config or '*'}/*/*") if p.is_dir() and _SHA.fullmatch(p.name)]
    if not found:
        return None
    return max(found, key=lambda p: p.stat().st_mtime).name
