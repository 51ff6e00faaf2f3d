"""The HTTP API: authentication, permissions, every error path, and the happy paths."""

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Permission, User

from api.models import ApiToken
from tests.helpers import run
from workflows import get_workflow
from workflows.models import Instance

pytestmark = pytest.mark.usefixtures("engine")


@pytest.fixture
def operator():
    user = User.objects.create_user("ops")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["operate_instance", "approve_instance"]))
    return ApiToken.issue(user, "tests")[1]


@pytest.fixture
def viewer():
    return ApiToken.issue(User.objects.create_user("viewer"))[1]


@pytest.fixture
def approver():
    user = User.objects.create_user("approver")
    user.user_permissions.add(Permission.objects.get(codename="approve_instance"))
    return ApiToken.issue(user)[1]


@pytest.fixture
def signaller():
    """A service that may only send events (answers to wait_for_event)."""
    user = User.objects.create_user("signaller")
    user.user_permissions.add(Permission.objects.get(codename="send_event"))
    return ApiToken.issue(user)[1]


def call(client, method, path, token=None, body=None, raw=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = raw if raw is not None else (json.dumps(body) if body is not None else "")
    response = getattr(client, method.lower())(
        f"/api/{path}", data=data, content_type="application/json", headers=headers
    )
    return response.status_code, response.json()


def test_every_endpoint_needs_authentication(client):
    for method, path in [
        ("GET", "workflows"),
        ("GET", "openapi.json"),
        ("POST", "workflows/t-waiter/instances"),
        ("PATCH", "workflows/t-waiter/instances/x/status"),
        ("POST", "workflows/t-waiter/instances/x/events/go"),
    ]:
        status, body = call(client, method, path)
        assert (status, body["error"]["code"]) == (401, "not_authenticated"), path


def test_a_revoked_or_malformed_token_is_refused(client, operator):
    assert call(client, "GET", "workflows", "wf_nonsense")[0] == 401
    ApiToken.objects.get().revoke()
    assert call(client, "GET", "workflows", operator)[1]["error"]["message"] == "the API token is unknown or revoked"
    response = client.get("/api/workflows", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401 and "Bearer" in response.json()["error"]["message"]


def test_tokens_are_stored_hashed():
    user = User.objects.create_user("u")
    token, secret = ApiToken.issue(user)
    assert secret not in (token.token_hash, token.prefix) and len(token.token_hash) == 64
    assert not ApiToken.objects.filter(token_hash=secret).exists()


def test_create_list_describe_and_control_an_instance(client, operator):
    status, body = call(client, "POST", "workflows/t-waiter/instances", operator, {"id": "h1", "params": {"waits": 1}})
    assert (status, body) == (201, {"id": "h1", "workflow": "t-waiter", "status": "queued"})
    run()
    status, page = call(client, "GET", "workflows/t-waiter/instances?status=waiting", operator)
    assert [i["id"] for i in page["instances"]] == ["h1"] and page["next_cursor"] is None
    assert (
        call(client, "PATCH", "workflows/t-waiter/instances/h1/status", operator, {"status": "pause"})[1]["status"]
        == "paused"
    )
    assert (
        call(client, "PATCH", "workflows/t-waiter/instances/h1/status", operator, {"status": "resume"})[1]["status"]
        == "queued"
    )
    status, body = call(client, "POST", "workflows/t-waiter/instances/h1/events/go", operator, {"approved": True})
    assert status == 202
    run()
    status, story = call(client, "GET", "workflows/t-waiter/instances/h1", operator)
    assert story["status"] == "complete" and story["output"] == [{"approved": True}]
    assert story["steps"][0]["kind"] == "wait_for_event" and story["steps"][0]["event"]["payload"] == {"approved": True}
    assert call(client, "GET", "workflows/t-waiter/instances/h1?simple=true", operator)[1]["step_count"] == 1
    status, body = call(
        client,
        "PATCH",
        "workflows/t-waiter/instances/h1/status",
        operator,
        {"status": "restart", "from_step": "wait 0"},
    )
    assert (status, body["status"]) == (200, "queued")


def test_batch_create_skips_existing_ids(client, operator):
    get_workflow("t-waiter").create(id="b2")
    status, body = call(
        client, "POST", "workflows/t-waiter/instances/batch", operator, [{"id": "b1"}, {"id": "b2"}, {"id": "b3"}]
    )
    assert status == 201 and [c["id"] for c in body["created"]] == ["b1", "b3"] and body["skipped"] == 1


def test_cursor_pagination_walks_every_instance_once(client, viewer):
    get_workflow("t-waiter").create_batch([{"id": f"p{i}"} for i in range(7)])
    seen, cursor = [], ""
    while True:
        status, page = call(client, "GET", f"workflows/t-waiter/instances?limit=3&cursor={cursor}", viewer)
        seen += [i["id"] for i in page["instances"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == [f"p{i}" for i in range(7)] and len(seen) == 7


@pytest.mark.parametrize(
    "method,path,body,raw,status,code",
    [
        ("POST", "workflows/t-waiter/instances", None, "{bad", 400, "invalid_json"),
        ("POST", "workflows/t-waiter/instances", {"id": "x", "extra": 1}, None, 400, "invalid_request"),
        ("POST", "workflows/t-waiter/instances", [1], None, 400, "invalid_request"),
        ("POST", "workflows/t-waiter/instances", {"id": "bad id"}, None, 400, "invalid_id"),
        ("POST", "workflows/t-waiter/instances", {"params": "x" * (2**20 + 1)}, None, 413, "too_large"),
        ("POST", "workflows/nope/instances", {}, None, 404, "workflow_not_found"),
        ("GET", "workflows/nope", None, None, 404, "workflow_not_found"),
        ("GET", "workflows/t-waiter/instances/missing", None, None, 404, "instance_not_found"),
        ("GET", "workflows/t-waiter/instances?status=bogus", None, None, 400, "invalid_request"),
        ("GET", "workflows/t-waiter/instances?limit=0", None, None, 400, "invalid_request"),
        ("GET", "workflows/t-waiter/instances?limit=x", None, None, 400, "invalid_request"),
        ("GET", "workflows/t-waiter/instances?cursor=zzz", None, None, 400, "invalid_request"),
        ("GET", "workflows/t-waiter/instances?created_after=yesterday", None, None, 400, "invalid_request"),
        (
            "GET",
            "workflows/t-waiter/instances?created_after=0001-01-01T00:00:00%2B01:00",
            None,
            None,
            400,
            "invalid_request",
        ),
        ("PATCH", "workflows/t-waiter/instances/e1/status", {"status": "explode"}, None, 400, "invalid_request"),
        (
            "PATCH",
            "workflows/t-waiter/instances/e1/status",
            {"status": "pause", "from_step": "x"},
            None,
            400,
            "invalid_request",
        ),
        (
            "PATCH",
            "workflows/t-waiter/instances/e1/status",
            {"status": "restart", "from_step": "nope"},
            None,
            409,
            "invalid_state",
        ),
        ("POST", "workflows/t-waiter/instances/e1/events/a.b", {}, None, 400, "invalid_event_type"),
        ("DELETE", "workflows/t-waiter/instances/e1", None, None, 405, "method_not_allowed"),
    ],
)
def test_error_paths_answer_json_with_a_stable_code(client, operator, method, path, body, raw, status, code):
    get_workflow("t-waiter").create(id="e1")
    got_status, got = call(client, method, path, operator, body, raw)
    assert (got_status, got["error"]["code"]) == (status, code), got
    assert got["error"]["message"]


def test_duplicates_and_finished_instances_are_conflicts(client, operator):
    call(client, "POST", "workflows/t-counter/instances", operator, {"id": "d1", "params": {"steps": 1}})
    assert call(client, "POST", "workflows/t-counter/instances", operator, {"id": "d1"})[0] == 409
    run()
    status, body = call(client, "POST", "workflows/t-counter/instances/d1/events/go", operator, {})
    assert (status, body["error"]["code"]) == (409, "invalid_state")
    status, body = call(client, "PATCH", "workflows/t-counter/instances/d1/status", operator, {"status": "terminate"})
    assert (status, body["error"]["code"]) == (409, "invalid_state")


def test_permissions_viewers_read_signallers_send_events_operators_control(client, viewer, approver, signaller):
    get_workflow("t-waiter").create(id="perm")
    assert call(client, "GET", "workflows/t-waiter/instances/perm", viewer)[0] == 200
    for token in (viewer, approver, signaller):
        status, body = call(client, "PATCH", "workflows/t-waiter/instances/perm/status", token, {"status": "terminate"})
        assert (status, body["error"]["code"]) == (403, "permission_denied")
        assert "workflows.operate_instance" in body["error"]["message"]
    for token in (viewer, approver):  # deciding approvals is not sending events
        status, body = call(client, "POST", "workflows/t-waiter/instances/perm/events/go", token, {})
        assert (status, body["error"]["code"]) == (403, "permission_denied")
        assert "'workflows.send_event' or 'workflows.operate_instance'" in body["error"]["message"]
    assert call(client, "POST", "workflows/t-waiter/instances/perm/events/go", signaller, {})[0] == 202
    assert get_workflow("t-waiter").get("perm").status()["status"] == "queued"


def test_session_calls_need_the_csrf_token(operator):
    from django.test import Client

    user = User.objects.get(username="ops")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get("/api/workflows").status_code == 200
    refused = browser.post("/api/workflows/t-waiter/instances", data="{}", content_type="application/json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "csrf_failed")
    browser.get("/admin/login/")  # sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    accepted = browser.post(
        "/api/workflows/t-waiter/instances", data="{}", content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert accepted.status_code == 201


def test_values_come_back_as_plain_json(client, operator):
    call(client, "POST", "workflows/t-waiter/instances", operator, {"id": "v1"})
    payload = {"when": datetime(2024, 2, 29, 12, tzinfo=UTC), "raw": b"\x00\xff", "n": Decimal("1.50"), "pair": (1, 2)}
    get_workflow("t-waiter").get("v1").send_event("go", payload)
    run()
    status, story = call(client, "GET", "workflows/t-waiter/instances/v1", operator)
    assert status == 200 and story["steps"][0]["event"]["timestamp"].endswith("+00:00")
    assert story["output"] == [{"when": "2024-02-29T12:00:00+00:00", "raw": "AP8=", "n": "1.50", "pair": [1, 2]}]
    assert "$wf" not in json.dumps(story), "the storage tags never leak"


def test_dates_with_any_offset_are_compared_in_utc(client, viewer):
    get_workflow("t-waiter").create(id="tz")
    created = Instance.objects.get(instance_id="tz").created_at
    far_east = timezone(timedelta(hours=20, minutes=21))

    def listed_after(moment):
        query = quote(moment.astimezone(far_east).isoformat())
        status, page = call(client, "GET", f"workflows/t-waiter/instances?created_after={query}", viewer)
        assert status == 200
        return [i["id"] for i in page["instances"]]

    assert listed_after(created - timedelta(seconds=1)) == ["tz"]
    assert listed_after(created + timedelta(seconds=1)) == []


# --------------------------------------------------------------------------- approvals


@pytest.fixture
def finance_tokens(db):
    from django.contrib.auth.models import Group

    group = Group.objects.create(name="finance")
    tokens = {}
    for name in ("ada", "bob", "dave"):
        user = User.objects.create_user(name)
        if name != "dave":
            user.groups.add(group)
        tokens[name] = ApiToken.issue(user)[1]
    return tokens


def open_request(**params):
    get_workflow("t-approval").create(id=params.pop("id", "ap"), params={"approvers": ["group:finance"], **params})
    run()
    from workflows.models import ApprovalRequest

    return ApprovalRequest.objects.latest("pk").pk


def test_approvals_are_listed_per_caller_and_read_one_by_one(client, finance_tokens, operator):
    request_id = open_request(title="Chair for {requested_by}", requested_by="bob")
    status, mine = call(client, "GET", "approvals", finance_tokens["ada"])
    assert status == 200 and [(r["id"], r["title"], r["can_decide"]) for r in mine["approvals"]] == [
        (request_id, "Chair for bob", True)
    ]
    assert call(client, "GET", "approvals", finance_tokens["bob"])[1]["approvals"] == []
    status, body = call(client, "GET", "approvals?scope=all", finance_tokens["ada"])
    assert (status, body["error"]["code"]) == (403, "permission_denied")
    assert len(call(client, "GET", "approvals?scope=all", operator)[1]["approvals"]) == 1
    status, one = call(client, "GET", f"approvals/{request_id}", finance_tokens["bob"])
    assert status == 200 and (one["can_decide"], one["refusal"]) == (False, "own_request")
    assert call(client, "GET", "approvals/999999", finance_tokens["bob"])[0] == 404


@pytest.mark.parametrize(
    "who,body,status,code",
    [
        ("dave", {"approved": True}, 403, "not_approver"),
        ("bob", {"approved": True}, 403, "own_request"),
        ("ada", {"approved": True, "data": {"approved_amount": "-1"}}, 422, "invalid_data"),
        ("ada", {"approved": "yes"}, 400, "invalid_request"),
        ("ada", {"approved": True, "extra": 1}, 400, "invalid_request"),
    ],
)
def test_a_refused_decision_answers_its_reason_with_the_right_status(client, finance_tokens, who, body, status, code):
    request_id = open_request(requested_by="bob", form="spend")
    got_status, got = call(client, "POST", f"approvals/{request_id}/decision", finance_tokens[who], body)
    assert (got_status, got["error"]["code"]) == (status, code), got
    if code == "invalid_data":
        assert set(got["error"]["fields"]) == {"approved_amount", "cost_centre"}


def test_deciding_over_http_records_once_and_later_calls_conflict(client, finance_tokens):
    request_id = open_request(quorum=2)
    status, after = call(client, "POST", f"approvals/{request_id}/decision", finance_tokens["ada"], {"approved": True})
    assert status == 200 and (after["status"], after["approvals"], after["decisions"][0]["channel"]) == (
        "open",
        1,
        "api",
    )
    status, again = call(client, "POST", f"approvals/{request_id}/decision", finance_tokens["ada"], {"approved": False})
    assert (status, again["error"]["code"]) == (409, "already_decided")
    call(
        client, "POST", f"approvals/{request_id}/decision", finance_tokens["bob"], {"approved": True, "comment": "2nd"}
    )
    status, late = call(client, "POST", f"approvals/{request_id}/decision", finance_tokens["dave"], {"approved": False})
    assert (status, late["error"]["code"]) == (409, "closed")
    run()
    assert get_workflow("t-approval").get("ap").status()["output"]["by"] == "bob"


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "bulk-jobs/\u00b3"), ("GET", "approvals/\u00b3"), ("DELETE", "delegations/\u00b3")]
)
def test_an_id_of_unicode_digits_is_not_found_not_a_server_error(client, operator, method, path):
    # "³".isdigit() is True but int("³") fails: ids are ASCII digits.
    status, body = call(client, method, path, operator)
    assert (status, body["error"]["code"]) == (404, "not_found")
