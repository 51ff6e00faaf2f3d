"""`python manage.py workflows ...`: trigger, inspect and control workflows from a shell.

Mirrors `wrangler workflows` in Django's idiom. Every read command takes --json. Errors
raise CommandError, so the exit status is non-zero and the message names the problem.
"""

from __future__ import annotations

import argparse
import getpass
import json
import shutil
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandError, CommandParser

from workflows import acting, cli_bulk, get_workflow, list_workflows
from workflows.errors import WorkflowError
from workflows.queries import latest_instance_id
from workflows.states import ACTIVE, UNFINISHED, Status, StepStatus
from workflows.values import to_plain_json

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

    from workflows.api import InstanceHandle


def add_arguments(sub: argparse._SubParsersAction[CommandParser]) -> None:
    from workflows import cli_approvals, cli_audit, cli_trace, cli_versions

    cli_approvals.add_arguments(sub)
    cli_audit.add_arguments(sub)
    cli_versions.add_arguments(sub)
    cli_trace.add_arguments(sub)
    p = sub.add_parser("list", help="registered workflows with instance counts")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("describe", help="one workflow: counts per status and recent instances")
    p.add_argument("workflow")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("trigger", help="create an instance")
    p.add_argument("workflow")
    p.add_argument("params", nargs="?", default=None, help="params as JSON (default {})")
    p.add_argument("--id", default=None, help="instance id (default: a UUID)")

    instances = sub.add_parser("instances", help="list, inspect and control instances").add_subparsers(
        dest="action", required=True, metavar="action"
    )
    p = instances.add_parser("list", help="instances of a workflow, newest first")
    p.add_argument("workflow")
    p.add_argument("--status", choices=Status.values)
    add_filter_arguments(p)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p = instances.add_parser("describe", help="status, params, output and every step with its attempts")
    p.add_argument("workflow")
    p.add_argument("id", nargs="?", default="latest", help="an instance id, or 'latest'")
    p.add_argument("--json", action="store_true")
    p = instances.add_parser("send-event", help="send an event (answers a wait_for_event)")
    p.add_argument("workflow")
    p.add_argument("id")
    p.add_argument("--type", required=True)
    p.add_argument("--payload", default=None, help="JSON (default {})")
    for action in ("pause", "resume", "terminate", "retry"):
        what = "retry from the failed step" if action == "retry" else action
        p = instances.add_parser(action, help=f"{what}: one instance, or every one matching --filter (a bulk job)")
        p.add_argument("workflow", nargs="?")
        p.add_argument("id", nargs="?")
        cli_bulk.add_bulk_arguments(p)
    p = instances.add_parser("restart", help="run an instance again (from scratch, or from a step)")
    p.add_argument("workflow")
    p.add_argument("id")
    p.add_argument("--from-step", default=None, help="keep results of steps before this one")
    p.add_argument("--count", type=int, default=None, help="occurrence of --from-step (default 1)")
    p = instances.add_parser("terminate-all", help="terminate every unfinished instance")
    p.add_argument("workflow")
    p.add_argument("--status", choices=UNFINISHED)


def run(command: str | None, options: dict[str, Any], out: SupportsWrite[str]) -> None:
    """Run one command; every change it makes is audited as the operating-system user, channel "cli"."""
    with acting(None, "cli", name=f"{getpass.getuser()}@{socket.gethostname()}"[:150]):
        return _run(command, options, out)


def _run(command: str | None, options: dict[str, Any], out: SupportsWrite[str]) -> None:
    try:
        if command == "list":
            return _list(options, out)
        if command == "describe":
            return _describe_workflow(options, out)
        if command == "trigger":
            return _trigger(options, out)
        if command == "instances":
            return INSTANCE_ACTIONS[options["action"]](options, out)
        if command == "approvals":
            from workflows import cli_approvals

            return cli_approvals.run(options, out)
        if command == "audit":
            from workflows import cli_audit

            return cli_audit.run(options, out)
        if command == "trace":
            from workflows import cli_trace

            return cli_trace.run(options, out)
        if command in ("versions", "check-replay"):
            from workflows import cli_versions

            return (cli_versions.run_versions if command == "versions" else cli_versions.run_check)(options, out)
    except WorkflowError as exc:
        raise CommandError(str(exc)) from None
    raise CommandError(f"unknown command {command!r}")


def _json_arg(text: str | None, what: str) -> Any:
    if text is None:
        return {}
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{what} is not valid JSON: {exc}") from None


def _dump(value: Any, out: SupportsWrite[str]) -> None:
    out.write(json.dumps(to_plain_json(value), indent=2, ensure_ascii=False))


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    seconds = (datetime.now(UTC) - moment).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def table(rows: list[list], headers: list[str]) -> str:
    """Columns sized to their content, the widest one cut so the table fits the terminal."""
    cells = [[str(c) for c in headers]] + [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    room = shutil.get_terminal_size((120, 20)).columns - 2 * (len(headers) - 1)
    while sum(widths) > room and max(widths) > 12:
        widest = widths.index(max(widths))
        widths[widest] -= 1
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                (c if len(c) <= w else c[: w - 1] + "…").ljust(w) for c, w in zip(row, widths, strict=True)
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _list(options: dict[str, Any], out: SupportsWrite[str]) -> None:
    workflows = list_workflows()
    if options["json"]:
        return _dump(workflows, out)
    if not workflows:
        out.write("No workflows are registered. Define a Workflow subclass in an installed app's workflows.py.")
        return
    rows = [
        [
            w["name"],
            sum(w["counts"][s] for s in ACTIVE),
            w["counts"][Status.WAITING],
            w["counts"][Status.PAUSED],
            w["counts"][Status.ERRORED],
            w["counts"][Status.COMPLETE],
            _ago(w["last_activity"]),
        ]
        for w in workflows
    ]
    out.write(table(rows, ["WORKFLOW", "ACTIVE", "WAITING", "PAUSED", "ERRORED", "COMPLETE", "LAST ACTIVITY"]))


def _describe_workflow(options: dict[str, Any], out: SupportsWrite[str]) -> None:
    handle = get_workflow(options["workflow"])
    info = list_workflows([handle.name])[0]
    recent = handle.list(limit=10)["instances"]
    if options["json"]:
        return _dump({**info, "recent": recent}, out)
    out.write(f"{handle.name}: {info['description'] or '(no description)'}\n")
    out.write("  ".join(f"{status} {n}" for status, n in info["counts"].items()) + "\n\n")
    out.write(
        table([[i["id"], i["status"], _ago(i["created_at"])] for i in recent], ["ID", "STATUS", "CREATED"])
        if recent
        else "No instances yet."
    )


def _trigger(options: dict[str, Any], out: SupportsWrite[str]) -> None:
    handle = get_workflow(options["workflow"])
    instance = handle.create(id=options["id"], params=_json_arg(options["params"], "params"))
    out.write(f'Workflow instance "{instance.id}" of {handle.name} has been queued.')


def _instance(options: dict[str, Any]) -> InstanceHandle:
    handle = get_workflow(options["workflow"])
    instance_id = options["id"]
    if instance_id == "latest":
        instance_id = latest_instance_id(handle.name)
        if instance_id is None:
            raise CommandError(f"workflow {handle.name!r} has no instances yet")
    return handle.get(instance_id)


def add_filter_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--attr", action="append", default=[], metavar="NAME=VALUE", help="a search attribute (repeatable)")
    p.add_argument("--failed-step", default=None, help="instances whose step of this name failed for good")
    p.add_argument("--error-name", default=None, help="instances errored with this error, e.g. ConnectionError")
    p.add_argument("--version", default=None, help="instances created with this workflow version")


def filter_options(options: dict[str, Any]) -> dict[str, Any]:
    """The search-attribute, failed-step and error filters given on the command line."""
    found: dict[str, Any] = {}
    attributes = {}
    for pair in options.get("attr") or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CommandError(f"--attr takes NAME=VALUE, got {pair!r}")
        attributes[name] = value
    if attributes:
        found["attributes"] = attributes
    if options.get("failed_step"):
        found["failed_step"] = options["failed_step"]
    if options.get("error_name"):
        found["error_name"] = options["error_name"]
    if options.get("version"):
        found["version"] = options["version"]
    return found


def _instances_list(options: dict[str, Any], out: SupportsWrite[str]) -> None:
    handle = get_workflow(options["workflow"])
    page = handle.list(status=options["status"], limit=options["limit"], **filter_options(options))
    if options["json"]:
        return _dump(page, out)
    rows = [
        [i["id"], i["status"], _ago(i["created_at"]), _ago(i["updated_at"]), (i["error"] or {}).get("message")]
        for i in page["instances"]
    ]
    out.write(table(rows, ["ID", "STATUS", "CREATED", "UPDATED", "ERROR"]) if rows else "No instances match.")


def _short(value: Any, limit: int = 200) -> str:
    text = json.dumps(to_plain_json(value, for_people=True), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _instances_describe(options: dict[str, Any], out: SupportsWrite[str]) -> None:
    story = _instance(options).describe()
    if options["json"]:
        return _dump(story, out)
    w = out.write
    w(f"{story['workflow']}/{story['id']}  {story['status'].upper()}\n")
    w(f"  created {story['created_at']:%Y-%m-%d %H:%M:%S} UTC ({_ago(story['created_at'])})\n")
    if story["run"] > 1:
        w(f"  run     {story['run']} (restarted {story['run'] - 1} time(s); earlier runs under their steps)\n")
    w(f"  params  {_short(story['params'])}\n")
    if story["status"] == Status.COMPLETE:
        w(f"  output  {_short(story['output'])}\n")
    if story["error"]:
        w(f"  error   {story['error']['name']}: {story['error']['message']}\n")
    w("\nSteps\n")
    if not story["steps"]:
        w("  (none yet)\n")
    for step in story["steps"]:
        w(f"  {step['seq']:>3}. {step['kind']:<15} {step['name']}-{step['count']}  {step['status']}\n")
        _step_details(step, w, indent="         ")
        for earlier in step["earlier_runs"]:
            w(f"         earlier run {earlier['run']}: {earlier['status']}\n")
            _step_details(earlier, w, indent="           ")
    if story["earlier_steps"]:
        w("\nSteps of earlier runs not reached in this one\n")
        for step in story["earlier_steps"]:
            w(f"  run {step['run']}  {step['kind']:<15} {step['name']}-{step['count']}  {step['status']}\n")


def _step_details(step: dict[str, Any], w: Callable[[str], Any], indent: str) -> None:
    """What a step did: its attempts and output, its wake time, its event, its final error."""
    if step["kind"] == "do":
        for a in step["attempts"]:
            if a["success"]:
                state = "ok"
            elif a["success"] is None:
                state = "running"
            else:
                state = f"{a['error']['name']}: {a['error']['message']}"
            retry = f" (retry in {a['retry_delay']:g}s)" if a["retry_delay"] else ""
            w(f"{indent}attempt {a['number']}: {state}{retry}\n")
        if step["status"] == StepStatus.SUCCEEDED:
            w(f"{indent}output: {_short(step['output'])}\n")
    elif step["kind"] == "sleep" and step["status"] == StepStatus.SLEEPING:
        w(f"{indent}until {step['wake_at']:%Y-%m-%d %H:%M:%S} UTC\n")
    elif step["kind"] == "wait_for_event":
        if step["status"] == StepStatus.SUCCEEDED:
            w(f"{indent}received {step['event_type']}: {_short(step['event']['payload'])}\n")
        elif step["status"] == StepStatus.WAITING:
            w(f"{indent}waiting for {step['event_type']!r} until {step['timeout_at']:%Y-%m-%d %H:%M:%S} UTC\n")
    if step["error"] and step["status"] == StepStatus.FAILED:
        w(f"{indent}failed: {step['error']['name']}: {step['error']['message']}\n")


def _send_event(options: dict[str, Any], out: SupportsWrite[str]) -> None:
    payload = _json_arg(options["payload"], "--payload")
    instance = _instance(options)
    instance.send_event(options["type"], payload)
    out.write(f"Event {options['type']!r} sent to {instance.workflow_name}/{instance.id}.")


def _simple(action: str) -> Callable[[dict[str, Any], SupportsWrite[str]], None]:
    def run_action(options: dict[str, Any], out: SupportsWrite[str]) -> None:
        if options.get("filter"):
            return cli_bulk.run(action, options, out)
        if not options.get("workflow") or not options.get("id"):
            raise CommandError(f"{action} needs <workflow> <id>, or --filter for every matching instance")
        instance = _instance(options)
        if action == "retry":
            failed = instance.failed_step()
            if failed is None:
                raise CommandError(f"{instance.workflow_name}/{instance.id} has no failed step to retry from")
            instance.restart(from_step=failed)
            out.write(f"{instance.workflow_name}/{instance.id}: retrying from step {failed[0]!r}.")
            return None
        getattr(instance, action)()
        out.write(
            f"{instance.workflow_name}/{instance.id}: {action} requested; status is now {instance.status()['status']}."
        )

    return run_action


def _restart(options: dict[str, Any], out: SupportsWrite[str]) -> None:
    if options["count"] is not None and not options["from_step"]:
        raise CommandError("--count needs --from-step")
    instance = _instance(options)
    from_step = None
    if options["from_step"]:
        from_step = (options["from_step"], options["count"] or 1)
    instance.restart(from_step=from_step)
    where = f" from step {options['from_step']!r}" if from_step else ""
    out.write(f"{instance.workflow_name}/{instance.id}: restarted{where}.")


def _terminate_all(options: dict[str, Any], out: SupportsWrite[str]) -> None:
    count = get_workflow(options["workflow"]).terminate_all(status=options["status"])
    out.write(f"Terminated {count} instance(s) of {options['workflow']}.")


INSTANCE_ACTIONS = {
    "list": _instances_list,
    "describe": _instances_describe,
    "send-event": _send_event,
    "pause": _simple("pause"),
    "resume": _simple("resume"),
    "terminate": _simple("terminate"),
    "retry": _simple("retry"),
    "restart": _restart,
    "terminate-all": _terminate_all,
}
