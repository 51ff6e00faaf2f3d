"""A fast lane's claim takes the wake-up's held-back kick out of the queue in the same
statement: the first claim to delete the row runs the instance, and no worker process
gets the kick. A kick the pusher already took, or one for an instance with nothing to
do, stays where it is and the claim fails (PostgreSQL: the fast lane listens there)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ

from tests.helpers import row, run, start
from workflows.engine.control import RunOutcome
from workflows.tasks import advance

pytestmark = [
    pytest.mark.usefixtures("engine"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the fast lane listens on PostgreSQL only"),
]


def queued_kick(lock_in: timedelta) -> OrmQ:
    return OrmQ.objects.create(key="workflows", payload="advance", lock=timezone.now() + lock_in)


def woken_waiter():
    instance = start("t-waiter")
    run(instance)
    instance.send_event("go", "hello")
    return instance


def test_the_claim_deletes_the_held_back_kick_and_runs_the_instance():
    instance = woken_waiter()
    kick = queued_kick(timedelta(milliseconds=20))
    assert advance(row(instance).pk, kick_row=kick.pk) == RunOutcome.COMPLETE
    assert instance.status()["output"] == ["hello"]
    assert not OrmQ.objects.filter(pk=kick.pk).exists()


def test_a_kick_the_pusher_already_took_is_left_to_its_worker_process():
    instance = woken_waiter()
    kick = queued_kick(timedelta(hours=1))  # what a pusher's claim of the row looks like
    assert advance(row(instance).pk, kick_row=kick.pk) == RunOutcome.NOT_CLAIMED
    assert OrmQ.objects.filter(pk=kick.pk).exists()
    assert instance.status()["status"] == "waiting" and row(instance).lease_token is None


def test_a_kick_for_an_instance_with_nothing_to_do_stays_queued():
    instance = start("t-waiter")
    run(instance)  # waiting, and no event has come
    kick = queued_kick(timedelta(milliseconds=20))
    assert advance(row(instance).pk, kick_row=kick.pk) == RunOutcome.NOT_CLAIMED
    assert OrmQ.objects.filter(pk=kick.pk).exists()
