"""Bindings: ``self.env.BUCKET``, ``self.env.DB``, ``self.env.AI``, ``self.env.EMAIL``, workflows.

Configured in ``settings.WORKFLOWS["BINDINGS"]``: a name, a backend class and its options, so
a backend can be swapped without touching workflow code::

    WORKFLOWS = {"BINDINGS": {
        "BUCKET": {"BACKEND": "workflows.bindings.bucket.StorageBucket", "OPTIONS": {"location": "var/bucket"}},
        "DB": {"BACKEND": "workflows.bindings.sql.Database", "OPTIONS": {"alias": "default"}},
        "AI": {"BACKEND": "workflows.bindings.ai.OfflineAI"},
        "EMAIL": {"BACKEND": "workflows.bindings.email.DjangoEmail"},
        "CHILD_WORKFLOW": {"BACKEND": "workflows.bindings.workflow.WorkflowBinding", "OPTIONS": {"name": "child"}},
    }}

Each process builds a binding once, on first use.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from workflows import conf

_built: dict[str, object] = {}
_lock = threading.Lock()


class Env:
    """Attribute access to the configured bindings (what ``self.env`` is in a workflow)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return binding(name)

    def __dir__(self) -> list[str]:
        return sorted(conf.get("BINDINGS"))

    def __repr__(self) -> str:
        return f"<Env {', '.join(sorted(conf.get('BINDINGS'))) or '(no bindings)'}>"


def binding(name: str) -> Any:
    configured = conf.get("BINDINGS")
    if name not in configured:
        known = ", ".join(sorted(configured)) or "none"
        raise AttributeError(f"no binding named {name!r} in WORKFLOWS['BINDINGS'] (configured: {known})")
    with _lock:
        if name not in _built:
            spec = configured[name]
            try:
                backend = import_string(spec["BACKEND"])
            except (KeyError, ImportError) as exc:
                raise ImproperlyConfigured(f"binding {name!r}: cannot load BACKEND: {exc}") from exc
            _built[name] = backend(**spec.get("OPTIONS", {}))
        return _built[name]


def reset() -> None:
    """Forget built bindings (tests that change WORKFLOWS["BINDINGS"])."""
    with _lock:
        _built.clear()


env = Env()
