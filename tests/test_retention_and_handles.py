"""Instance handles as step results (parent-child), and pruning past retention."""

from datetime import timedelta

import pytest

from tests.helpers import later, run, start
from workflows import clock, get_workflow
from workflows.api import InstanceHandle
from workflows.errors import InstanceNotFound
from workflows.models import Event, Instance, Step
from workflows.retention import prune_finished
from workflows.values import roundtrip

pytestmark = pytest.mark.usefixtures("engine")


def test_an_instance_handle_round_trips_as_a_value():
    handle = InstanceHandle("t-counter", "abc")
    back = roundtrip({"child": handle})["child"]
    assert isinstance(back, InstanceHandle) and back == handle


def test_a_parent_creates_a_child_in_a_step_and_uses_its_handle_after_replay():
    parent = start("t-parent")
    run(parent)
    later(seconds=1)
    assert parent.status()["output"] == [f"child-{parent.id}", "complete"]
    assert get_workflow("t-counter").get(f"child-{parent.id}").status()["output"] == 1


def test_finished_instances_are_pruned_after_their_retention_and_their_id_is_free_again():
    kept_running = start("t-memo")
    default = start("t-counter", {"steps": 1})
    short = start("t-short-lived")
    run()
    with_event = start("t-waiter")
    with_event.send_event("go", 1)
    run()
    clock.advance(timedelta(hours=2))
    assert prune_finished() == 1, "only t-short-lived (1 hour) is past its retention"
    with pytest.raises(InstanceNotFound):
        get_workflow("t-short-lived").get(short.id)
    clock.advance(timedelta(days=30))
    assert prune_finished() == 2
    assert list(Instance.objects.values_list("instance_id", flat=True)) == [kept_running.id]
    assert not Step.objects.exclude(instance__instance_id=kept_running.id).exists()
    assert not Event.objects.exists()
    start("t-counter", {"steps": 1}, id=default.id)
