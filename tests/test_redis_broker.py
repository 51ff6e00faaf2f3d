"""django-q2's Redis broker carries the kicks (WORKFLOWS_BROKER=redis); state stays in the database.

Real workers and real CLI processes with the Redis setting, against the Redis server on
127.0.0.1:6379 (REDIS_URL). The dispatcher's fallback would take DISPATCH_GRACE_SECONDS
(30 s) to notice an instance whose kick never arrived, so everything finishing well
within that is carried by Redis. CI sets REQUIRE_REDIS=1: there a missing server fails.
"""

import os
import subprocess
import sys
import uuid

import pytest
import redis
from django.conf import settings

from workflows import get_workflow
from workflows.testing import WorkerRunner, database_url

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
REDIS_URL = os.getenv("REDIS_URL", "redis://127.0.0.1:6379/0")
WELL_WITHIN_GRACE = 20


@pytest.fixture
def redis_env():
    try:
        redis.from_url(REDIS_URL).ping()
    except redis.ConnectionError:
        if os.getenv("REQUIRE_REDIS") == "1":
            raise
        pytest.skip(f"no Redis server at {REDIS_URL}")
    queue = f"workflows-test-{uuid.uuid4().hex[:8]}"  # a queue of its own
    yield {"WORKFLOWS_BROKER": "redis", "REDIS_URL": REDIS_URL, "WORKFLOWS_QUEUE_NAME": queue}
    redis.from_url(REDIS_URL).delete(f"django_q:{queue}:q")


def manage(env, *args):
    full = {**os.environ, **env, "DATABASE_URL": database_url(), "WORKFLOWS_ENQUEUE": "1"}
    result = subprocess.run(
        [sys.executable, "manage.py", "workflows", *args], cwd=settings.BASE_DIR, env=full,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_instances_created_woken_and_spawning_children_run_through_redis(redis_env, tmp_path):
    runner = WorkerRunner(tmp_path)
    try:
        runner.start(env=redis_env)
        manage(redis_env, "trigger", "t-parent", "--id", "rp-1")
        manage(redis_env, "trigger", "t-waiter", '{"type": "go"}', "--id", "rw-1")
        parent, waiter = get_workflow("t-parent").get("rp-1"), get_workflow("t-waiter").get("rw-1")
        runner.wait(lambda: waiter.status()["status"] == "waiting", "the waiter to park", WELL_WITHIN_GRACE)
        manage(redis_env, "instances", "send-event", "t-waiter", "rw-1", "--type", "go", "--payload", '{"n": 1}')
        runner.wait(lambda: waiter.status()["status"] == "complete", "the event's kick", WELL_WITHIN_GRACE)
        # The child is created by a step in a worker (its kick pushed after that commit), and
        # the parent's one-second sleep is woken by the dispatcher through the same queue.
        runner.wait(lambda: parent.status()["status"] == "complete", "parent and child", WELL_WITHIN_GRACE)
    finally:
        runner.stop()
    assert waiter.status()["output"] == [{"n": 1}]
    assert parent.status()["output"] == ["child-rp-1", "complete"]
    assert get_workflow("t-counter").get("child-rp-1").status()["status"] == "complete"
    assert redis.from_url(REDIS_URL).llen(f"django_q:{redis_env['WORKFLOWS_QUEUE_NAME']}:q") == 0
