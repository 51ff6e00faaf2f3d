"""Claiming handed-out steps (fan-out): a step is claimed by one worker, and claimers that
race for the steps of one instance neither both win nor wait for each other.

Every fast lane and a worker process hear of each handed-out step, so several claims of
one instance's steps run at once. These tests hold a claimer's transaction open by hand,
which is the moment a real race has; they need PostgreSQL's row locks (SQLite runs one
writing transaction at a time, so its claims cannot interleave).
"""

import threading

import pytest
from django.db import connection, transaction

from tests.helpers import row, run, start
from workflows import clock
from workflows.engine.leases import claim_step
from workflows.models import Step
from workflows.states import StepStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's row locks; SQLite serialises writing transactions")


def handed_out_steps(uid, n):
    """An unfinished instance with ``n`` steps queued for other workers, as a coordinator leaves them."""
    handle = start("t-memo", id=uid())
    run(handle)  # parked in its sleep: not finished, so its steps may be claimed
    instance = row(handle)
    return [
        Step.objects.create(
            instance=instance, kind="do", name=f"cpu {i}", occurrence=0, seq=10 + i,
            status=StepStatus.QUEUED, attempts=0, started_at=clock.now(),
        ).pk
        for i in range(n)
    ]  # fmt: skip


def in_thread(fn, *args):
    """Run ``fn`` in another thread (its own connection); returns (thread, result box)."""
    box = {}

    def target():
        try:
            box["result"] = fn(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, box


def test_a_step_claimed_while_another_claim_of_it_waits_is_claimed_once(uid):
    (step,) = handed_out_steps(uid, 1)
    with transaction.atomic():
        first = claim_step(step, clock.now())  # its lease is written, not yet committed
        assert first is not None
        thread, box = in_thread(claim_step, step, clock.now())
        thread.join(0.5)
        assert thread.is_alive(), "the second claim waits for the first to commit"
    thread.join(30)
    assert box["result"] is None, "the second claim sees the first one's lease and takes nothing"
    assert Step.objects.get(pk=step).lease_token == first[0].token


def test_a_batch_claim_skips_the_steps_another_claimer_holds_instead_of_waiting_for_them(uid):
    mine, theirs, *rest = handed_out_steps(uid, 4)
    with transaction.atomic():
        held = claim_step(theirs, clock.now())  # another worker, mid-claim
        thread, box = in_thread(claim_step, mine, clock.now(), 4)
        thread.join(30)
        assert not thread.is_alive(), "the batch did not wait for a step another claimer holds"
    lease, _, keys = box["result"]
    taken = set(Step.objects.filter(lease_token=lease.token).values_list("pk", flat=True))
    assert taken == {mine, *rest}, "its own step and the free ones, not the other claimer's"
    assert {key[1] for key in keys} == {"cpu 0", "cpu 2", "cpu 3"}
    assert Step.objects.get(pk=theirs).lease_token == held[0].token
