"""A cursor for the engine's hot statements: on PostgreSQL, prepared once per connection.

Django's PostgreSQL backend binds parameters on the client and turns prepared statements
off, so the server parses and plans every statement again. For the statements the engine
runs on every step, claim and event (a step's start with the previous step's result, an
instance's completion, the claim, ``send_event``'s write), that planning took about as
long as running them: 0.15 ms of the 0.3 ms a step's statement costs the server, and
building the literal query text cost the worker CPU besides. ``cursor()`` gives those
statements a server-side binding cursor that prepares each on first use; the connection
keeps the prepared plans (psycopg's cache, per connection, up to ``prepared_max``).

The cursor is still Django's wrapper: database errors become Django's, and
``connection.execute_wrapper`` and ``connection.queries`` see these statements like any
other. Everything else (the ORM, the dashboard, the user's code) keeps Django's settings.

A transaction-mode connection pooler before PgBouncer 1.21 cannot carry prepared
statements across server connections: set ``WORKFLOWS["PREPARED_STATEMENTS"] = False``
behind one. SQLite caches prepared statements by itself.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import DateTimeField

from workflows import conf


@contextmanager
def cursor() -> Iterator[Any]:
    """A cursor on the default connection whose statements are prepared (PostgreSQL)."""
    if connection.vendor != "postgresql" or not conf.get("PREPARED_STATEMENTS"):
        with connection.cursor() as plain:
            yield plain
        return
    connection.ensure_connection()
    if connection.connection.prepare_threshold is None:
        # Django's default, which turns preparing off even for a statement that asks for it.
        # Counting up to this never prepares anything else: only our cursor asks.
        connection.connection.prepare_threshold = _ONLY_WHEN_ASKED
    raw = _prepared_cursor_class()(connection.connection)
    wrapped = connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)
    with wrapped:
        yield wrapped


def datetime_from(value: Any) -> datetime:
    """A datetime column read by raw SQL: aware on PostgreSQL, UTC text on SQLite."""
    if isinstance(value, str):
        value = DateTimeField().to_python(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


_ONLY_WHEN_ASKED = 2**62


@functools.cache
def _prepared_cursor_class() -> type:
    """psycopg's server-side binding cursor, told to prepare every statement it runs
    (defined on first use: a SQLite process never imports psycopg)."""
    import psycopg

    class PreparedCursor(psycopg.Cursor):
        def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, **kwargs: Any) -> Any:
            return super().execute(query, params, prepare=True if prepare is None else prepare, **kwargs)

    return PreparedCursor
