"""Property-based: whatever comes in, the answer is either success or a clear error that
names the problem, and a refused input changes nothing (hypothesis)."""

import json
import string

import pytest
from django.contrib.auth.models import Permission, User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.models import ApiToken
from workflows import WorkflowError, get_workflow
from workflows.durations import parse_duration
from workflows.models import Event, Instance

pytestmark = pytest.mark.usefixtures("engine")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
ids = st.text(alphabet=string.ascii_letters + string.digits + "-_.# \n", max_size=110)


@FAST
@given(instance_id=ids, params=json_values)
def test_create_accepts_valid_ids_and_refuses_the_rest_without_a_trace(instance_id, params):
    before = Instance.objects.count()
    try:
        handle = get_workflow("t-waiter").create(id=instance_id, params=params)
    except WorkflowError as exc:
        assert str(exc) and Instance.objects.count() == before
        return
    assert handle.id == instance_id and len(instance_id) <= 100
    Instance.objects.filter(instance_id=instance_id).delete()


@FAST
@given(event_type=ids, payload=json_values)
def test_send_event_refuses_bad_types_and_leaves_no_event(event_type, payload):
    handle = get_workflow("t-waiter").create()
    try:
        handle.send_event(event_type, payload)
    except WorkflowError as exc:
        assert "event type" in str(exc) and not Event.objects.filter(instance__instance_id=handle.id).exists()


@FAST
@given(
    value=st.one_of(st.text(max_size=12), st.integers(-5, 10**6), st.floats(allow_nan=True), st.none(), st.booleans())
)
def test_every_duration_is_seconds_or_a_value_error_naming_it(value):
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        assert repr(value) in str(exc)
        return
    assert seconds >= 0


@FAST
@given(depth=st.integers(1, 400))
def test_deeply_nested_params_are_refused_with_a_message_beyond_the_limit(depth):
    nested = current = {}
    for _ in range(depth):
        current["x"] = {}
        current = current["x"]
    try:
        get_workflow("t-waiter").create(params=nested)
    except WorkflowError as exc:
        assert depth > 150 and "nested" in str(exc)


@pytest.fixture
def token():
    user = User.objects.create_user("prop")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["operate_instance", "approve_instance"]))
    return ApiToken.issue(user)[1]


@FAST
@given(body=st.one_of(json_values.map(json.dumps), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))))
def test_the_http_api_never_fails_with_a_500_and_creates_nothing_when_it_refuses(client, token, body):
    before = Instance.objects.count()
    response = client.post(
        "/api/workflows/t-waiter/instances",
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code in (201, 400, 409, 413), response.content
    data = response.json()
    if response.status_code == 201:
        Instance.objects.filter(instance_id=data["id"]).delete()
    else:
        assert data["error"]["code"] and data["error"]["message"] and Instance.objects.count() == before
