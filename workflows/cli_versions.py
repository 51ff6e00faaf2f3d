"""``workflows versions`` and ``workflows check-replay``: what code parked instances run on, and
whether the code on disk still replays their histories (exit 1 when any diverges)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandError, CommandParser

from workflows import list_versions, to_plain_json
from workflows.states import Status

if TYPE_CHECKING:
    from _typeshed import SupportsWrite


def add_arguments(sub: argparse._SubParsersAction[CommandParser]) -> None:
    p = sub.add_parser("versions", help="per workflow: its versions with unfinished instances (draining, drained)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser(
        "check-replay", help="replay unfinished instances against the code on disk; exit 1 if any diverge"
    )
    p.add_argument("workflows", nargs="*", help="workflow names (default: all)")
    p.add_argument("--status", default="waiting,paused,errored,queued", help="comma-separated statuses")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--json", action="store_true")


def run_versions(options: dict[str, Any], out: SupportsWrite[str]) -> None:
    found = list_versions()
    if options.get("json"):
        out.write(json.dumps(to_plain_json(found), indent=2))
        return
    for row in found:
        out.write(f"{row['workflow']:<20} {row['version']:<24} {row['unfinished']:>7} unfinished  {row['state']}\n")


def run_check(options: dict[str, Any], out: SupportsWrite[str]) -> None:
    from workflows.replay_check import check_all

    statuses = tuple(s.strip() for s in options["status"].split(",") if s.strip())
    unknown = [s for s in statuses if s not in Status.values]
    if unknown:
        raise CommandError(f"unknown status {unknown[0]!r}; use {', '.join(Status.values)}")
    if not 1 <= options["limit"] <= 100_000:
        raise CommandError("--limit must be 1 to 100000")
    reports = check_all(options["workflows"] or None, statuses, options["limit"])
    if options.get("json"):
        out.write(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        for r in reports:
            out.write(
                f"{r.result:<9} {r.workflow}/{r.instance_id} ({r.status}, version {r.version or '?'}): {r.detail}\n"
            )
        diverging = sum(r.result != "clean" for r in reports)
        out.write(f"{len(reports)} instance(s) replayed: {len(reports) - diverging} clean, {diverging} not.\n")
    if any(r.result != "clean" for r in reports):
        raise SystemExit(1)
