"""Structured logs: engine lines carry ``workflow``, ``instance`` and ``step`` as fields.

Every engine log call passes them in ``extra``; ``JsonFormatter`` (LOG_FORMAT=json) writes
one JSON object a line for log collectors, the plain format keeps them in the message.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

FIELDS = ("workflow", "instance", "step", "attempt")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        from workflows.tracing import log_ids

        entry.update(log_ids())  # with tracing on, a log line opens its trace
        return json.dumps(entry, ensure_ascii=False, default=str)


def fields(workflow: str, instance: str, step: str | None = None, attempt: int | None = None) -> dict:
    return {"extra": {"workflow": workflow, "instance": instance, "step": step, "attempt": attempt}}
