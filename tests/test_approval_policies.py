"""Approvals reach people: notices when a request opens, reminders, escalation, a default at
the deadline, delegation to a stand-in, and personal decision links.

These run on the engine's test clock: a 48-hour policy takes milliseconds. The same timers
with real worker processes (kills, two workers) are in test_approval_policies_workers.py.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail

from tests.helpers import run, start
from workflows import WorkflowFatalError, approvals, clock, metrics_text
from workflows.approvals import DecisionRefused
from workflows.models import ApprovalRequest, Notification
from workflows.testing import InProcessRunner

pytestmark = pytest.mark.usefixtures("engine")


def later(**duration):
    """Let time pass on the engine's clock, firing each timer on the way (as real time would)."""
    InProcessRunner().advance(timedelta(**duration))


POLICY = {
    "approvers": ["group:finance"], "timeout": "48h", "remind_every": "8h", "escalate_after": "24h",
    "escalate_to": ["group:directors"], "on_timeout": "reject", "title": "Expense {n}", "n": 1,
}  # fmt: skip


@pytest.fixture
def people(db):
    """ada and bob in finance, carol a director, dave in neither; everyone has an address."""
    finance = Group.objects.create(name="finance")
    directors = Group.objects.create(name="directors")
    users = {
        name: User.objects.create_user(name, email=f"{name}@example.com", password="pw")
        for name in ("ada", "bob", "carol", "dave")
    }
    users["ada"].groups.add(finance)
    users["bob"].groups.add(finance)
    users["carol"].groups.add(directors)
    return users


def open_request(**changes):
    instance = start("t-approval", {**POLICY, **changes})
    assert run(instance)["status"] == "waiting"
    return instance, approvals.get(ApprovalRequest.objects.get(instance_key=instance.id).pk)


def told(kind=None, slot=None):
    """(recipient, kind, slot) of each notification sent, in order."""
    rows = Notification.objects.filter(status="sent").order_by("pk")
    if kind:
        rows = rows.filter(kind=kind)
    if slot is not None:
        rows = rows.filter(slot=slot)
    return [(n.recipient, n.kind, n.slot) for n in rows]


def mailed_to(name):
    return [m for m in mail.outbox if m.to == [f"{name}@example.com"]]


# --------------------------------------------------------------------------- notices and reminders


def test_every_approver_is_told_when_a_request_opens_by_mail_with_a_personal_link(people):
    instance, request = open_request()
    assert told() == [("ada", "opened", 0), ("bob", "opened", 0)]
    (message,) = mailed_to("ada")
    assert message.subject == "Approval needed: Expense 1"
    html = message.alternatives[0][0]
    link = next(word for word in message.body.split() if "/approvals/link/" in word)
    assert link.startswith("http") and link in html
    assert link != next(word for word in mailed_to("bob")[0].body.split() if "/approvals/link/" in word)
    assert "rejected automatically" in message.body


def test_reminders_go_out_at_each_slot_once_to_those_who_have_not_decided(people):
    instance, request = open_request()
    later(hours=7, minutes=59)
    assert told("reminder") == []
    later(minutes=1)
    assert told("reminder") == [("ada", "reminder", 1), ("bob", "reminder", 1)]
    run()
    run()
    assert len(told("reminder")) == 2  # once per slot, however often the engine looks
    approvals.decide(request.id, user=people["ada"], approved=True)  # quorum 1: closes it
    later(hours=8)
    assert told("reminder", slot=2) == []  # nothing after a decision
    assert ApprovalRequest.objects.get(pk=request.id).nudge_at is None


def test_a_reminder_skips_who_has_decided_and_the_subject_says_reminder(people):
    instance, request = open_request(quorum=2)
    approvals.decide(request.id, user=people["ada"], approved=True)
    later(hours=8)
    assert told("reminder") == [("bob", "reminder", 1)]
    assert mailed_to("bob")[-1].subject == "Reminder: approval needed: Expense 1"


def test_escalation_adds_the_directors_and_tells_them_and_they_may_decide(people):
    instance, request = open_request()
    later(hours=24)
    assert told("escalation") == [("carol", "escalation", 0)]
    assert told("reminder", slot=3) == [("ada", "reminder", 3), ("bob", "reminder", 3)]  # 24 h is also slot 3
    refreshed = approvals.get(request.id)
    assert refreshed.policy.escalated_at is not None
    assert refreshed.can_decide(people["carol"])
    assert mailed_to("carol")[0].subject == "Escalated to you: Expense 1"
    approvals.decide(request.id, user=people["carol"], approved=True, comment="fine")
    assert run(instance)["output"]["by"] == "carol"


def test_at_the_deadline_an_unanswered_request_rejects_itself_and_says_so(people):
    instance, request = open_request()
    later(hours=48)
    status = instance.status()
    assert status["status"] == "complete"
    payload = status["output"]
    assert (payload["approved"], payload["by"], payload["timed_out"]) == (False, "timeout", True)
    assert payload["decisions"][-1]["by"] == "timeout"
    assert "on_timeout" in payload["decisions"][-1]["comment"]
    closed = approvals.get(request.id)
    assert (closed.status, closed.closed_by) == ("rejected", "timeout")
    reminders = told("reminder")
    assert {slot for _, _, slot in reminders} == {1, 2, 3, 4, 5}  # 8 h .. 40 h; none at the deadline
    assert "workflows_approval_timeouts_total" in metrics_text()


def test_on_timeout_approve_approves_and_the_default_error_still_times_out(people):
    instance, _ = open_request(on_timeout="approve")
    later(hours=48)
    assert instance.status()["output"]["approved"] is True
    failing, _ = open_request(on_timeout="error")
    later(hours=48)
    assert "timed out" in failing.status()["output"]["timed_out"]


def test_reminders_pause_with_the_instance_and_move_on_by_the_paused_time(people):
    instance, request = open_request()
    later(hours=1)
    instance.pause()
    later(hours=20)
    assert told("reminder") == []
    instance.resume()
    run()
    later(hours=6, minutes=59)
    assert told("reminder") == []
    later(minutes=1)  # 8 h of unpaused time since opening
    assert len(told("reminder")) == 2


def test_a_terminated_instance_sends_nothing_more(people):
    instance, request = open_request()
    instance.terminate()
    later(hours=30)
    assert told("reminder") == told("escalation") == []


def test_with_no_notifiers_the_slots_still_pass_and_nothing_is_queued(people, settings):
    settings.WORKFLOWS = {**settings.WORKFLOWS, "APPROVAL_NOTIFIERS": []}
    instance, request = open_request()
    later(hours=8)
    assert Notification.objects.count() == 0
    assert approvals.get(request.id).policy.reminders_sent == 1


# --------------------------------------------------------------------------- delegation


def away(user, delegate, hours_from=0, hours_to=72):
    now = clock.now()
    return approvals.set_away(
        user, delegate=delegate, starts=now + timedelta(hours=hours_from), ends=now + timedelta(hours=hours_to)
    )


def test_an_away_approvers_delegate_is_told_sees_and_decides_on_their_behalf(people):
    away(people["ada"], people["dave"])
    instance, request = open_request()
    assert told() == [("bob", "opened", 0), ("dave", "opened", 0)]
    assert Notification.objects.get(recipient="dave").on_behalf_of == "ada"
    assert "who is away" in mailed_to("dave")[0].subject
    assert [r.id for r in approvals.pending(people["dave"])] == [request.id]
    approvals.decide(request.id, user=people["dave"], approved=True, comment="for ada")
    payload = run(instance)["output"]
    assert (payload["by"], payload["on_behalf_of"]) == ("dave", "ada")


def test_delegation_never_decides_twice_nor_lets_anyone_decide_their_own_request(people):
    away(people["ada"], people["bob"])
    instance, request = open_request(quorum=2)
    approvals.decide(request.id, user=people["bob"], approved=True)  # bob for himself (he is in finance)
    # One person is one voice: standing in for ada gives bob no second approval of a quorum of two.
    with pytest.raises(DecisionRefused) as caught:
        approvals.decide(request.id, user=people["bob"], approved=True)
    assert caught.value.reason == "already_decided"
    after = approvals.decide(request.id, user=people["ada"], approved=True)  # ada, back early, still may
    assert [(d.by, d.on_behalf_of) for d in after.decisions] == [("bob", ""), ("ada", "")]
    assert run(instance)["status"] == "complete"
    # On ada's own request bob decides once, for himself: never for ada.
    second, request2 = open_request(quorum=2, requested_by="ada")
    approvals.decide(request2.id, user=people["bob"], approved=True)
    with pytest.raises(DecisionRefused) as caught:
        approvals.decide(request2.id, user=people["bob"], approved=True)
    assert caught.value.reason == "already_decided"


def test_a_delegation_applies_only_inside_its_window(people):
    away(people["ada"], people["dave"], hours_from=10, hours_to=20)
    instance, request = open_request()
    assert approvals.pending(people["dave"]) == []
    assert not approvals.get(request.id).can_decide(people["dave"])
    later(hours=10)
    assert [r.id for r in approvals.pending(people["dave"])] == [request.id]
    later(hours=10)
    assert approvals.pending(people["dave"]) == []
    assert approvals.get(request.id).refusal(people["dave"]).reason == "not_approver"


def test_absences_are_checked_when_they_are_set(people):
    now = clock.now()
    with pytest.raises(Exception, match="must end after it starts"):
        approvals.set_away(people["ada"], delegate=people["bob"], starts=now, ends=now)
    with pytest.raises(Exception, match="yourself"):
        approvals.set_away(people["ada"], delegate=people["ada"], starts=now, ends=now + timedelta(days=1))
    away(people["ada"], people["bob"])
    with pytest.raises(Exception, match="already have an absence"):
        away(people["ada"], people["dave"])
    with pytest.raises(Exception, match="is away themselves"):
        away(people["bob"], people["ada"])  # bob covers ada; ada cannot hand her work to bob's absence
    (absence,) = approvals.absences(people["ada"])
    assert [a.user.username for a in approvals.standing_in_for(people["bob"])] == ["ada"]
    approvals.cancel_away(people["ada"], absence.pk)
    assert approvals.absences(people["ada"]) == []


# --------------------------------------------------------------------------- decision links


def link_token(name):
    (message,) = [m for m in mailed_to(name) if m.subject.startswith("Approval needed")]
    link = next(word for word in message.body.split() if "/approvals/link/" in word)
    return link.rstrip("/").rsplit("/", 1)[1]


def test_opening_a_link_shows_the_request_and_never_decides(people):
    instance, request = open_request()
    token = link_token("ada")
    for _ in range(3):  # a mail scanner, a preview bot, the person
        opened = approvals.open_link(token, people["ada"])
    assert (opened.request.id, opened.addressee) == (request.id, "ada")
    assert approvals.get(request.id).decisions == []
    approvals.decide_by_link(token, people["ada"], approved=True, comment="ok")
    decided = approvals.get(request.id)
    assert [(d.by, d.channel) for d in decided.decisions] == [("ada", "link")]


def link_refusal(token, user, **decision):
    with pytest.raises(DecisionRefused) as caught:
        if decision:
            approvals.decide_by_link(token, user, **decision)
        else:
            approvals.open_link(token, user)
    return caught.value.reason


def test_a_link_works_once_for_its_addressee_only_and_until_the_deadline(people):
    from django.contrib.auth.models import AnonymousUser

    instance, request = open_request(quorum=2)
    token = link_token("ada")
    assert link_refusal(token, people["bob"]) == "link_foreign"
    assert link_refusal(token, people["bob"], approved=True) == "link_foreign"
    assert link_refusal(token, AnonymousUser()) == "login_required"
    assert link_refusal(token[:-2] + "xx", people["ada"]) == "link_invalid"
    assert link_refusal("1:forged:signature", people["ada"]) == "link_invalid"
    approvals.decide_by_link(token, people["ada"], approved=True)
    assert link_refusal(token, people["ada"]) == "link_used"
    assert link_refusal(token, people["ada"], approved=True) == "link_used"
    bob_token = link_token("bob")
    later(hours=48, seconds=1)
    assert link_refusal(bob_token, people["bob"]) == "link_expired"


def test_a_refused_decision_through_a_link_leaves_the_link_usable(people):
    instance, request = open_request(form="spend")
    token = link_token("ada")
    assert link_refusal(token, people["ada"], approved=True, data={"amount": "-5"}) == "invalid_data"
    assert approvals.open_link(token, people["ada"]).request.is_open


def test_token_only_links_let_the_addressee_decide_without_logging_in(people, settings):
    from django.contrib.auth.models import AnonymousUser

    settings.WORKFLOWS = {**settings.WORKFLOWS, "APPROVAL_LINKS_TOKEN_ONLY": True}
    instance, request = open_request()
    token = link_token("bob")
    assert approvals.open_link(token, AnonymousUser()).acting_user == people["bob"]
    approvals.decide_by_link(token, AnonymousUser(), approved=False, comment="no")
    assert run(instance)["output"]["by"] == "bob"


# --------------------------------------------------------------------------- notifiers


class Broken:
    calls = 0

    def send(self, notice):
        Broken.calls += 1
        raise ConnectionError("the mail relay is down")


def test_a_failing_notifier_is_retried_then_marked_failed_and_never_fails_the_workflow(people, settings):
    settings.WORKFLOWS = {
        **settings.WORKFLOWS, "APPROVAL_NOTIFIERS": ["tests.test_approval_policies.Broken"],
        "NOTIFY_ATTEMPTS": 3, "NOTIFY_RETRY_SECONDS": 60,
    }  # fmt: skip
    Broken.calls = 0
    instance, request = open_request(approvers=["user:ada"])
    later(minutes=1)
    later(minutes=2)
    (notice,) = approvals.get(request.id).notifications
    assert (notice.status, notice.attempts, notice.notifier) == ("failed", 3, "Broken")
    assert "the mail relay is down" in notice.problem
    assert Broken.calls == 3
    assert instance.status()["status"] == "waiting"
    assert 'workflows_notifications_failed_total{notifier="tests.test_approval_policies.Broken"} 1.0' in metrics_text()


def test_someone_without_an_email_address_is_skipped_not_failed(people):
    people["bob"].email = ""
    people["bob"].save()
    instance, request = open_request()
    statuses = {n.recipient: (n.status, n.problem) for n in approvals.get(request.id).notifications}
    assert statuses["bob"] == ("skipped", "bob has no email address")
    assert statuses["ada"][0] == "sent"


# --------------------------------------------------------------------------- the author's API


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"remind_every": "48h"}, "remind_every (172800s) must be shorter than the timeout"),
        ({"remind_every": "1s", "timeout": "2h"}, "would send 7200 reminders; at most 1000"),
        ({"escalate_to": None}, "escalate_after and escalate_to go together"),
        ({"escalate_after": "3d"}, "escalate_after (259200s) must be shorter than the timeout"),
        ({"escalate_to": "group:directors"}, "escalate_to must be a non-empty list"),
        ({"escalate_to": ["team:x"]}, "approver 'team:x' must be"),
        ({"on_timeout": "maybe"}, "on_timeout must be one of error, approve, reject"),
    ],
)
def test_a_bad_policy_is_refused_with_a_message_naming_it(people, changes, message):
    instance = start("t-approval", {**POLICY, **changes})
    status = run(instance)
    assert status["status"] == "errored"
    assert message in status["error"]["message"]
    assert WorkflowFatalError.__name__ == status["error"]["name"]
    assert ApprovalRequest.objects.count() == 0


def test_metrics_count_reminders_escalations_decisions_and_open_requests(people):
    instance, request = open_request()
    later(hours=24)
    text = metrics_text()
    assert 'workflows_approvals_open{workflow="t-approval"} 1.0' in text
    assert 'workflows_approval_reminders_total{workflow="t-approval"} 3.0' in text
    assert 'workflows_approval_escalations_total{workflow="t-approval"} 1.0' in text
    approvals.decide(request.id, user=people["bob"], approved=True)
    text = metrics_text()
    assert 'workflows_approval_decision_seconds_count{outcome="approved",workflow="t-approval"} 1.0' in text
    bucket = 'workflows_approval_decision_seconds_bucket{le="172800.0",outcome="approved",workflow="t-approval"} 1.0'
    assert bucket in text


def test_the_figures_give_median_and_90th_percentile_time_to_decision(people):
    for minutes in range(1, 11):  # ten requests decided after 1, 2, ..., 10 minutes
        instance, request = open_request()
        later(minutes=minutes)
        approvals.decide(request.id, user=people["ada"], approved=True)
    open_request(on_timeout="error")  # open now; timing out later adds no decision time
    figures = approvals.stats()
    (wf,) = figures.workflows
    assert (wf.workflow, wf.open) == ("t-approval", 1)
    week = wf.timings[7]
    # Within the 2.5 % of the log-scale buckets the figures are kept in.
    assert (week.decided, week.median, week.p90) == (10, pytest.approx(300, rel=0.03), pytest.approx(540, rel=0.03))
    assert dict(figures.open_by_approver) == {"group:finance": 1}
    later(days=8)
    assert approvals.stats().workflows[0].timings[7].decided == 0
    assert approvals.stats().workflows[0].timings[30].decided == 10


# --------------------------------------------------------------------------- the webhook notifier


class FlakyReceiver:
    """A local HTTP endpoint that answers 500 to the first ``failures`` posts, then 200."""

    def __init__(self, failures):
        import http.server
        import threading
        import time

        received = self.received = []
        arrived = self.arrived = []  # when each post came (time.time())

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                arrived.append(time.time())
                received.append((dict(self.headers), body))
                self.send_response(500 if len(received) <= failures else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    found = FlakyReceiver(failures=2)
    yield found
    found.close()


def test_the_webhook_is_signed_and_retried_with_backoff_until_it_gets_through(people, settings, receiver):
    import json

    from workflows.notifiers import sign

    settings.WORKFLOWS = {
        **settings.WORKFLOWS, "APPROVAL_NOTIFIERS": ["workflows.notifiers.WebhookNotifier"],
        "APPROVAL_WEBHOOK_URL": receiver.url, "APPROVAL_WEBHOOK_SECRET": "s3cret", "NOTIFY_RETRY_SECONDS": 10,
    }  # fmt: skip
    instance, request = open_request(approvers=["user:ada"])
    assert len(receiver.received) == 1  # the first attempt, answered 500
    later(seconds=9)
    assert len(receiver.received) == 1  # backoff: the second attempt comes 10 s later...
    later(seconds=1)
    assert len(receiver.received) == 2
    later(seconds=20)  # ...and the third 20 s after that
    assert len(receiver.received) == 3
    (notice,) = approvals.get(request.id).notifications
    assert (notice.status, notice.attempts) == ("sent", 3)
    bodies = [json.loads(body) for _, body in receiver.received]
    assert len({b["id"] for b in bodies}) == 1  # the same notification each time: receivers can drop repeats
    headers, body = receiver.received[-1]
    stamp = headers["X-Workflows-Timestamp"]
    assert headers["X-Workflows-Signature"] == "sha256=" + sign("s3cret", stamp, body)
    assert headers["X-Workflows-Signature"] != "sha256=" + sign("wrong", stamp, body)
    payload = bodies[-1]
    assert (payload["type"], payload["recipient"]["username"], payload["request"]["id"]) == (
        "approval.opened", "ada", request.id,
    )  # fmt: skip
    assert "/approvals/link/" in payload["link"]
    assert instance.status()["status"] == "waiting"


def test_an_instance_that_ends_while_an_approval_waits_cancels_the_request_and_its_reminders(people):
    instance = start("t-approval-beside-failure")
    assert run(instance)["status"] == "errored"
    (request,) = ApprovalRequest.objects.filter(instance_key=instance.id)
    assert (request.status, request.closed_by, request.nudge_at) == ("cancelled", "instance finished", None)
    later(minutes=30)
    assert told("reminder") == []
    assert approvals.pending(people["ada"]) == []
