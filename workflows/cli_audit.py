"""``workflows audit``: export the audit log (JSON lines or CSV), every record matching the filters."""

from __future__ import annotations

import argparse
import csv
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandError, CommandParser

from workflows import audit_log, to_plain_json

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

PAGE = 1000
COLUMNS = ("id", "at", "actor", "channel", "action", "workflow", "instance_id", "details")


def add_arguments(sub: argparse._SubParsersAction[CommandParser]) -> None:
    p = sub.add_parser("audit", help="export the audit log: who changed what, through which channel")
    p.add_argument("--workflow")
    p.add_argument("--instance", help="an instance id (with --workflow)")
    p.add_argument("--actor", help="a username")
    p.add_argument("--since", help="ISO 8601 time (UTC unless it says otherwise)")
    p.add_argument("--until", help="ISO 8601 time, exclusive")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")


def run(options: dict[str, Any], out: SupportsWrite[str]) -> None:
    filters = {
        "workflow": options.get("workflow"), "instance_id": options.get("instance"), "actor": options.get("actor"),
        "since": _when(options.get("since"), "--since"), "until": _when(options.get("until"), "--until"),
    }  # fmt: skip
    writer = csv.writer(out) if options.get("format") == "csv" else None
    if writer:
        writer.writerow(COLUMNS)
    after = 0
    while True:
        page = audit_log(**filters, after_id=after, limit=PAGE)
        for record in page:
            plain = to_plain_json(record)
            if writer:
                writer.writerow([json.dumps(plain[c]) if c == "details" else plain[c] for c in COLUMNS])
            else:
                out.write(json.dumps(plain, ensure_ascii=False) + "\n")
        if len(page) < PAGE:
            return
        after = page[-1]["id"]


def _when(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"{flag} {text!r} is not an ISO 8601 time (e.g. 2026-12-01T09:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
