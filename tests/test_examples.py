"""The seed's patterns (examples/workflows.py), each run for real.

Where a long wait is the point (the 7-day trial, the 48-hour approval timeout, the 30 s
backoff), the testing toolkit skips time in-process; everything else runs in real worker
processes against the real database, and checks the real side effects: the bucket, the
records and approvals tables, the mail that was sent.
"""

import http.server
import json
import threading
import time

import pytest
from django.contrib.auth.models import Permission
from django.contrib.auth.models import User as Account

from examples.demo import demo_image
from examples.models import Approval, Record, User
from tests.mail import sent_to
from workflows import approvals, get_workflow
from workflows.bindings import env
from workflows.models import Instance
from workflows.schedules import fire, sync_schedules
from workflows.testing import introspect_workflow_instance


@pytest.fixture
def json_source():
    """A local HTTP server that serves rows as JSON (failing the first ``fail`` requests)."""
    state = {"rows": [], "fail": 0, "served": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            state["served"] += 1
            if state["served"] <= state["fail"]:
                self.send_response(503)
                self.end_headers()
                return
            body = json.dumps(state["rows"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/rows.json"
    yield state
    server.shutdown()


def rows(n):
    return [{"id": i, "name": f"Item {i}", "value": i * 3} for i in range(1, n + 1)]


# --------------------------------------------------------------------------- in-process


def test_user_lifecycle_mails_a_trial_user_twice_and_a_converted_one_once(workflow_runner):
    User.objects.create(id="u1", email="trial@example.com", subscription_status="trial")
    User.objects.create(id="u2", email="paid@example.com", subscription_status="active")
    handle = get_workflow("user-lifecycle")
    for uid, email in (("u1", "trial@example.com"), ("u2", "paid@example.com")):
        with introspect_workflow_instance(handle, f"life-{uid}") as instance:
            handle.create(id=f"life-{uid}", params={"userId": uid, "email": email})
            assert instance.wait_for_status("complete")  # skips the 7 days
    assert sent_to("trial@example.com") == ["Welcome!", "Trial ending"]
    assert sent_to("paid@example.com") == ["Welcome!"]


def test_an_approval_that_nobody_answers_is_auto_rejected_after_48_hours(workflow_runner):
    handle = get_workflow("approval")
    with introspect_workflow_instance(handle, "req-timeout") as instance:
        handle.create(id="req-timeout", params={"userId": "u9", "summary": "x"})
        assert instance.wait_for_status("complete")
        assert instance.get_output() == "auto-rejected"
        assert Approval.objects.get(id="req-timeout").status == "auto-rejected"


def test_the_extract_step_retries_with_30_second_exponential_backoff(workflow_runner, json_source):
    json_source.update(rows=rows(3), fail=2)
    handle = get_workflow("data-pipeline")
    with introspect_workflow_instance(handle, "pipe-retry") as instance:
        handle.create(id="pipe-retry", params={"sourceUrl": json_source["url"]})
        assert instance.wait_for_status("complete")
        extract = next(s for s in instance._handle().describe()["steps"] if s["name"] == "extract")
        assert [a["retry_delay"] for a in extract["attempts"]] == [30, 60, None]
        assert extract["attempts"][0]["error"] == {"name": "ConnectionError", "message": "Fetch failed: HTTP 503"}


def test_a_cron_slot_creates_one_instance_with_event_schedule_even_if_it_fires_twice(workflow_runner):
    slot = "2026-01-05T09:00:00+00:00"
    assert fire("daily", "0 9 * * *", slot) == ["daily-1767603600000"]
    assert fire("daily", "0 9 * * *", slot) == []
    instance = Instance.objects.get(instance_id="daily-1767603600000")
    assert instance.schedule == {"cron": "0 9 * * *", "scheduled_time": 1767603600000}
    with introspect_workflow_instance("daily", "daily-1767603600000") as introspector:
        assert introspector.wait_for_step_result("daily task") == {"slot": 1767603600000}


def test_syncing_schedules_registers_each_cron_schedule_with_django_q(db):
    from django_q.models import Schedule

    sync_schedules()
    schedule = Schedule.objects.get(name="workflows:daily:0 9 * * *")
    assert (schedule.func, schedule.cron, schedule.schedule_type) == (
        "workflows.schedules.fire",
        "0 9 * * *",
        Schedule.CRON,
    )
    assert schedule.intended_date_kwarg == "scheduled_time"


def test_the_naive_race_is_decided_by_the_first_step_to_finish(workflow_runner):
    handle = get_workflow("race-naive")
    with introspect_workflow_instance(handle, "naive") as instance:
        handle.create(id="naive")
        assert instance.wait_for_status("complete")
        assert instance.get_output() == {"winner": "fast"}


# --------------------------------------------------------------------------- real workers

worker = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait(runner, handle, status, timeout=60):
    return runner.wait(lambda: handle.status()["status"] == status, f"{handle.id} to be {status}", timeout)


@pytest.mark.parametrize("approved", [True, False])
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_image_processing_publishes_only_an_approved_image(worker_runner, approved):
    key = f"uploads/photo-{approved}.png"
    env.BUCKET.put(key, demo_image())
    handle = get_workflow("image-processing").create(params={"imageKey": key})
    wait(worker_runner, handle, "waiting")
    description = next(s for s in handle.describe()["steps"] if s["name"] == "generate description")["output"][
        "description"
    ]
    assert "320x200 PNG image" in description and "offline backend" in description
    (request,) = approvals.pending()
    assert request.title == f"Publish {key}?" and request.details["Image"] == approvals.Image(key)
    assert request.details["What the AI saw"] == description
    approver = Account.objects.create_user("reviewer")
    approver.user_permissions.add(Permission.objects.get(codename="approve_instance"))
    approvals.decide(request.id, user=Account.objects.get(pk=approver.pk), approved=approved)
    wait(worker_runner, handle, "complete")
    published = env.BUCKET.get(f"public/{key}")
    if approved:
        assert published is not None and published.read() == demo_image()
        assert handle.status()["output"]["published"] == f"public/{key}"
    else:
        assert published is None and handle.status()["output"]["published"] is False


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_data_pipeline_stages_the_data_in_the_bucket_and_loads_records_in_batches(worker_runner, json_source):
    json_source["rows"] = rows(250)
    handle = get_workflow("data-pipeline").create(params={"sourceUrl": json_source["url"]})
    wait(worker_runner, handle, "complete")
    output = handle.status()["output"]
    assert output["loaded"] == 250 and output["ref"]["key"].startswith("processed/")
    assert len(env.BUCKET.get(output["ref"]["key"]).json()) == 250
    assert Record.objects.count() == 250
    assert json.loads(Record.objects.get(id=7).normalized) == {"name": "item 7", "value": 21}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_human_approval_updates_the_approvals_table(worker_runner):
    yes = get_workflow("approval").create(id="req-yes", params={"userId": "u1", "summary": "a"})
    no = get_workflow("approval").create(id="req-no", params={"userId": "u2", "summary": "b"})
    for handle in (yes, no):
        wait(worker_runner, handle, "waiting")
    assert Approval.objects.get(id="req-yes").status == "pending"
    manager = Account.objects.create_user("u1")  # the requester of req-yes
    manager.user_permissions.add(Permission.objects.get(codename="approve_instance"))
    manager = Account.objects.get(pk=manager.pk)
    requests = {r.instance_id: r for r in approvals.pending()}
    assert requests["req-yes"].title == "A request from u1: a" and requests["req-yes"].requested_by == "u1"
    with pytest.raises(approvals.DecisionRefused, match="own request"):
        approvals.decide(requests["req-yes"].id, user=manager, approved=True)
    other = Account.objects.create_user("u9")
    other.user_permissions.add(Permission.objects.get(codename="approve_instance"))
    other = Account.objects.get(pk=other.pk)
    approvals.decide(requests["req-yes"].id, user=other, approved=True)
    approvals.decide(requests["req-no"].id, user=manager, approved=False)
    wait(worker_runner, yes, "complete")
    wait(worker_runner, no, "complete")
    assert dict(Approval.objects.values_list("id", "status")) == {"req-yes": "approved", "req-no": "rejected"}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_fan_out_steps_run_at_the_same_time_in_several_worker_processes(worker_runner):
    for i in range(8):
        env.BUCKET.put(f"fan/file-{i}.bin", bytes(range(256)) * 16)
    handle = get_workflow("fan-out").create(params={"prefix": "fan/"})
    wait(worker_runner, handle, "complete", timeout=120)
    assert handle.status()["output"] == {"processed": 8, "bytes": 8 * 4096}
    outputs = [s["output"] for s in handle.describe()["steps"] if s["name"].startswith("process")]
    assert len({o["pid"] for o in outputs}) >= 2, "the steps should have been spread over worker processes"
    first_end = min(o["ended"] for o in outputs)
    assert sum(o["started"] < first_end for o in outputs) >= 4, "several steps should have been running at once"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_parent_starts_its_child_exactly_once_and_the_child_knows_its_parent(worker_runner):
    parent = get_workflow("parent").create(id="p1", params={"data": {"order": 42}})
    wait(worker_runner, parent, "complete")
    child = get_workflow("child").get("child-p1")
    wait(worker_runner, child, "complete")
    assert child.status()["output"] == {"received": {"order": 42}}
    assert Instance.objects.filter(workflow_name="child").count() == 1
    assert Instance.objects.filter(instance_id="child-p1", parent_workflow="parent", parent_instance_id="p1").exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_race_winner_is_frozen_in_a_step_and_survives_replay(worker_runner):
    handle = get_workflow("race").create()
    wait(worker_runner, handle, "complete")
    assert handle.status()["output"] == {"winner": "fast"}
    assert [s["name"] for s in handle.describe()["steps"]] == ["race", "let the loser finish"]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_user_lifecycle_with_a_real_worker_and_the_sleep_skipped(worker_runner):
    User.objects.create(id="u7", email="real@example.com", subscription_status="trial")
    handle = get_workflow("user-lifecycle")
    with introspect_workflow_instance(handle, "life-real", runner=worker_runner) as instance:
        instance.modify(lambda m: m.disable_sleeps())
        handle.create(id="life-real", params={"userId": "u7", "email": "real@example.com"})
        assert instance.wait_for_status("complete", timeout=60)
    assert sent_to("real@example.com") == ["Welcome!", "Trial ending"]


del worker, time


def test_the_flaky_export_fails_until_its_switch_is_on_then_retrying_the_failed_step_completes(workflow_runner):
    from django.core.management import call_command

    handle = get_workflow("flaky-export")
    with introspect_workflow_instance(handle, "export-1") as instance:
        instance.modify(lambda m: m.disable_retry_delays())
        handle.create(id="export-1")
        with pytest.raises(ConnectionError, match="switch it on with `python manage.py demo_switch export-service on`"):
            instance.wait_for_step_result("export")
        assert instance.wait_for_status("errored")
        call_command("demo_switch", "export-service", "on")
        handle.get("export-1").restart(from_step=handle.get("export-1").failed_step())
        assert instance.wait_for_status("complete")
        assert instance.get_output() == "exported"
        story = handle.get("export-1").describe()
        assert len(story["steps"][0]["earlier_runs"][0]["attempts"]) == 3, "the failed attempts are kept"


def test_the_expense_example_needs_two_finance_approvals_above_a_thousand_and_books_the_form(workflow_runner):
    from decimal import Decimal

    from django.contrib.auth.models import Group

    finance = Group.objects.create(name="finance")
    ada, bob, dave = (Account.objects.create_user(n) for n in ("ada", "bob", "dave"))
    ada.groups.add(finance)
    bob.groups.add(finance)
    dave.groups.add(finance)  # even in finance, dave may not approve his own expense
    ada, bob, dave = (Account.objects.get(pk=u.pk) for u in (ada, bob, dave))
    handle = get_workflow("expense")
    with introspect_workflow_instance(handle, "laptop") as instance:
        handle.create(id="laptop", params={"userId": "dave", "summary": "Laptop", "amount": 1900})
        workflow_runner.run_until_idle()
        (request,) = approvals.pending(ada)
        assert (request.title, request.quorum, request.form_path) == (
            "Expense from dave: Laptop", 2, "examples.workflows.ExpenseDecisionForm",
        )  # fmt: skip
        with pytest.raises(approvals.DecisionRefused, match="own request"):
            approvals.decide(request.id, user=dave, approved=True, data={"approved_amount": "1", "cost_centre": "ops"})
        form = {"approved_amount": "1850.00", "cost_centre": "rnd"}
        approvals.decide(request.id, user=ada, approved=True, data=form)
        assert instance.status() == "waiting"
        approvals.decide(request.id, user=bob, approved=True, data=form, comment="second signature")
        assert instance.wait_for_status("complete")
        output = instance.get_output()
        assert output == {
            "paid": True, "amount": Decimal("1850.00"), "cost_centre": "rnd", "to": "dave",
            "approved_by": ["ada", "bob"],
        }  # fmt: skip
    with introspect_workflow_instance(handle, "ticket") as small:
        handle.create(id="ticket", params={"userId": "dave", "summary": "Ticket", "amount": 420})
        workflow_runner.run_until_idle()
        (request,) = approvals.pending(bob)
        approvals.decide(request.id, user=bob, approved=False, comment="use the team budget")
        assert small.wait_for_status("complete")
        assert small.get_output() == {"paid": False, "rejected_by": "bob", "reason": "use the team budget"}


def test_an_unanswered_expense_reminds_finance_escalates_to_the_directors_and_rejects_itself(workflow_runner):
    from django.contrib.auth.models import Group
    from django.core import mail

    for name, group in (("ada", "finance"), ("carol", "directors")):
        Account.objects.create_user(name, email=f"{name}@example.com").groups.add(
            Group.objects.get_or_create(name=group)[0]
        )
    handle = get_workflow("expense")
    with introspect_workflow_instance(handle, "dinner") as instance:
        handle.create(id="dinner", params={"userId": "dave", "summary": "Dinner", "amount": 80})
        workflow_runner.run_until_idle()
        workflow_runner.advance("48h")
        assert instance.wait_for_status("complete")
        output = instance.get_output()
        assert (output["paid"], output["rejected_by"]) == (False, "timeout")
        assert output["reason"].startswith("No decision by the deadline")
    subjects = [(m.to[0], m.subject) for m in mail.outbox]
    assert subjects[0] == ("ada@example.com", "Approval needed: Expense from dave: Dinner")
    assert ("ada@example.com", "Reminder: approval needed: Expense from dave: Dinner") in subjects
    assert ("carol@example.com", "Escalated to you: Expense from dave: Dinner") in subjects
    assert sum(1 for to, s in subjects if to == "ada@example.com" and s.startswith("Reminder")) == 5  # 8 h .. 40 h


SYNC_AT = """
import sys, time, django
django.setup()
from workflows.schedules import sync_schedules
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
sync_schedules()
"""


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_workers_starting_at_the_same_moment_register_each_schedule_once():
    import os
    import subprocess
    import sys
    import time

    from django.conf import settings
    from django_q.models import Schedule

    from workflows.testing import database_url

    env = {**os.environ, "DATABASE_URL": database_url()}
    start_at = str(time.time() + 3)
    procs = [
        subprocess.Popen([sys.executable, "-c", SYNC_AT, start_at], cwd=settings.BASE_DIR, env=env) for _ in range(4)
    ]
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    assert Schedule.objects.filter(name="workflows:daily:0 9 * * *").count() == 1


def test_syncing_removes_duplicate_schedules_an_older_race_left(db):
    from django_q.models import Schedule

    for _ in range(3):
        Schedule.objects.create(
            name="workflows:daily:0 9 * * *", func="x", schedule_type=Schedule.CRON, cron="0 9 * * *"
        )
    sync_schedules()
    (left,) = Schedule.objects.filter(name="workflows:daily:0 9 * * *")
    assert left.func == "workflows.schedules.fire"
