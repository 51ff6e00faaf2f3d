"""The pages and API calls of approvals that reach people: decision links, away and delegation,
the Approvals figures, and notifications on the timeline (Django's test client)."""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail

from api.models import ApiToken
from tests.helpers import run, start
from workflows import approvals, clock
from workflows.models import ApprovalDecision, ApprovalRequest

pytestmark = pytest.mark.usefixtures("engine")
HTMX = {"HX-Request": "true"}


@pytest.fixture
def team(db):
    finance = Group.objects.create(name="finance")
    people = {name: User.objects.create_user(name, email=f"{name}@example.com", password="pw") for name in "abc"}
    people["a"].groups.add(finance)
    people["b"].groups.add(finance)
    return people


def ask(**params):
    instance = start("t-approval", {"approvers": ["group:finance"], "title": "Laptop", **params})
    run(instance)
    return instance, approvals.get(ApprovalRequest.objects.get(instance_key=instance.id).pk)


def link_path(username):
    message = next(m for m in mail.outbox if m.to == [f"{username}@example.com"])
    url = re.search(r"https?://\S+/approvals/link/\S+/", message.body).group(0)
    return "/" + url.split("/", 3)[3]


# --------------------------------------------------------------------------- decision links


def test_a_link_asks_its_addressee_to_log_in_then_shows_the_request_and_decides_nothing(client, team):
    instance, request = ask()
    path = link_path("a")
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=/approvals/link/")
    client.force_login(team["a"])
    for _ in range(2):
        page = client.get(path)
        assert page.status_code == 200
    text = page.content.decode()
    assert "Laptop" in text and 'name="decision" value="approve"' in text and f'action="{path}"' in text
    assert "Opening this page decides nothing" in text
    assert not ApprovalDecision.objects.exists()


def test_deciding_from_a_link_works_once(client, team):
    instance, request = ask()
    path = link_path("a")
    client.force_login(team["a"])
    page = client.post(path, {"decision": "approve", f"r{request.id}-comment": "fine"})
    assert page.status_code == 200 and "Approved" in page.content.decode()
    assert [(d.by, d.channel, d.comment) for d in approvals.get(request.id).decisions] == [("a", "link", "fine")]
    again = client.get(path)
    assert again.status_code == 410 and "already been used" in again.content.decode()
    assert client.post(path, {"decision": "reject"}).status_code == 410
    assert run(instance)["status"] == "complete"


def test_a_link_refuses_another_user_a_forged_token_and_an_expired_link(client, team):
    ask()
    path = link_path("a")
    client.force_login(team["b"])
    foreign = client.get(path)
    assert foreign.status_code == 403 and "link was sent to a; you are logged in as b" in foreign.content.decode()
    assert client.post(path, {"decision": "approve"}).status_code == 403
    assert client.get(path[:-6] + "AAAAA/").status_code == 404
    assert client.get("/approvals/link/not-a-token/").status_code == 404
    client.force_login(team["a"])
    clock.advance(timedelta(hours=2))  # past the 1 h deadline
    expired = client.get(path)
    assert expired.status_code == 410 and "expired" in expired.content.decode()
    assert not ApprovalDecision.objects.exists()


def test_an_invalid_form_through_a_link_keeps_what_was_typed_and_the_link(client, team):
    instance, request = ask(form="spend")
    path = link_path("b")
    client.force_login(team["b"])
    prefix = f"r{request.id}"
    page = client.post(
        path, {"decision": "approve", f"{prefix}-approved_amount": "-3", f"{prefix}-comment": "typed"}, headers=HTMX
    )
    text = page.content.decode()
    assert "typed" in text and "greater than or equal to 0" in text
    assert client.get(path).status_code == 200


# --------------------------------------------------------------------------- away and delegation


def test_the_away_page_sets_lists_and_cancels_an_absence(client, team):
    client.force_login(team["a"])
    assert "No absence planned" in client.get("/settings/away/").content.decode()
    today = clock.now()
    form = {
        "starts": today.strftime("%Y-%m-%dT%H:%M"),
        "ends": (today + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"),
        "delegate": "c",
        "note": "holiday",
    }
    assert client.post("/settings/away/", form).status_code == 302
    page = client.get("/settings/away/").content.decode()
    assert "<strong>c</strong> decides for you" in page and "holiday" in page
    client.force_login(team["c"])
    assert "You stand in for" in client.get("/settings/away/").content.decode()
    assert "<strong>a</strong>" in client.get("/settings/away/").content.decode()
    client.force_login(team["a"])
    (absence,) = approvals.absences(team["a"])
    assert client.post(f"/settings/away/{absence.pk}/cancel/").status_code == 302
    assert approvals.absences(team["a"]) == []


def test_the_away_page_names_what_is_wrong_and_keeps_the_form(client, team):
    client.force_login(team["a"])
    now = clock.now()
    bad = {"starts": now.strftime("%Y-%m-%dT%H:%M"), "ends": now.strftime("%Y-%m-%dT%H:%M"), "delegate": "c"}
    page = client.post("/settings/away/", bad)
    assert page.status_code == 422 and "must end after it starts" in page.content.decode()
    nobody = client.post("/settings/away/", {**bad, "delegate": "zed"})
    assert "no active user named &#x27;zed&#x27;" in nobody.content.decode()
    assert client.post("/settings/away/", {**bad, "starts": "yesterday"}).status_code == 422
    assert approvals.absences(team["a"]) == []


def test_a_delegate_sees_the_away_approvers_request_and_the_card_says_for_whom(client, team):
    now = clock.now()
    approvals.set_away(team["a"], delegate=team["c"], starts=now, ends=now + timedelta(days=1))
    instance, request = ask()
    client.force_login(team["c"])
    page = client.get("/inbox/").content.decode()
    assert "Laptop" in page and "You decide this for <strong>a</strong>, who is away" in page
    client.post(f"/approvals/{request.id}/decide/", {"decision": "approve"}, headers=HTMX)
    timeline = client.get(f"/instances/t-approval/{instance.id}/").content.decode()
    assert "by <strong>c</strong> on behalf of <strong>a</strong>" in timeline


def test_delegations_over_the_api(client, team):
    token = ApiToken.issue(team["a"])[1]
    headers = {"Authorization": f"Bearer {token}"}

    def call(method, path, body=None):
        response = getattr(client, method)(
            f"/api/{path}", data=json.dumps(body) if body is not None else "", content_type="application/json",
            headers=headers,
        )  # fmt: skip
        return response.status_code, (response.json() if response.content else None)

    now = clock.now()
    window = {"delegate": "b", "starts": now.isoformat(), "ends": (now + timedelta(days=2)).isoformat()}
    status, absence = call("post", "delegations", window)
    assert status == 201 and (absence["user"], absence["delegate"]) == ("a", "b")
    assert call("post", "delegations", window)[1]["error"]["code"] == "invalid_absence"
    assert call("post", "delegations", {**window, "delegate": "nobody"})[0] == 409
    assert call("post", "delegations", {**window, "starts": "soon"})[0] == 400
    assert call("post", "delegations", {**window, "extra": 1})[0] == 400
    status, listed = call("get", "delegations")
    assert [a["id"] for a in listed["absences"]] == [absence["id"]] and listed["standing_in_for"] == []
    assert call("delete", f"delegations/{absence['id']}") == (204, None)
    assert call("delete", f"delegations/{absence['id']}")[0] == 404
    assert call("delete", "delegations/x")[0] == 404


# --------------------------------------------------------------------------- figures and the timeline


def test_the_approvals_page_shows_waiting_and_time_to_decision(client, team):
    client.force_login(team["c"])
    empty = client.get("/approvals/").content.decode()
    assert "Nothing was decided in the last 30 days" in empty
    instance, request = ask()
    clock.advance(timedelta(minutes=30))
    approvals.decide(request.id, user=team["a"], approved=True)
    ask(remind_every="10m", timeout="2h")
    run()
    page = client.get("/approvals/").content.decode()
    assert "<svg" in page and "t-approval, last 7 days: median 30 min" in page
    assert "group:finance" in page


def test_the_timeline_shows_the_policy_and_each_notification(client, team):
    instance, request = ask(remind_every="10m", timeout="1h", on_timeout="approve")
    client.force_login(team["a"])
    page = client.get(f"/instances/t-approval/{instance.id}/").content.decode()
    assert "Reminders every 10 min (0 sent)" in page and "at the deadline: approved automatically" in page
    assert "2 notifications" in page and "opened to <strong>a</strong> by EmailNotifier" in page
