"""A newly started worker process readies itself before its first instance arrives.

``workflows.engine.warm_up.ready`` runs in every django-q2 worker process as it is spawned
and in every fast-lane runner: it opens the connection and, on PostgreSQL, runs the claims
once so their plans are ready. It must claim nothing, write nothing, and never stop a
worker from starting.
"""

from unittest import mock

import pytest
from django.db import OperationalError, connection

from tests.helpers import row, run, start
from workflows.engine import warm_up
from workflows.models import Step

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_warm_up_claims_and_writes_nothing(uid):
    queued = start("t-memo", id=uid())
    before = row(queued)
    warm_up.ready()
    after = row(queued)
    assert (after.status, after.lease_token, after.started_at) == (before.status, None, None)
    assert not Step.objects.filter(instance_id=after.pk).exists()
    run(queued)
    assert queued.status()["status"] == "waiting", "the instance was still there for a worker to claim"


def test_on_postgresql_the_claims_are_prepared_on_the_connection_before_any_instance():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite caches its statements by itself")
    connection.close()
    warm_up.ready()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [statement for (statement,) in cursor.fetchall()]
    assert any("UPDATE wf_instance SET" in statement for statement in prepared), prepared


def test_a_database_that_is_down_does_not_stop_a_worker_from_starting():
    refused = OperationalError("connection refused")
    with mock.patch.object(connection, "ensure_connection", side_effect=refused):
        warm_up.ready()  # logged, not raised


def test_nothing_the_warm_up_meets_stops_a_worker_from_starting():
    with mock.patch("workflows.engine.leases.claim", side_effect=RuntimeError("a bug")):
        warm_up.ready()  # logged, not raised
