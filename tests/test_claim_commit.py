"""A claim's commit does not wait for its WAL flush on PostgreSQL; the worker's next write does.

The claim's lease need not be durable until this worker writes again, and every write that
follows (a step's start, a park, the completion) is a normal commit, which flushes the WAL
past the claim. So the claim sets ``synchronous_commit`` off for its own transaction only:
the setting must not outlive it, and inside a transaction the caller holds (an in-process
test run) the claim leaves the caller's commit alone.
"""

import pytest
from django.db import connection, transaction

from tests.helpers import row, start
from workflows import clock
from workflows.engine.leases import claim

pytestmark = pytest.mark.django_db(transaction=True)

WITHOUT_FLUSH = "set_config('synchronous_commit', 'off', true)"


@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no asynchronous commit")


def claim_statements(pk):
    seen = []

    def record(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        claimed = claim(pk, clock.now())
    return claimed, [sql for sql in seen if "UPDATE wf_instance SET" in sql]


def synchronous_commit():
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def test_a_claim_commits_without_waiting_for_its_flush_and_the_setting_ends_with_it(uid):
    pk = row(start("t-memo", id=uid())).pk
    claimed, (statement,) = claim_statements(pk)
    assert claimed is not None and claimed.instance.pk == pk
    assert WITHOUT_FLUSH in statement
    assert synchronous_commit() == "on", "the next write of this connection flushes as always"


def test_inside_a_transaction_the_caller_holds_the_claim_leaves_its_commit_alone(uid):
    pk = row(start("t-memo", id=uid())).pk
    with transaction.atomic():
        claimed, (statement,) = claim_statements(pk)
        assert claimed is not None
        assert WITHOUT_FLUSH not in statement
        assert synchronous_commit() == "on"
