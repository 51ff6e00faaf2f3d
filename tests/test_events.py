"""wait_for_event and send_event: buffered FIFO per type, timeouts that never eat later events."""

import pytest
from django.db import connection

from tests.helpers import later, row, run, start, steps_of
from workflows.errors import InvalidEventType, InvalidState, ValueTooLarge
from workflows.models import Event
from workflows.values import decode

pytestmark = pytest.mark.usefixtures("engine")


def test_a_wait_parks_the_instance_and_an_event_resumes_it_with_type_payload_and_timestamp():
    instance = start("t-waiter")
    assert run(instance)["status"] == "waiting"
    instance.send_event("go", {"approved": True})
    assert row(instance).wake_at is not None
    assert run(instance)["output"] == [{"approved": True}]
    received = steps_of(instance)[0]
    assert received.status == "succeeded" and received.event_type == "go"
    sent = Event.objects.get(instance=row(instance))
    assert decode(received.result) == {"type": "go", "payload": {"approved": True}, "timestamp": sent.created_at}


def test_events_sent_before_the_wait_are_buffered_and_taken_oldest_first_per_type():
    instance = start("t-waiter", {"waits": 3})
    instance.send_event("other", "not for us")
    for n in (1, 2, 3):
        instance.send_event("go", n)
    assert run(instance)["output"] == [1, 2, 3]
    assert Event.objects.get(type="other").consumed_at is None


def test_waits_for_one_type_at_the_same_time_each_take_a_different_event():
    instance = start("t-parallel-waiters", {"n": 3})
    assert run(instance)["status"] == "waiting"
    for n in (1, 2, 3):
        instance.send_event("go", n)
    assert sorted(run(instance)["output"]) == [1, 2, 3]
    takers = {event.consumed_by_id for event in Event.objects.filter(instance=row(instance))}
    assert takers == {s.id for s in steps_of(instance)}


def test_an_event_whose_wait_result_was_never_stored_is_taken_again_by_the_replay(monkeypatch):
    from workflows.engine import records
    from workflows.engine.leases import LeaseLost

    def lost_before_commit(*args):
        raise LeaseLost()  # as if the worker lost its lease (or died) before the commit

    instance = start("t-waiter", {"waits": 1})
    run(instance)
    instance.send_event("go", "only one")
    with monkeypatch.context() as patch:
        patch.setattr(records, "store_wait_result", lost_before_commit)
        run(instance)
    assert Event.objects.get(instance=row(instance)).consumed_at is None
    assert steps_of(instance)[0].status == "waiting"
    later(minutes=10)  # the abandoned lease expires; another worker replays
    assert instance.status()["output"] == ["only one"]
    assert Event.objects.get(instance=row(instance)).consumed_by_id == steps_of(instance)[0].id


def test_an_event_of_another_type_does_not_wake_the_waiter():
    instance = start("t-waiter")
    run(instance)
    instance.send_event("unrelated", 1)
    assert row(instance).status == "waiting" and row(instance).wake_at > row(instance).created_at
    assert run(instance)["status"] == "waiting"


def test_a_timed_out_wait_raises_and_never_consumes_a_later_event():
    instance = start("t-waiter", {"waits": 2, "timeout": "1h"})
    run(instance)
    later(hours=1)
    assert row(instance).status == "waiting", "the second wait is now pending"
    instance.send_event("go", "late")
    assert run(instance)["output"] == ["timeout: WorkflowTimeoutError", "late"]
    first = steps_of(instance)[0]
    assert first.status == "failed" and first.error["name"] == "WorkflowTimeoutError"


def test_an_event_arriving_after_the_deadline_is_left_for_a_later_wait():
    instance = start("t-waiter", {"waits": 2, "timeout": "1h"})
    run(instance)
    later(hours=2)  # the first wait is past its deadline before the worker saw any event
    instance.send_event("go", "x")
    assert run(instance)["output"] == ["timeout: WorkflowTimeoutError", "x"]


def test_send_event_validates_type_and_payload_and_refuses_finished_instances():
    instance = start("t-waiter")
    with pytest.raises(InvalidEventType, match="a.b"):
        instance.send_event("a.b")
    with pytest.raises(ValueTooLarge):
        instance.send_event("go", "x" * 2**20)
    assert Event.objects.count() == 0
    instance.send_event("go")
    assert run(instance)["status"] == "complete"
    with pytest.raises(InvalidState, match="it is complete"):
        instance.send_event("go")


def test_a_claim_reads_the_steps_and_each_waiting_waits_next_event_as_a_query_would():
    from dataclasses import replace

    from workflows import clock
    from workflows.engine.leases import claim
    from workflows.engine.rows import load_steps

    instance = start("t-waiter", {"waits": 2})
    run(instance)
    instance.send_event("go", {"first": "één"})
    run(instance)  # the first wait took it; the second waits
    instance.send_event("go", 2)
    claimed = claim(row(instance).pk, clock.now())
    expected, max_seq = load_steps(row(instance).pk, claimed.lease.run_number)
    assert claimed.max_seq == max_seq == 2
    assert {key: replace(step, next_event=None) for key, step in claimed.steps.items()} == expected
    waiting = claimed.steps[("wait", "wait 1", 1)]
    sent = Event.objects.get(instance=row(instance), consumed_at__isnull=True)
    if connection.vendor == "postgresql":  # read with the claim; SQLite's wait queries when it gets there
        assert waiting.next_event == (sent.pk, sent.payload, sent.created_at, "")
