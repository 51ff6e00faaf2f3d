"""``workflows instances retry|terminate|pause|resume --filter ...``: act on every matching instance.

Without ``--yes`` it is a dry run that prints how many instances match and the filter; with
it, a bulk job is started on the workers (``workflows.bulk_jobs``) and followed to its end
(``--no-wait`` returns at once). One instance (``<workflow> <id>``) still works as before.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandError

from workflows import bulk_jobs, count_instances
from workflows.states import Status

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

FILTER_KEYS = (
    "workflow", "status", "failed_step", "error_name", "id_prefix", "created_after", "created_before", "version",
)  # fmt: skip


def add_bulk_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--filter", default=None, metavar="KEY=VALUE,...",
        help=f"act on every instance matching ({', '.join(FILTER_KEYS)}, attr.<name>)",
    )  # fmt: skip
    p.add_argument("--yes", action="store_true", help="start the job (without it: a dry run that prints the count)")
    p.add_argument("--no-wait", action="store_true", help="start the job and return without following it")


def parse_filter(text: str) -> dict[str, Any]:
    """``workflow=data-pipeline,status=errored,attr.customer=acme`` as list_instances' filters."""
    found: dict[str, Any] = {}
    attributes: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not value:
            raise CommandError(f"--filter takes KEY=VALUE pairs separated by commas, got {part!r}")
        if key.startswith("attr."):
            attributes[key[5:]] = value
        elif key in ("created_after", "created_before"):
            found[key] = _when(value, key)
        elif key in FILTER_KEYS:
            found[key] = value
        else:
            raise CommandError(f"unknown filter {key!r}; use {', '.join(FILTER_KEYS)} or attr.<name>")
    if "status" in found and found["status"] not in Status.values:
        raise CommandError(f"status must be one of {', '.join(Status.values)}, got {found['status']!r}")
    if attributes:
        found["attributes"] = attributes
    return found


def _when(text: str, key: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"{key} {text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run(action: str, options: dict[str, Any], out: SupportsWrite[str]) -> None:
    if options.get("workflow") or options.get("id"):
        raise CommandError("give either <workflow> <id> or --filter, not both")
    chosen = parse_filter(options["filter"])
    count = count_instances(**chosen)
    described = ", ".join(f"{k}={v}" for k, v in chosen.items()) or "every instance"
    if not options.get("yes"):
        out.write(f"Dry run: {action} would apply to {count} instance(s) matching {described}. Add --yes to start.\n")
        return
    job = bulk_jobs.start(action, chosen)
    out.write(f"Bulk job {job.id}: {action} on {count} instance(s) matching {described}.\n")
    if options.get("no_wait"):
        return
    while True:
        job = bulk_jobs.get(job.id)
        out.write(f"  {job.status}: {job.processed}/{job.total} ({job.done} done, {job.refused} refused)\n")
        if not job.is_active:
            break
        time.sleep(1)
    for item in bulk_jobs.items(job.id, "refused", limit=50):
        out.write(f"  refused {item['workflow']}/{item['instance_id']}: {item['message']}\n")
