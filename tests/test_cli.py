"""`manage.py workflows ...`: readable tables, --json, clear errors with a non-zero exit."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.helpers import run, start
from workflows import get_workflow

pytestmark = pytest.mark.usefixtures("engine")


def cli(*args) -> str:
    out = StringIO()
    call_command("workflows", *args, stdout=out)
    return out.getvalue()


def test_trigger_creates_an_instance_with_json_params_and_an_id():
    assert (
        cli("trigger", "t-waiter", '{"waits": 1}', "--id", "cli-1")
        == 'Workflow instance "cli-1" of t-waiter has been queued.\n'
    )
    run()
    assert get_workflow("t-waiter").get("cli-1").status()["status"] == "waiting"


@pytest.mark.parametrize(
    "args,message",
    [
        (("trigger", "t-waiter", "{bad"), "params is not valid JSON"),
        (("trigger", "no-such"), "no workflow named 'no-such'"),
        (("trigger", "t-waiter", "--id", "bad id"), "invalid instance id 'bad id'"),
        (("instances", "describe", "t-waiter", "missing"), "no instance 'missing'"),
        (("instances", "describe", "t-counter", "latest"), "has no instances yet"),
        (
            ("instances", "send-event", "t-waiter", "x", "--type", "go", "--payload", "[1,"),
            "--payload is not valid JSON",
        ),
        (("instances", "restart", "t-waiter", "x", "--count", "2"), "--count needs --from-step"),
    ],
)
def test_bad_input_is_a_command_error_naming_the_problem(args, message):
    with pytest.raises(CommandError, match=message):
        cli(*args)


def test_an_invalid_status_lists_the_valid_ones():
    with pytest.raises(CommandError, match="invalid choice: 'bogus' \\(choose from 'queued', 'running'"):
        cli("instances", "list", "t-waiter", "--status", "bogus")


def test_list_shows_counts_per_workflow_and_json_on_request():
    start("t-waiter", id="a")
    run()
    text = cli("list")
    assert text.splitlines()[0].split() == [
        "WORKFLOW",
        "ACTIVE",
        "WAITING",
        "PAUSED",
        "ERRORED",
        "COMPLETE",
        "LAST",
        "ACTIVITY",
    ]
    assert any(line.split()[:3] == ["t-waiter", "0", "1"] for line in text.splitlines())
    data = json.loads(cli("list", "--json"))
    assert next(w for w in data if w["name"] == "t-waiter")["counts"]["waiting"] == 1


def test_describe_tells_the_story_of_an_instance_step_by_step():
    start("t-flaky", {"fail": 1, "retries": {"limit": 1, "delay": 5}}, id="f1")
    run()
    text = cli("instances", "describe", "t-flaky", "latest")
    assert "t-flaky/f1  WAITING" in text
    assert "attempt 1: ConnectionError: attempt 1 failed (retry in 5s)" in text
    story = json.loads(cli("instances", "describe", "t-flaky", "f1", "--json"))
    assert story["steps"][0]["attempts"][0]["error"] == {"name": "ConnectionError", "message": "attempt 1 failed"}


def test_send_event_pause_resume_terminate_restart_and_terminate_all():
    start("t-waiter", id="w1")
    start("t-waiter", id="w2")
    run()
    assert "paused" in cli("instances", "pause", "t-waiter", "w1")
    assert "queued" in cli("instances", "resume", "t-waiter", "w1")
    cli("instances", "send-event", "t-waiter", "w1", "--type", "go", "--payload", '{"ok": true}')
    run()
    assert get_workflow("t-waiter").get("w1").status()["output"] == [{"ok": True}]
    assert "restarted" in cli("instances", "restart", "t-waiter", "w1", "--from-step", "wait 0")
    assert cli("instances", "terminate-all", "t-waiter") == "Terminated 2 instance(s) of t-waiter.\n"
    rows = cli("instances", "list", "t-waiter").splitlines()[2:]  # after the header and its rule
    assert sorted(row.split()[:2] for row in rows) == [["w1", "terminated"], ["w2", "terminated"]]


# --------------------------------------------------------------------------- approvals


@pytest.fixture
def finance(db):
    from django.contrib.auth.models import Group, User

    group = Group.objects.create(name="finance")
    for name in ("ada", "bob"):
        User.objects.create_user(name).groups.add(group)
    User.objects.create_user("dave")


def test_approvals_list_shows_what_a_user_may_decide(finance):
    start("t-approval", {"approvers": ["group:finance"], "title": "Laptop", "requested_by": "bob"}, id="a1")
    run()
    assert "Laptop" in cli("approvals", "list", "--user", "ada")
    assert cli("approvals", "list", "--user", "bob") == "No open approval requests for bob.\n"
    assert "Laptop" in cli("approvals", "list")
    listed = json.loads(cli("approvals", "list", "--user", "ada", "--json"))
    assert [(r["instance_id"], r["quorum"], r["requested_by"]) for r in listed] == [("a1", 1, "bob")]


def test_approvals_decide_as_a_user_with_form_data_and_refusals_exit_non_zero(finance):
    instance = start("t-approval", {"approvers": ["group:finance"], "form": "spend", "requested_by": "bob"})
    run()
    request_id = str(json.loads(cli("approvals", "list", "--json"))[0]["id"])
    with pytest.raises(CommandError, match="refused \\(own_request\\)"):
        cli("approvals", "decide", request_id, "--user", "bob", "--approve")
    with pytest.raises(CommandError, match="refused \\(invalid_data\\).*\n  approved_amount: This field is required."):
        cli("approvals", "decide", request_id, "--user", "ada", "--approve")
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        cli("approvals", "decide", request_id, "--user", "nobody", "--reject")
    data = '{"approved_amount": "99.90", "cost_centre": "ops"}'
    said = cli("approvals", "decide", request_id, "--user", "ada", "--approve", "--comment", "ok", "--data", data)
    assert (
        said == f"ada approved approval {request_id} (t-approval/{instance.id}); it is now approved (1/1 approvals).\n"
    )
    output = run(instance)["output"]
    assert (output["by"], output["comment"], str(output["data"]["approved_amount"])) == ("ada", "ok", "99.90")
    with pytest.raises(CommandError, match="refused \\(closed\\): .*already closed: approved by ada"):
        cli("approvals", "decide", request_id, "--user", "dave", "--reject")
