"""Operators fix what failed, at scale: resolve a step by hand, retry with edited params, find
instances by business keys, act on every instance of a filter as a background job, save views,
and read a big instance's timeline."""

import io
import json
import os
import uuid

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command

from api.models import ApiToken
from tests.helpers import run, start
from tests.testapp.ledger import count, ledger_dir
from workflows import InvalidState, WorkflowError, acting, audit_log, bulk_jobs, count_instances, list_instances
from workflows.models import BulkJobItem, InstanceAttribute

pytestmark = pytest.mark.usefixtures("engine")


@pytest.fixture
def operator(db):
    user = User.objects.create_user("olga", password="pw")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["operate_instance", "send_event"]))
    return User.objects.get(pk=user.pk)


def failed(n=1, prefix="fx"):
    """n errored t-fixable instances: ids <prefix><i>-<random> (marker files outlive a test)."""
    tag = uuid.uuid4().hex[:6]
    handles = [start("t-fixable", id=f"{prefix}{i}-{tag}") for i in range(n)]
    run()
    assert {h.status()["status"] for h in handles} == {"errored"}
    return handles


# --------------------------------------------------------------------------- resolve and retry


def test_a_failed_step_resolved_by_hand_carries_the_instance_on(operator):
    (handle,) = failed()
    with acting(operator, "dashboard"):
        handle.resolve_step("call", "typed by olga", note="the service was down; done by hand")
    run()
    status = handle.status()
    assert status["status"] == "complete" and status["output"] == ["prepared", "typed by olga"]
    call = next(s for s in handle.describe()["steps"] if s["name"] == "call")
    assert call["resolution"]["by"] == "olga" and "done by hand" in call["resolution"]["note"]
    assert [a["error"]["name"] for a in call["attempts"]] == ["ConnectionError", "ConnectionError"]
    assert count(handle.id, "call") == 2, "resolving runs nothing"
    assert audit_log(instance_id=handle.id)[-1]["action"] == "resolve_step"


def test_resolve_is_refused_for_a_step_that_did_not_fail_or_an_instance_that_is_not_stuck():
    (handle,) = failed()
    with pytest.raises(InvalidState, match="only a failed"):
        handle.resolve_step("prepare", "x")
    with pytest.raises(InvalidState, match="not found"):
        handle.resolve_step("nope", "x")
    with pytest.raises(WorkflowError, match="not serialisable|cannot be stored|not JSON"):
        handle.resolve_step("call", object())
    gone = start("t-waiter")
    gone.terminate()
    with pytest.raises(InvalidState, match="only an errored or waiting"):
        gone.resolve_step("x", 1)


def test_a_step_waiting_to_retry_can_be_resolved_too():
    handle = start("t-flaky", {"fail": 5, "retries": {"limit": 5, "delay": 3600}})
    run()
    assert handle.status()["status"] == "waiting"
    handle.resolve_step(handle.describe()["steps"][0]["name"], {"ok": True})
    run()
    assert handle.status()["status"] == "complete"


def test_retry_with_edited_params_keeps_the_id_and_the_old_params_in_the_audit():
    handle = start("t-fixable", {"pause": 0}, id="edit-1")
    run()
    open(os.path.join(ledger_dir(), "edit-1.fixed"), "w").close()
    handle.restart(from_step=handle.failed_step(), params={"pause": 0, "edited": True})
    run()
    story = handle.describe()
    assert story["status"] == "complete" and story["params"] == {"pause": 0, "edited": True}
    restart = [r for r in audit_log(instance_id="edit-1") if r["action"] == "restart"][0]
    assert restart["details"]["old_params"] == {"pause": 0}
    assert restart["details"]["from_step"] == "call"
    assert count("edit-1", "prepare") == 1, "kept steps do not run again"


# --------------------------------------------------------------------------- search attributes


def test_an_id_prefix_finds_exactly_the_ids_that_start_with_it_case_sensitively():
    for instance_id in ["ab", "ab-1", "ab_2", "abc", "Ab-3", "a", "b-ab"]:
        start("t-counter", {"steps": 0}, id=instance_id)
    assert sorted(i["id"] for i in list_instances(id_prefix="ab")["instances"]) == ["ab", "ab-1", "ab_2", "abc"]
    assert count_instances(id_prefix="ab-") == 1
    assert count_instances(id_prefix="Ab") == 1


def test_instances_are_found_by_their_business_keys(client, operator):
    for n, customer in enumerate(["acme", "globex", "acme"]):
        start("t-order", {"customer": customer, "region": "eu", "n": n, "priority": n}, id=f"o{n}")
    run()
    found = list_instances("t-order", attributes={"customer": "acme"})["instances"]
    assert sorted(i["id"] for i in found) == ["o0", "o2"]
    assert [i["id"] for i in list_instances(attributes={"order_id": "ord-1"})["instances"]] == ["o1"]
    assert count_instances(attributes={"customer": "acme", "priority": 2}) == 1
    token = ApiToken.issue(operator)[1]
    answer = client.get(
        "/api/workflows/t-order/instances?attr.customer=globex", headers={"Authorization": f"Bearer {token}"}
    )
    assert [i["id"] for i in answer.json()["instances"]] == ["o1"]
    out = io.StringIO()
    call_command("workflows", "instances", "list", "t-order", "--attr", "order_id=ord-2", stdout=out)
    assert "o2" in out.getvalue() and "o0" not in out.getvalue()
    client.force_login(operator)
    page = client.get("/instances/?attr=customer%3Dacme+region%3Deu").content.decode()
    assert "2 instances match" in page


def test_bad_attributes_are_refused_with_the_rule():
    with pytest.raises(WorkflowError, match="1 to 64 characters"):
        list_instances(attributes={"": "x"})
    with pytest.raises(WorkflowError, match="at most 200 characters"):
        list_instances(attributes={"customer": "x" * 201})
    assert InstanceAttribute.objects.count() == 0


# --------------------------------------------------------------------------- bulk jobs


def test_a_bulk_retry_acts_on_every_matching_instance_once_and_reports_each(operator):
    handles = failed(12)
    for i in (3, 7):
        open(os.path.join(ledger_dir(), f"{handles[i].id}.fixed"), "w").close()
    with acting(operator, "dashboard"):
        job = bulk_jobs.start("retry", {"workflow": "t-fixable", "status": "errored", "failed_step": "call"})
    run()
    job = bulk_jobs.get(job.id)
    assert (job.status, job.total, job.done, job.refused) == ("done", 12, 12, 0)
    assert {i["message"] for i in bulk_jobs.items(job.id)} == {"retrying from step 'call'"}
    records = [r for r in audit_log(workflow="t-fixable") if r["details"].get("bulk_job") == job.id]
    assert len(records) == 12 and {r["actor"] for r in records} == {"olga"}
    # Those fixed completed; the others failed again, and a second job would retry them again.
    assert count_instances("t-fixable", status="complete") == 2


def test_overlapping_jobs_never_act_twice_on_one_instance(operator):
    handles = failed(5)
    first = bulk_jobs.start("retry", {"workflow": "t-fixable"})
    second = bulk_jobs.start("retry", {"workflow": "t-fixable"})  # the same five, at the same time
    run()
    jobs = [bulk_jobs.get(first.id), bulk_jobs.get(second.id)]
    assert sum(j.done for j in jobs) == 5 and sum(j.skipped for j in jobs) == 5
    assert BulkJobItem.objects.filter(status="done").values("instance_pk").distinct().count() == 5
    for handle in handles:  # each retried once: it ran "call" twice at first, twice more after one retry
        assert count(handle.id, "call") == 4


def test_a_refused_item_says_why_and_cancel_stops_between_items(operator):
    (stuck,) = failed(1, prefix="c")
    gone = start("t-waiter", id="c-gone")
    gone.terminate()
    job = bulk_jobs.start("pause", {"id_prefix": "c"})
    run()
    items = {i["instance_id"]: (i["status"], i["message"]) for i in bulk_jobs.items(job.id)}
    assert items[stuck.id] == ("refused", "only a waiting or running instance can be paused; it is errored")
    assert items["c-gone"] == ("refused", "only a waiting or running instance can be paused; it is terminated")
    later = bulk_jobs.start("resume", {"id_prefix": "c"})
    assert bulk_jobs.cancel(later.id).status == "cancelled"
    run()
    assert bulk_jobs.get(later.id).done == 0 and stuck.status()["status"] == "errored"


def test_a_bulk_resolve_needs_the_step_and_gives_every_instance_the_output(operator):
    failed(3, prefix="rs")
    with pytest.raises(WorkflowError, match="failed_step"):
        bulk_jobs.start("resolve", {"workflow": "t-fixable"}, output=1)
    job = bulk_jobs.start("resolve", {"workflow": "t-fixable", "failed_step": "call"}, output="by hand", note="outage")
    run()
    assert bulk_jobs.get(job.id).done == 3
    assert {h["status"] for h in list_instances("t-fixable")["instances"]} == {"complete"}


def test_bulk_jobs_through_the_api_and_the_cli(client, operator):
    failed(4, prefix="api")
    token = ApiToken.issue(operator)[1]
    headers = {"Authorization": f"Bearer {token}"}
    started = client.post(
        "/api/bulk-jobs", data=json.dumps({"action": "retry", "filter": {"id_prefix": "api0"}}),
        content_type="application/json", headers=headers,
    )  # fmt: skip
    assert started.status_code == 202
    run()
    job = client.get(f"/api/bulk-jobs/{started.json()['id']}?items=done", headers=headers).json()
    assert (job["status"], job["done"], [i["instance_id"][:4] for i in job["items"]]) == ("done", 1, ["api0"])
    out = io.StringIO()
    call_command("workflows", "instances", "terminate", "--filter", "workflow=t-fixable,status=errored", stdout=out)
    assert "Dry run: terminate would apply to 4 instance(s)" in out.getvalue()  # the retried one failed again
    assert count_instances("t-fixable", status="errored") == 4, "a dry run changes nothing"


def test_the_dashboard_confirms_the_exact_count_then_shows_the_job(client, operator):
    failed(3, prefix="ui")
    client.force_login(operator)
    confirm = client.get("/bulk-jobs/new/?workflow=t-fixable&status=errored&action=retry").content.decode()
    assert "<strong>3</strong> instances match" in confirm
    response = client.post(
        "/bulk-jobs/new/", {"workflow": "t-fixable", "status": "errored", "action": "retry", "confirmed": "yes"}
    )
    assert response.status_code == 302
    run()
    page = client.get(response["Location"]).content.decode()
    assert "3</strong> of <strong>3</strong>" in page and "100 %" in page
    csv_text = client.get(response["Location"] + "results.csv").content.decode()
    assert csv_text.count("\n") == 4 and "done" in csv_text


def test_saved_views_appear_in_the_navigation(client, operator):
    client.force_login(operator)
    client.post("/views/save/", {"name": "Failed imports", "query": "workflow=t-fixable&status=errored&cursor=x"})
    page = client.get("/").content.decode()
    assert "Failed imports" in page and "workflow=t-fixable&amp;status=errored" in page and "cursor" not in page


# --------------------------------------------------------------------------- the chart


def test_a_big_instance_draws_a_lane_per_step_name_and_pages_its_step_list(client, operator):
    handle = start("t-counter", {"steps": 150})
    run()
    client.force_login(operator)
    page = client.get(f"/instances/t-counter/{handle.id}/").content.decode()
    assert "90 more steps of other names not drawn" in page, "the chart draws 60 lanes, the list has every step"
    assert "1–100 of 15" in page and "later steps" in page
    second = client.get(f"/instances/t-counter/{handle.id}/?steps_from=100").content.decode()
    assert "101–" in second and "earlier steps" in second


def test_zooming_shows_a_range_and_links_back(client, operator):
    handle = start("t-counter", {"steps": 20})
    run()
    client.force_login(operator)
    page = client.get(f"/instances/t-counter/{handle.id}/?zoom=0,0.002").content.decode()
    assert "zoom out" in page and "whole run" in page and "Showing 0 ms to" in page
    assert client.get(f"/instances/t-counter/{handle.id}/?zoom=bad").status_code == 200


def test_child_instances_are_marked_where_they_started(client, operator):
    parent = start("t-parent")
    run()
    client.force_login(operator)
    page = client.get(f"/instances/t-parent/{parent.id}/").content.decode()
    assert "child instances" in page and "started here" in page
