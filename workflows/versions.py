"""Which code an instance runs on: its workflow's version, and the deployment that last ran it.

``Workflow.version`` is whatever the author sets ("2026-12-a"); without it, a short hash of
the workflow class's source, so any edit to the class makes a new version. An instance
records the version it was created with; each claim records the deployment running it:
``WORKFLOWS["DEPLOYMENT"]``, else the checkout's git commit, else the package version. With
``WORKFLOWS["PIN_VERSIONS"]`` a worker advances only instances of the versions its own code
has (blue-green deploys: old workers drain old versions).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import subprocess
from pathlib import Path
from typing import Any

from workflows import conf

UNKNOWN = "unknown"


_VERSIONS: dict[type, str] = {}


def workflow_version(cls: type) -> str:
    """The version an instance of ``cls`` is created with (the author's, or a source hash)."""
    found = _VERSIONS.get(cls)
    if found is None:
        declared = cls.__dict__.get("version")
        if isinstance(declared, str) and declared:
            found = declared[:40]
        else:
            try:
                source = inspect.getsource(cls)
            except (OSError, TypeError):  # defined where there is no source file (a shell)
                source = f"{cls.__module__}.{cls.__qualname__}"
            found = "src-" + hashlib.sha1(source.encode()).hexdigest()[:10]
        _VERSIONS[cls] = found
    return found


def version_of(name: str) -> str:
    from workflows.definition import lookup

    cls = lookup(name)
    return workflow_version(cls) if cls is not None else UNKNOWN


def known_versions() -> dict[str, str]:
    """Each registered workflow's version in this process's code."""
    from workflows.definition import registered

    return {name: workflow_version(cls) for name, cls in registered().items()}


@functools.lru_cache(maxsize=1)
def _detected_deployment() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if commit.returncode == 0 and commit.stdout.strip():
            return "git-" + commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version

        return "pkg-" + version("django-durable-workflows")
    except Exception:  # noqa: BLE001 - no metadata in a bare checkout: say so
        return UNKNOWN


def deployment() -> str:
    """This process's deployment name (``WORKFLOWS["DEPLOYMENT"]`` or detected once)."""
    configured: Any = conf.get("DEPLOYMENT")
    return str(configured)[:60] if configured else _detected_deployment()
