"""A read replica takes the dashboard's and API's reads, and never a read that must see a write.

The "replica" alias points at the same test database (as a second connection), so these
tests see which connection each query went to.
"""

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connections
from django.test.utils import CaptureQueriesContext

from api.models import ApiToken
from config.replica import PIN_COOKIE, ReplicaRouter, _reads_from_replica
from workflows import get_workflow
from workflows.models import Instance

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "replica"])


@pytest.fixture(autouse=True)
def replica_on(settings):
    settings.READ_REPLICA = "replica"


@pytest.fixture
def operator(client):
    user = User.objects.create_user("olga", password="x" * 12)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["operate_instance", "send_event"]))
    client.force_login(user)
    return user


def queries(alias):
    return CaptureQueriesContext(connections[alias])


def test_dashboard_and_api_pages_read_the_replica_only(client, operator):
    get_workflow("t-counter").create(id="r-1")
    token = ApiToken.issue(operator)[1]
    with queries("default") as primary, queries("replica") as replica:
        assert client.get("/instances/").status_code == 200
        assert client.get("/").status_code == 200
        api = client.get("/api/workflows/t-counter/instances", headers={"Authorization": f"Bearer {token}"})
        assert api.status_code == 200 and api.json()["instances"][0]["id"] == "r-1"
    assert len(replica) > 0
    touched = [q["sql"] for q in primary]
    # Only the token's "last used" stamp is written; nothing is read from the primary.
    assert all(sql.lstrip().upper().startswith("UPDATE") and "api_token" in sql for sql in touched), touched


def test_a_change_is_made_on_the_primary_and_the_next_pages_read_it_there(client, operator):
    with queries("replica") as replica:
        created = client.post("/api/workflows/t-counter/instances", data={"id": "r-2"}, content_type="application/json")
    assert created.status_code == 201
    assert len(replica) == 0, "a changing request reads the primary"
    assert Instance.objects.using("default").filter(instance_id="r-2").exists()
    assert PIN_COOKIE in created.cookies, "the browser is pinned to the primary for a moment"
    with queries("replica") as replica:
        assert client.get("/api/workflows/t-counter/instances/r-2").status_code == 200
    assert len(replica) == 0, "right after a change, this browser reads what it wrote"


def test_after_the_pin_expires_reads_return_to_the_replica(client, operator):
    client.cookies[PIN_COOKIE] = "1"  # long past
    with queries("replica") as replica:
        assert client.get("/instances/").status_code == 200
    assert len(replica) > 0


def test_within_a_request_a_write_sends_every_later_read_to_the_primary():
    router = ReplicaRouter()
    token = _reads_from_replica.set(True)
    try:
        assert router.db_for_read(Instance) == "replica"
        router.db_for_write(ApiToken)  # bookkeeping: later reads do not depend on it
        assert router.db_for_read(Instance) == "replica"
        router.db_for_write(Instance)
        assert router.db_for_read(Instance) is None  # the primary
    finally:
        _reads_from_replica.reset(token)


def test_the_engine_and_code_outside_requests_never_read_the_replica():
    with queries("replica") as replica:
        handle = get_workflow("t-counter").create(id="r-3")
        handle.status()
        Instance.objects.filter(instance_id="r-3").count()
    assert len(replica) == 0


def test_only_the_primary_is_migrated():
    router = ReplicaRouter()
    assert router.allow_migrate("default", "workflows") and not router.allow_migrate("replica", "workflows")
