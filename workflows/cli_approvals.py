"""``manage.py workflows approvals list|decide``: approval requests from a shell.

    manage.py workflows approvals list [--user U] [--workflow W] [--json]
    manage.py workflows approvals decide ID --user U (--approve|--reject) [--comment C] [--data JSON]

``list`` shows what user U may decide (every open request without --user). ``decide``
decides as U, with the same rules as the dashboard and the API; a refusal exits non-zero
with its reason, and invalid form data lists each field's problems.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser

from workflows import approvals, now

if TYPE_CHECKING:
    from _typeshed import SupportsWrite


def add_arguments(sub: argparse._SubParsersAction[CommandParser]) -> None:
    commands = sub.add_parser("approvals", help="list and decide approval requests").add_subparsers(
        dest="approval_action", required=True, metavar="action"
    )
    p = commands.add_parser("list", help="open requests (those --user may decide, with --user)")
    p.add_argument("--user", default=None, help="username: only what this user may decide now")
    p.add_argument("--workflow", default=None)
    p.add_argument("--json", action="store_true")
    p = commands.add_parser("decide", help="approve or reject a request as a user")
    p.add_argument("id", help="the request's id (see list)")
    p.add_argument("--user", required=True, help="who decides (a username)")
    verdict = p.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--approve", action="store_true")
    verdict.add_argument("--reject", action="store_true")
    p.add_argument("--comment", default="")
    p.add_argument("--data", default=None, help="the form's fields as a JSON object")


def run(options: dict[str, Any], out: SupportsWrite[str]) -> None:
    try:
        if options["approval_action"] == "list":
            return _list(options, out)
        return _decide(options, out)
    except approvals.DecisionRefused as exc:
        fields = "".join(
            f"\n  {field}: {' '.join(problem['message'] for problem in problems)}"
            for field, problems in exc.errors.items()
        )
        raise CommandError(f"refused ({exc.reason}): {exc}{fields}") from None


def _user(username: str) -> Any:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"no user named {username!r}")
    return user


def _list(options: dict[str, Any], out: SupportsWrite[str]) -> None:
    from workflows.cli import _dump, table

    user = _user(options["user"]) if options["user"] else None
    found = approvals.pending(user, workflow=options["workflow"])
    if options["json"]:
        return _dump([r.as_dict() for r in found], out)
    if not found:
        out.write("No open approval requests" + (f" for {user.get_username()}." if user else "."))
        return
    rows = [
        [r.id, r.workflow, r.instance_id, r.title or r.step, f"{r.approvals}/{r.quorum}", _left(r.deadline)]
        for r in found
    ]
    out.write(table(rows, ["ID", "WORKFLOW", "INSTANCE", "TITLE", "APPROVALS", "DEADLINE"]))


def _left(deadline: datetime | None) -> str:
    """How long until the deadline: "in 47h", "in 12m"."""
    if deadline is None:
        return "-"
    seconds = (deadline - now()).total_seconds()
    if seconds <= 0:
        return "passed"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"in {int(seconds // size)}{unit}"
    return f"in {int(seconds)}s"


def _decide(options: dict[str, Any], out: SupportsWrite[str]) -> None:
    user = _user(options["user"])
    data = None
    if options["data"] is not None:
        try:
            data = json.loads(options["data"])
        except ValueError as exc:
            raise CommandError(f"--data is not valid JSON: {exc}") from None
    request = approvals.decide(
        int(options["id"]) if options["id"].isascii() and options["id"].isdigit() else options["id"],
        user=user,
        approved=bool(options["approve"]),
        comment=options["comment"],
        data=data,
        channel="cli",
    )
    verdict = "approved" if options["approve"] else "rejected"
    state = "open" if request.is_open else request.status
    out.write(
        f"{user.get_username()} {verdict} approval {request.id} ({request.workflow}/{request.instance_id}); "
        f"it is now {state} ({request.approvals}/{request.quorum} approvals)."
    )
