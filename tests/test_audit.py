"""Every change is audited whatever the channel: the real actor, the channel, in the change's own
transaction; shown on the timeline and exportable (API and CLI). A raw event cannot pass for a decision."""

import csv
import io
import json

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command

from api.models import ApiToken
from tests.helpers import run, start
from workflows import acting, approvals, audit_log, get_workflow
from workflows.models import ApprovalRequest, AuditRecord

pytestmark = pytest.mark.usefixtures("engine")


@pytest.fixture
def operator(db):
    user = User.objects.create_user("olga", password="pw")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["operate_instance", "send_event"]))
    return user


def api(client, token, method, path, body=None):
    response = getattr(client, method)(
        f"/api/{path}", data=json.dumps(body) if body is not None else "", content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    return response.status_code, response.json()


def actions(instance_id):
    return [(r["action"], r["actor"], r["channel"]) for r in audit_log(instance_id=instance_id)]


def test_api_changes_are_audited_as_the_token_holder(client, operator):
    token = ApiToken.issue(operator)[1]
    assert api(client, token, "post", "workflows/t-waiter/instances", {"id": "a1"})[0] == 201
    run()
    for status in ("pause", "resume"):
        assert api(client, token, "patch", "workflows/t-waiter/instances/a1/status", {"status": status})[0] == 200
    assert api(client, token, "post", "workflows/t-waiter/instances/a1/events/go", {"ok": True})[0] == 202
    assert api(client, token, "patch", "workflows/t-waiter/instances/a1/status", {"status": "terminate"})[0] == 200
    assert actions("a1") == [
        ("create", "olga", "api"), ("pause", "olga", "api"), ("resume", "olga", "api"),
        ("send_event", "olga", "api"), ("terminate", "olga", "api"),
    ]  # fmt: skip


def test_a_raw_event_cannot_pass_for_a_decision_and_is_audited_as_what_it_is(client, operator):
    instance = start("t-approval", {"approvers": ["user:olga"]})
    run()
    token = ApiToken.issue(operator)[1]
    forged = {"approved": True, "by": "ceo"}
    status, _ = api(
        client, token, "post", f"workflows/t-approval/instances/{instance.id}/events/approval-response", forged
    )
    assert status == 202
    run()
    request = approvals.get(ApprovalRequest.objects.get(instance_key=instance.id).pk)
    assert request.is_open and request.decisions == []
    client.force_login(operator)
    page = client.get(f"/instances/t-approval/{instance.id}/").content.decode()
    assert "by <strong>ceo</strong>" not in page and "Approved by ceo" not in page
    assert actions(instance.id)[-1] == ("send_event", "olga", "api")
    assert "olga</strong> sent an event" in page and "via api" in page


def test_decisions_are_audited_with_their_channel_and_who_they_were_for(operator):
    instance = start("t-approval", {"approvers": ["user:olga"]})
    run()
    request_id = ApprovalRequest.objects.get(instance_key=instance.id).pk
    approvals.decide(request_id, user=operator, approved=True, comment="ok", channel="cli")
    (record,) = [r for r in audit_log(instance_id=instance.id) if r["action"] == "decide"]
    assert (record["actor"], record["channel"]) == ("olga", "cli")
    assert record["details"] == {"request": request_id, "step": "sign off", "approved": True, "comment": "ok"}


def test_python_calls_say_python_and_acting_names_the_actor(operator):
    handle = get_workflow("t-waiter").create(id="p1")
    with acting(operator, "dashboard"):
        handle.pause()
    assert actions("p1") == [("create", None, "python"), ("pause", "olga", "dashboard")]


def test_a_refused_change_leaves_no_record(operator):
    handle = get_workflow("t-waiter").create(id="r1")
    handle.terminate()
    with pytest.raises(Exception, match="already terminated"):
        handle.terminate()
    assert [a for a, _, _ in actions("r1")] == ["create", "terminate"]


def test_batch_creation_and_schedules_write_one_record_per_instance():
    from workflows.schedules import fire

    get_workflow("t-waiter").create_batch([{"id": "b1"}, {"id": "b2"}, {"id": "b1"}])
    assert sorted(r["instance_id"] for r in audit_log(workflow="t-waiter")) == ["b1", "b2"]
    fire("t-waiter", "0 9 * * *", "2026-12-01T09:00:00+00:00")
    (record,) = [r for r in audit_log(workflow="t-waiter") if r["channel"] == "schedule"]
    assert record["actor"] == "cron 0 9 * * *"


def test_the_audit_log_is_exported_by_the_api_page_by_page_and_only_to_operators(client, operator):
    for n in range(5):
        get_workflow("t-waiter").create(id=f"e{n}")
    token = ApiToken.issue(operator)[1]
    status, first = api(client, token, "get", "audit?limit=3")
    assert status == 200 and [r["instance_id"] for r in first["records"]] == ["e0", "e1", "e2"]
    _, second = api(client, token, "get", f"audit?limit=3&after={first['next_after']}")
    assert [r["instance_id"] for r in second["records"]] == ["e3", "e4"] and second["next_after"] is None
    viewer = ApiToken.issue(User.objects.create_user("vic"))[1]
    assert api(client, viewer, "get", "audit")[0] == 403


def test_the_cli_exports_jsonl_and_csv_and_audits_its_own_changes():
    call_command("workflows", "trigger", "t-waiter", "{}", "--id", "c1", stdout=io.StringIO())
    (record,) = AuditRecord.objects.filter(instance_key="c1")
    assert record.channel == "cli" and "@" in record.actor
    out = io.StringIO()
    call_command("workflows", "audit", "--workflow", "t-waiter", stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["action"], r["instance_id"]) for r in lines] == [("create", "c1")]
    out = io.StringIO()
    call_command("workflows", "audit", "--format", "csv", "--since", "2000-01-01", stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0]["action"] == "create" and rows[0]["channel"] == "cli"
