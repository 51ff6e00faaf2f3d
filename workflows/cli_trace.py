"""``workflows trace <workflow> <id>``: an instance's whole trace as a tree, from the local span file.

For a laptop without a collector: run with ``WORKFLOWS_TRACING=file:var/traces.jsonl`` and
this prints every span of the instance's trace (creation, each run segment, each step
attempt, the time it slept or waited and who decided), indented by parent, with durations.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandError, CommandParser

from workflows import conf

if TYPE_CHECKING:
    from _typeshed import SupportsWrite


def add_arguments(sub: argparse._SubParsersAction[CommandParser]) -> None:
    p = sub.add_parser("trace", help="an instance's trace as a tree (from WORKFLOWS_TRACING=file:<path>)")
    p.add_argument("workflow")
    p.add_argument("id")
    p.add_argument("--file", default=None, help="the span file (default: the one WORKFLOWS_TRACING names)")


def spans_of(path: Path, workflow: str, instance_id: str) -> list[dict[str, Any]]:
    """Every span of the traces the instance's spans belong to, oldest first."""
    spans = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    mine = {
        s["trace_id"]
        for s in spans
        if s["attributes"].get("workflow.instance_id") == instance_id
        and s["attributes"].get("workflow.name") == workflow
    }
    return sorted((s for s in spans if s["trace_id"] in mine), key=lambda s: s["start"])


def run(options: dict[str, Any], out: SupportsWrite[str]) -> None:
    setting = conf.get("TRACING") or ""
    path = Path(options.get("file") or (setting[5:] if setting.startswith("file:") else ""))
    if not str(path) or str(path) == "." or not path.exists():
        raise CommandError("no span file: run with WORKFLOWS_TRACING=file:<path>, or give --file")
    spans = spans_of(path, options["workflow"], options["id"])
    if not spans:
        raise CommandError(f"no span of {options['workflow']}/{options['id']} in {path}")
    children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    ids = {s["span_id"] for s in spans}
    for s in spans:
        children[s["parent_id"] if s["parent_id"] in ids else None].append(s)
    out.write(f"trace {spans[0]['trace_id']}\n")

    def show(span: dict[str, Any], depth: int) -> None:
        took = (span["end"] - span["start"]) / 1e9
        extras = {k.removeprefix("workflow."): v for k, v in span["attributes"].items() if k.startswith("workflow.")}
        shown = ", ".join(f"{k}={v}" for k, v in extras.items() if k not in ("name", "instance_id"))
        mark = " ERROR" if span["status"] == "ERROR" else ""
        out.write(f"{'  ' * depth}{span['name']}  {took:.3f}s{mark}  {shown}\n")
        for child in children.get(span["span_id"], []):
            show(child, depth + 1)

    for root in children[None]:
        show(root, 1)
