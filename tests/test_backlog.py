"""A kick is a signal that there is work: the worker that gets one works through the backlog.

After the instance it was kicked for, a worker takes the oldest runnable instances itself
(queued, or waiting and due) until none is left or its time is up; then one kick carries
on. Whatever is not runnable now is left alone.
"""

from datetime import timedelta

import pytest

from tests.helpers import row, start
from workflows import clock, get_workflow, tasks, timers
from workflows.engine import backlog
from workflows.models import Instance
from workflows.tasks import advance

pytestmark = pytest.mark.usefixtures("engine")


def run_inline(pk):
    return advance(pk, renew_leases=False, inline_callbacks=True)


def test_a_worker_takes_the_runnable_instances_oldest_first(uid, monkeypatch):
    monkeypatch.setattr(backlog, "CANDIDATES", 2)  # SQLite reads two at a time, shuffled
    created = []
    for _ in range(3):
        created.append(start("t-counter", {"steps": 1}, id=uid()))
        clock.advance(timedelta(seconds=1))
    taken = []
    real_claim = tasks.claim

    def recording_claim(pk, now, **options):
        claimed = real_claim(pk, now, **options)
        if claimed is not None:
            taken.append(claimed.lease.pk)
        return claimed

    monkeypatch.setattr(tasks, "claim", recording_claim)
    assert backlog.work_through(run_inline) == 3
    assert {i.status()["status"] for i in created} == {"complete"}
    pks = [row(i).pk for i in created]
    assert set(taken[:2]) == set(pks[:2]) and taken[2] == pks[2], "the newest was taken last"


def test_what_is_not_runnable_now_is_left_alone(uid):
    sleeping = start("t-memo", id=uid())  # sleeps 1 s after its first step
    run_inline(row(sleeping).pk)
    paused = start("t-waiter", {"timeout": "1h"}, id=uid())
    run_inline(row(paused).pk)
    paused.pause()
    assert backlog.runnable() == []
    assert backlog.work_through(run_inline) == 0
    assert (sleeping.status()["status"], paused.status()["status"]) == ("waiting", "paused")
    clock.advance(timedelta(seconds=2))
    assert backlog.runnable() == [row(sleeping).pk]


def test_a_worker_whose_time_is_up_passes_the_rest_on_with_one_kick(uid, monkeypatch):
    kicked = []
    monkeypatch.setattr(backlog, "kick", kicked.append)
    first, second = (start("t-counter", {"steps": 1}, id=uid()) for _ in range(2))
    assert backlog.work_through(run_inline, budget=0) == 0
    assert len(kicked) == 1 and kicked[0] in {row(first).pk, row(second).pk}
    assert (first.status()["status"], second.status()["status"]) == ("queued", "queued")


def test_a_batch_of_new_instances_sends_a_few_kicks_not_one_each(uid, monkeypatch, settings):
    settings.WORKFLOWS = {**settings.WORKFLOWS, "KICKS_PER_BATCH": 3}
    kicked = []
    monkeypatch.setattr(timers, "kick", kicked.append)
    handles = get_workflow("t-counter").create_batch([{"id": uid()} for _ in range(10)])
    assert len(handles) == 10
    pks = Instance.objects.filter(instance_id__in=[h.id for h in handles]).order_by("pk").values_list("pk", flat=True)
    assert kicked == list(pks)[:3]
