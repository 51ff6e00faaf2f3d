"""The dashboard with Django's test client: every page, permission and error path."""

import pytest
from django.contrib.auth.models import Permission, User

from tests.helpers import run
from workflows import approvals, clock, get_workflow
from workflows.models import ApprovalDecision, AuditRecord, Event

pytestmark = pytest.mark.usefixtures("engine")
HTML = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def user_with(*codenames, name="u"):
    user = User.objects.create_user(name, password="pw")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def operator(client):
    client.force_login(user_with("operate_instance", "approve_instance", name="olga"))
    return client


@pytest.fixture
def viewer(client):
    client.force_login(user_with(name="vic"))
    return client


@pytest.mark.parametrize("url", ["/", "/instances/", "/inbox/", "/instances/t-waiter/x/"])
def test_every_page_needs_a_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_actions_need_a_login_and_post(client):
    get_workflow("t-waiter").create(id="w")
    assert client.post("/instances/t-waiter/w/terminate/").status_code == 302
    assert get_workflow("t-waiter").get("w").status()["status"] == "queued"


def test_the_overview_shows_each_workflow_with_counts(viewer):
    get_workflow("t-waiter").create(id="w1")
    run()
    page = viewer.get("/").content.decode()
    assert "t-waiter" in page and "1 waiting" in page and "no instances yet" in page


def test_the_list_filters_by_workflow_status_id_and_date(viewer):
    get_workflow("t-waiter").create_batch([{"id": "alpha-1"}, {"id": "beta-2"}])
    get_workflow("t-counter").create(id="alpha-3", params={"steps": 1})
    run()
    page = viewer.get("/instances/?workflow=t-waiter&status=waiting&q=alpha").content.decode()
    assert "alpha-1" in page and "beta-2" not in page and "alpha-3" not in page
    today = clock.now().date().isoformat()
    assert "alpha-3" in viewer.get(f"/instances/?from={today}&to={today}").content.decode()
    old = viewer.get("/instances/?to=2000-01-01")
    assert old.status_code == 200 and "No instances match these filters." in old.content.decode()
    assert "is not a date" in viewer.get("/instances/?from=yesterday").content.decode()


def test_live_updates_render_only_the_rows(viewer):
    get_workflow("t-waiter").create(id="w1")
    fragment = viewer.get(
        "/instances/?workflow=t-waiter", headers={"HX-Request": "true", "HX-Target": "instance-rows"}
    ).content.decode()
    assert "w1" in fragment and "<html" not in fragment and "<tr " in fragment


def test_older_pages_follow_the_cursor(viewer):
    get_workflow("t-waiter").create_batch([{"id": f"p{i:02}"} for i in range(60)])
    first = viewer.get("/instances/").content.decode()
    assert "Older →" in first
    cursor = first.split("cursor=")[1].split('"')[0].replace("&amp;", "&")
    second = viewer.get(f"/instances/?cursor={cursor}").content.decode()
    assert "p00" in second and "p59" not in second and "← Newest" in second


def test_bulk_actions_need_the_operator_permission(client):
    get_workflow("t-waiter").create_batch([{"id": "b1"}, {"id": "b2"}])
    client.force_login(user_with(name="nobody"))
    assert client.post("/instances/bulk/", {"action": "terminate", "selected": ["t-waiter/b1"]}).status_code == 403
    client.force_login(user_with("operate_instance", name="op"))
    response = client.post(
        "/instances/bulk/", {"action": "terminate", "selected": ["t-waiter/b1", "t-waiter/b2"]}, follow=True
    )
    assert "Terminate requested for 2 instance(s)." in response.content.decode()
    assert get_workflow("t-waiter").get("b1").status()["status"] == "terminated"
    terminated = AuditRecord.objects.filter(action="terminate")
    assert sorted(terminated.values_list("instance_key", "actor", "channel")) == [
        ("b1", "op", "dashboard"), ("b2", "op", "dashboard"),
    ]  # fmt: skip


def test_the_timeline_shows_steps_attempts_and_errors(viewer):
    get_workflow("t-flaky").create(id="f1", params={"fail": 1, "retries": {"limit": 1, "delay": 30}})
    run()
    page = viewer.get("/instances/t-flaky/f1/").content.decode()
    assert (
        "retrying" in page
        and "ConnectionError" in page
        and "attempt 1 failed" in page
        and "retried after 30.0 s" in page
    )
    assert 'hx-trigger="every 2s' in page  # live while not finished


def test_a_finished_instance_stops_polling(viewer):
    get_workflow("t-counter").create(id="c1", params={"steps": 1})
    run()
    response = viewer.get("/instances/t-counter/c1/", headers={"HX-Request": "true", "HX-Target": "instance-live"})
    page = response.content.decode()
    assert response.status_code == 286, "htmx stops polling on 286"
    assert 's-complete">complete<' in page and "hx-trigger" not in page and "<html" not in page


def test_nothing_a_workflow_returns_can_inject_html(operator):
    get_workflow("t-hostile").create(id="h1", params={"html": HTML})
    run()
    get_workflow("t-hostile").get("h1").send_event("go", {"html": HTML})
    run()
    for url in ("/instances/t-hostile/h1/", "/inbox/", "/instances/", "/", "/inbox/?tab=all"):
        page = operator.get(url).content.decode()
        assert "<script>alert" not in page and "<img src=x" not in page, url
    detail = operator.get("/instances/t-hostile/h1/").content.decode()
    assert (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in detail
        or "&lt;script&gt;alert(\\&quot;x\\&quot;)" in detail
    )
    request_id = approvals.pending()[0].id
    decided = operator.post(f"/approvals/{request_id}/decide/", {"decision": "approve", f"r{request_id}-comment": HTML})
    assert decided.status_code == 302 and ApprovalDecision.objects.get(request_id=request_id).comment == HTML
    run()
    assert get_workflow("t-hostile").get("h1").status()["status"] == "complete"
    for url in ("/instances/t-hostile/h1/", "/inbox/?tab=decided&decider=any"):
        assert "<script>alert" not in operator.get(url).content.decode(), url


def test_operators_pause_resume_terminate_restart_and_send_events(operator):
    get_workflow("t-waiter").create(id="w1")
    run()
    assert (
        "Pause requested; the instance is now paused."
        in operator.post("/instances/t-waiter/w1/pause/", follow=True).content.decode()
    )
    operator.post("/instances/t-waiter/w1/resume/")
    run()
    response = operator.post("/instances/t-waiter/w1/send-event/", {"type": "go", "payload": "{not json"}, follow=True)
    assert "The payload is not valid JSON" in response.content.decode() and not Event.objects.exists()
    operator.post("/instances/t-waiter/w1/send-event/", {"type": "go", "payload": '{"ok": 1}'})
    run()
    assert get_workflow("t-waiter").get("w1").status()["output"] == [{"ok": 1}]
    operator.post("/instances/t-waiter/w1/restart/")
    assert get_workflow("t-waiter").get("w1").status()["status"] == "queued"
    operator.post("/instances/t-waiter/w1/terminate/")
    by_operator = AuditRecord.objects.filter(channel="dashboard").order_by("pk")
    assert list(by_operator.values_list("action", flat=True)) == [
        "pause",
        "resume",
        "send_event",
        "restart",
        "terminate",
    ]
    assert get_workflow("t-waiter").get("w1").status()["status"] == "terminated"
    page = operator.get("/instances/t-waiter/w1/").content.decode()
    assert '<span class="badge s-terminated">terminated</span>' in page
    assert "/instances/t-waiter/w1/terminate/" not in page, "a terminated instance offers no Terminate button"


def test_retry_from_the_failed_step_keeps_earlier_results(operator):
    from tests.testapp.ledger import count, ledger_dir

    get_workflow("t-fixable").create(id="fx1")
    run()
    assert get_workflow("t-fixable").get("fx1").status()["status"] == "errored"
    assert "Retry from failed step" in operator.get("/instances/t-fixable/fx1/").content.decode()
    open(f"{ledger_dir()}/fx1.fixed", "w").close()  # the cause is fixed
    operator.post("/instances/t-fixable/fx1/retry/")
    run()
    assert get_workflow("t-fixable").get("fx1").status()["output"] == ["prepared", "done"]
    assert count("fx1", "prepare") == 1 and count("fx1", "call") == 3


def test_run_now_skips_a_retry_delay(operator):
    get_workflow("t-flaky").create(id="f3", params={"fail": 1, "retries": {"limit": 1, "delay": 3600}})
    run()
    assert "Run now" in operator.get("/instances/t-flaky/f3/").content.decode()
    operator.post("/instances/t-flaky/f3/run-now/")
    run()
    assert get_workflow("t-flaky").get("f3").status()["output"] == 2


def test_viewers_see_no_buttons_and_get_403_when_posting_anyway(viewer):
    get_workflow("t-waiter").create(id="w1")
    run()
    page = viewer.get("/instances/t-waiter/w1/").content.decode()
    assert "Terminate" not in page and "Approve" not in page
    for name in ("pause", "terminate", "restart", "retry", "run-now", "send-event"):
        assert viewer.post(f"/instances/t-waiter/w1/{name}/").status_code == 403
    assert viewer.get("/inbox/?tab=all").status_code == 403
