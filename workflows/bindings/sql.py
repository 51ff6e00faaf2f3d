"""``DB``: the seed's D1-style SQL on a Django database alias.

    user = self.env.DB.prepare("SELECT subscription_status FROM users WHERE id = ?").bind(user_id).first()
    self.env.DB.batch([DB.prepare("INSERT INTO records VALUES (?, ?)").bind(1, "a"), ...])

Parameters are always bound by the database driver, never put into the SQL text: ``?``
placeholders are translated to the driver's style outside string literals, on SQLite and
PostgreSQL alike. ``batch`` runs its statements in one transaction.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, transaction
from django.db.backends.utils import CursorWrapper


def _placeholders(sql: str) -> tuple[str, int]:
    """Translate ``?`` to ``%s`` outside quotes (and double literal ``%``); count them."""
    out, count, quote = [], 0, None
    for char in sql:
        if quote:
            out.append("%%" if char == "%" else char)
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
            count += 1
        else:
            out.append("%%" if char == "%" else char)
    return "".join(out), count


class Statement:
    def __init__(self, db: Database, sql: str, params: tuple[Any, ...] = ()) -> None:
        if not isinstance(sql, str) or not sql.strip():
            raise ValueError("prepare() needs a SQL string")
        self.db = db
        self.sql = sql
        self._translated, self._expected = _placeholders(sql)
        self.params = params

    def bind(self, *params: Any) -> Statement:
        if len(params) != self._expected:
            raise ValueError(
                f"the statement has {self._expected} '?' placeholder(s) but bind() got {len(params)} value(s): "
                f"{self.sql}"
            )
        return Statement(self.db, self.sql, params)

    def _execute(self) -> CursorWrapper:
        if len(self.params) != self._expected:
            raise ValueError(
                f"the statement has {self._expected} '?' placeholder(s); call bind() with that many values: {self.sql}"
            )
        cursor = connections[self.db.alias].cursor()
        cursor.execute(self._translated, list(self.params))
        return cursor

    def all(self) -> dict:
        with self._execute() as cursor:
            rows = _rows(cursor)
            return {
                "results": rows,
                "success": True,
                "meta": {"rows_read": len(rows), "changes": max(cursor.rowcount, 0) if not rows else 0},
            }

    def first(self, column: str | None = None) -> Any:
        with self._execute() as cursor:
            rows = _rows(cursor, limit=1)
        if not rows:
            return None
        return rows[0] if column is None else rows[0][column]

    def run(self) -> dict:
        with self._execute() as cursor:
            # SQLite reports the last row id; psycopg has no such attribute (use RETURNING there).
            return {
                "success": True,
                "meta": {"changes": max(cursor.rowcount, 0), "last_row_id": getattr(cursor, "lastrowid", None)},
            }

    def raw(self) -> list[list[Any]]:
        with self._execute() as cursor:
            return [list(row) for row in cursor.fetchall()] if cursor.description else []


def _rows(cursor: CursorWrapper, limit: int | None = None) -> list[dict[str, Any]]:
    if not cursor.description:
        return []
    names = [c[0] for c in cursor.description]
    fetched = cursor.fetchmany(limit) if limit else cursor.fetchall()
    return [dict(zip(names, row, strict=True)) for row in fetched]


class Database:
    """Options: ``alias`` (a key of settings.DATABASES; default "default")."""

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias

    def prepare(self, sql: str) -> Statement:
        return Statement(self, sql)

    def exec(self, sql: str) -> dict:
        return Statement(self, sql).run()

    def batch(self, statements: list[Statement]) -> list[dict]:
        """Run the statements in one transaction; all or nothing."""
        with transaction.atomic(using=self.alias):
            return [s.all() if _is_query(s.sql) else s.run() for s in statements]


def _is_query(sql: str) -> bool:
    return sql.lstrip().split(None, 1)[0].upper() in ("SELECT", "WITH", "PRAGMA", "VALUES")
