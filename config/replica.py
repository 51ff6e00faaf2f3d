"""Read traffic on a replica: the dashboard's and API's GET requests read ``DATABASE_REPLICA_URL``.

Only requests opt in (``ReplicaReads`` middleware); everything else, the workers' engine
above all, reads the primary, because the engine's guarantees rest on reading what was just
committed. Reads that must see a write go to the primary:

- within a request, once anything was written (a write to workflow data; a token's
  "last used" stamp or a session save does not count), every later read is the primary's;
- for a browser that changed something (any POST, PATCH, PUT or DELETE), its requests in the
  next ``READ_REPLICA_PIN_SECONDS`` read the primary (a cookie says so), so a decision or a
  retry is visible on the page the browser goes to next, whatever the replica's lag;
- ``select_for_update`` and every query inside ``transaction.atomic`` on the primary that
  wrote go to the primary (Django routes them as writes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

_reads_from_replica: ContextVar[bool] = ContextVar("reads_from_replica", default=False)

PIN_COOKIE = "wf_primary_until"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Bookkeeping writes that a request's later reads do not depend on.
NOT_STICKY = {"sessions", "axes", "api.apitoken"}


def replica_alias() -> str | None:
    """The replica's database alias when one is configured (``READ_REPLICA``), else None."""
    alias = getattr(settings, "READ_REPLICA", None)
    return alias if alias and alias in settings.DATABASES else None


class ReplicaRouter:
    """Route a request's reads to the replica while it may; every write to the primary."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return replica_alias() if _reads_from_replica.get() else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        meta = model._meta
        if meta.app_label not in NOT_STICKY and meta.label_lower not in NOT_STICKY:
            _reads_from_replica.set(False)  # what this request reads next must see this write
        return None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # the replica holds the same rows as the primary

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == "default"


class ReplicaReads:
    """Let safe requests read the replica, unless this browser changed something moments ago."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if replica_alias() is None:
            return self.get_response(request)
        token = _reads_from_replica.set(request.method in SAFE_METHODS and not _pinned(request))
        try:
            response = self.get_response(request)
        finally:
            _reads_from_replica.reset(token)
        if request.method not in SAFE_METHODS:
            seconds = int(getattr(settings, "READ_REPLICA_PIN_SECONDS", 10))
            response.set_cookie(
                PIN_COOKIE,
                str(int(time.time()) + seconds),
                max_age=seconds,
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
        return response


def _pinned(request: HttpRequest) -> bool:
    try:
        return int(request.COOKIES.get(PIN_COOKIE, "0")) > time.time()
    except ValueError:
        return False
