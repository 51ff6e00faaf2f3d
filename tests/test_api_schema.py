"""Every endpoint answers as the OpenAPI document says, for generated requests (schemathesis)."""

import pytest
import schemathesis
from django.contrib.auth.models import Permission, User
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings

from api.models import ApiToken
from api.openapi import document
from workflows import get_workflow


def _document_for_tests():
    """The served document, with instance ids drawn from one that exists and one that does not,
    so that generated requests reach the success responses as well as the 404s."""
    doc = document()
    for item in doc["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and "parameters" in operation:
                # An opaque cursor fits any string, yet garbage must be refused (400): that path
                # is covered by test_http_api, not by generated requests.
                operation["parameters"] = [p for p in operation["parameters"] if p["name"] != "cursor"]
        for param in item.get("parameters", []):
            if param["name"] == "instance_id":
                param["schema"] = {"type": "string", "enum": ["existing", "missing-1"]}
            if param["name"] == "name":
                param["schema"] = {"type": "string", "enum": ["t-waiter", "no-such-workflow"]}
    return doc


schema = schemathesis.openapi.from_dict(_document_for_tests())
schema.app = get_wsgi_application()


@pytest.fixture
def keep_connection():
    """Like Django's test client: requests must not close the test's database connection."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def token(engine, keep_connection):
    user = User.objects.create_user("schema")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["operate_instance", "approve_instance"]))
    get_workflow("t-waiter").create(id="existing")
    return ApiToken.issue(user)[1]


def test_the_document_is_served_and_lists_every_route(client, token):
    served = client.get("/api/openapi.json", headers={"Authorization": f"Bearer {token}"}).json()
    assert served == document()
    from api.urls import urlpatterns

    routes = {"/api/" + str(p.pattern).replace("<str:", "{").replace(">", "}") for p in urlpatterns}
    assert routes == set(served["paths"])


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_endpoint_conforms_to_the_document(case, token):
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"})
