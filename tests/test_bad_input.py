"""Property-based: whatever comes in, the answer is either success or a clear error that
names the problem, and a refused input changes nothing (hypothesis)."""

import json
import math
import re
import string

import pytest
from django.contrib.auth.models import Permission, User
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api.models import ApiToken
from workflows import InvalidEventType, InvalidInstanceId, WorkflowError, get_workflow
from workflows.durations import parse_duration
from workflows.models import Event, Instance
from workflows.values import MAX_DEPTH, decode

pytestmark = pytest.mark.usefixtures("engine")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
ids = st.text(alphabet=string.ascii_letters + string.digits + "-_.# \n", max_size=110)
# The rule for ids and event types, written independently of workflows.validation.
VALID_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,99}")


@FAST
@given(instance_id=ids, params=json_values)
def test_create_accepts_valid_ids_and_refuses_the_rest_without_a_trace(instance_id, params):
    before = Instance.objects.count()
    if VALID_NAME.fullmatch(instance_id):
        handle = get_workflow("t-waiter").create(id=instance_id, params=params)
        assert handle.id == instance_id and Instance.objects.count() == before + 1
        Instance.objects.filter(instance_id=instance_id).delete()
    else:
        with pytest.raises(InvalidInstanceId, match="invalid instance id"):
            get_workflow("t-waiter").create(id=instance_id, params=params)
        assert Instance.objects.count() == before


@FAST
@given(event_type=ids, payload=json_values)
def test_send_event_delivers_good_types_and_refuses_bad_ones_leaving_no_event(event_type, payload):
    handle = get_workflow("t-waiter").create()
    if VALID_NAME.fullmatch(event_type):
        assert handle.send_event(event_type, payload) is True
        event = Event.objects.get(instance__instance_id=handle.id)
        assert event.type == event_type and decode(event.payload) == payload
    else:
        with pytest.raises(InvalidEventType, match="invalid event type"):
            handle.send_event(event_type, payload)
        assert not Event.objects.filter(instance__instance_id=handle.id).exists()


@FAST
@given(
    value=st.one_of(st.text(max_size=12), st.integers(-5, 10**6), st.floats(allow_nan=True), st.none(), st.booleans())
)
def test_every_duration_is_seconds_or_a_value_error_naming_it(value):
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and math.isfinite(value) and value >= 0:
        assert parse_duration(value) == value
        return
    if isinstance(value, str) and re.fullmatch(
        r"\s*\d+(\.\d+)?\s*(ms|s|m|h|d|w|seconds?|minutes?|hours?|days?)\s*", value
    ):
        assert parse_duration(value) >= 0
        return
    if isinstance(value, str):
        try:  # other unit spellings ("mins", "wk") may be accepted, but only as a duration
            assert parse_duration(value) >= 0
            return
        except ValueError as exc:
            assert repr(value) in str(exc)
            return
    with pytest.raises(ValueError) as refused:  # None, booleans, negative or non-finite numbers
        parse_duration(value)
    assert repr(value) in str(refused.value)


@FAST
@given(depth=st.integers(1, 400))
@example(depth=MAX_DEPTH)
@example(depth=MAX_DEPTH + 1)
def test_deeply_nested_params_are_refused_with_a_message_beyond_the_limit(depth):
    nested = current = {}
    for _ in range(depth):
        current["x"] = {}
        current = current["x"]
    before = Instance.objects.count()
    if depth > MAX_DEPTH:
        with pytest.raises(WorkflowError, match=f"nested more than {MAX_DEPTH} levels"):
            get_workflow("t-waiter").create(params=nested)
        assert Instance.objects.count() == before
    else:
        get_workflow("t-waiter").create(params=nested)
        assert Instance.objects.count() == before + 1


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
