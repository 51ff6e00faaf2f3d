"""Wake-ups take the fast lane: the worker tree that hears an event runs the instance itself.

An event queues nothing: every ``workflows worker`` hears of it (a notification on
PostgreSQL; on SQLite it sees the commit), and one with a free runner claims and advances
the instance in its fast lane process (a child of the tree's main process; django-q2's
worker processes are children of its sentinel).
When every runner is busy, the dispatcher kicks the instance once it has waited
``FAST_LANE_HEAD_START_SECONDS``, and it reaches a worker process as any kick does.
Either way the step after the wait runs once.
"""

import signal

import pytest
from django.db import connection

from tests.testapp.ledger import count, read
from workflows import get_workflow

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def start_tree(runner, uid, env=None):
    """A worker tree, once its fast lane takes wake-ups (it listens on PostgreSQL, watches
    the file on SQLite; before it does, the dispatcher's kicks carry them)."""
    tree = runner.start(env=env)

    def fast_lane_took_one():
        (instance,) = waiting(runner, uid)
        instance.send_event("go")
        runner.wait(lambda: instance.status()["status"] == "complete", "a wake-up", 30)
        return instance.status()["output"][1] == tree.pid

    runner.wait(fast_lane_took_one, "the fast lane to take wake-ups", 60)
    return tree


def waiting(runner, uid, n=1, hold=0):
    handles = [get_workflow("t-wake-record").create(id=uid(), params={"hold": hold}) for _ in range(n)]
    for handle in handles:
        runner.wait(lambda h=handle: h.status()["status"] == "waiting", "the wait", 30)
    return handles


def test_an_event_runs_in_the_worker_trees_own_process(runner, uid):
    tree = start_tree(runner, uid)
    (instance,) = waiting(runner, uid)
    instance.send_event("go")
    runner.wait(lambda: instance.status()["status"] == "complete", "the wake-up", 30)
    pid, parent = instance.status()["output"]
    assert parent == tree.pid, "run by the tree's fast lane process, not a queue worker"
    assert count(instance.id, "after") == 1


def test_when_every_runner_is_busy_the_wake_up_reaches_a_worker_process(runner, uid):
    tree = start_tree(runner, uid)  # 2 runners in the fast lane, 2 worker processes
    instances = waiting(runner, uid, n=4, hold=2)
    for instance in instances:
        instance.send_event("go")
    for instance in instances:
        runner.wait(lambda i=instance: i.status()["status"] == "complete", "every wake-up", 60)
    ran_in = [instance.status()["output"] for instance in instances]
    parents = [parent for _, parent in ran_in]
    assert parents.count(tree.pid) == 2, "two ran in the fast lane's two runners, two in worker processes"
    assert [count(i.id, "after") for i in instances] == [1, 1, 1, 1], "each step ran once"
    assert all(read(i.id, "after")[0]["pid"] == pid for i, (pid, _) in zip(instances, ran_in, strict=True))


def test_handed_out_steps_run_in_the_fast_lane_while_every_worker_process_is_busy(runner, uid):
    """Fan-out: the coordinator holds the tree's one worker process with its own 4 steps; the
    2 it hands out are heard by the fast lane, whose runner claims and runs them at once
    instead of waiting for a worker process to come free."""
    if connection.vendor != "postgresql":
        pytest.skip("a handed-out step is notified on PostgreSQL; on SQLite its kick waits for a worker process")
    start_tree(runner, uid, env={"WORKFLOWS_WORKERS": "1"})
    instance = get_workflow("t-slow-fanout").create(id=uid(), params={"n": 6})
    runner.wait(lambda: instance.status()["status"] == "complete", "the fan-out", 60)
    assert instance.status()["output"] == sum(range(6))
    starts = {entry["i"]: entry for entry in read(instance.id, "start")}
    assert len(read(instance.id, "start")) == 6, "each step ran once"
    coordinator = starts[0]["pid"]
    assert {starts[i]["pid"] for i in range(4)} == {coordinator}, "the local slots"
    handed_out = [starts[4], starts[5]]
    assert all(entry["pid"] != coordinator for entry in handed_out), "run by the fast lane, the only other runner"
    first_done = min(entry["t"] for entry in read(instance.id, "end"))
    assert all(entry["t"] < first_done for entry in handed_out), "started before any local slot came free"


def test_a_step_that_kills_the_fast_lane_leaves_the_tree_running(runner, uid):
    """The fast lane is a child of its own: a step that kills its process (os._exit, a
    segfault, the OOM killer) costs that child, which the tree starts again."""
    tree = start_tree(runner, uid)
    crashing = get_workflow("t-always-crash").create(id=uid())
    runner.wait(lambda: crashing.status()["status"] == "errored", "the crash loop to be cut off", 90)
    assert tree.poll() is None, "the tree's main process is still running"
    (instance,) = waiting(runner, uid)
    instance.send_event("go")
    runner.wait(lambda: instance.status()["status"] == "complete", "a wake-up after the crashes", 30)


def test_sigterm_lets_a_step_in_the_fast_lane_finish_instead_of_killing_it(runner, uid):
    tree = start_tree(runner, uid)
    (instance,) = waiting(runner, uid, hold=3)
    instance.send_event("go")
    runner.wait(lambda: count(instance.id, "after") == 1, "the step to start in the fast lane", 30)
    tree.send_signal(signal.SIGTERM)
    assert tree.wait(30) == 0
    assert instance.status()["status"] == "complete", "the step finished and was kept before the tree exited"
    assert instance.status()["output"][1] == tree.pid
    assert count(instance.id, "after") == 1
