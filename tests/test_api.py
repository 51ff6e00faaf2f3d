"""create, create_batch, get, get_workflow: validation before anything is written."""

import uuid

import pytest

from tests.helpers import run, start
from workflows import WorkflowError, get_workflow
from workflows.errors import (
    DuplicateInstanceId,
    InstanceNotFound,
    InvalidInstanceId,
    ValueTooLarge,
    WorkflowNotFound,
)
from workflows.models import Instance

pytestmark = pytest.mark.usefixtures("engine")


def test_create_queues_an_instance_with_a_uuid_when_no_id_is_given():
    instance = get_workflow("t-memo").create()
    uuid.UUID(instance.id)
    assert instance.status() == {"status": "queued", "output": None, "error": None}


@pytest.mark.parametrize("bad", ["", "   ", "\n\nhello", "#1!!", "-lead", "a.b", "has space", "w" * 101, 7])
def test_an_invalid_id_is_refused_and_nothing_is_created(bad):
    with pytest.raises(InvalidInstanceId, match="invalid instance id"):
        get_workflow("t-memo").create(id=bad)
    assert Instance.objects.count() == 0


def test_a_duplicate_id_is_refused_naming_the_id_and_the_original_is_kept(uid):
    iid = uid()
    start("t-flaky", {"fail": 0}, id=iid)
    with pytest.raises(DuplicateInstanceId, match=iid):
        start("t-flaky", {"fail": 9}, id=iid)
    assert run(get_workflow("t-flaky").get(iid))["output"] == 1


def test_params_over_the_limit_are_refused_naming_the_limit(uid):
    with pytest.raises(ValueTooLarge, match="limit is 1048576 bytes"):
        start("t-memo", {"blob": "x" * 2**20})
    with pytest.raises(WorkflowError, match="cannot be stored"):
        start("t-memo", {"when": object()})
    assert Instance.objects.count() == 0


def test_create_batch_skips_existing_ids_and_returns_the_created_in_order(uid):
    a, b, c = uid(), uid(), uid()
    start("t-memo", id=b)
    created = get_workflow("t-memo").create_batch([{"id": a}, {"id": b, "params": {"v": 2}}, {"id": c}, {"id": a}])
    assert [h.id for h in created] == [a, c]


@pytest.mark.parametrize(
    "items,problem",
    [
        ([], "at least 1"),
        ([{"id": "x"}] * 101, "limit is 100"),
        ("abc", "list"),
        ([{"id": "x", "extra": 1}], "only 'id' and 'params'"),
        ([{"id": "ok"}, {"id": "b a d"}], "invalid instance id"),
    ],
)
def test_a_bad_batch_is_refused_whole(items, problem):
    with pytest.raises(WorkflowError, match=problem):
        get_workflow("t-memo").create_batch(items)
    assert Instance.objects.count() == 0


def test_unknown_workflows_and_instances_are_errors_that_say_so(uid):
    with pytest.raises(WorkflowNotFound, match="no workflow named 'nope'.*t-memo"):
        get_workflow("nope")
    with pytest.raises(InstanceNotFound, match="no instance"):
        get_workflow("t-memo").get(uid())
