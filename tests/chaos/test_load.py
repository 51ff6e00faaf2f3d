"""Load and faults at the edge: 1,000 concurrent approvals over HTTP while the web server
is killed and restarted; each instance resumes exactly once (opt-in marker ``chaos``)."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User

from api.models import ApiToken
from workflows import get_workflow
from workflows.models import Event, Instance
from workflows.testing import WorkerRunner, database_url

pytestmark = [pytest.mark.chaos, pytest.mark.worker, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
N = int(os.environ.get("LOAD_APPROVALS", "1000"))


class WebServer:
    """gunicorn serving the project against the test database, in its own process group."""

    def __init__(self, log_dir):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(Path(log_dir) / "web.log", "ab")
        self.proc = None

    def start(self):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings_test",
            "DATABASE_URL": database_url(),
            "WORKFLOWS_ENQUEUE": "1",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "-b",
                f"127.0.0.1:{self.port}",
                "-w",
                "3",
                "--threads",
                "4",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health/", timeout=2)
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("the web server did not start")

    def kill9(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)


def test_a_thousand_concurrent_approvals_survive_a_killed_web_server_and_resume_each_instance_once(settings, tmp_path):
    settings.WORKFLOWS = {**settings.WORKFLOWS, "ENQUEUE": True}
    user = User.objects.create_user("signaller")  # a service answering wait_for_event over the API
    user.user_permissions.add(Permission.objects.get(codename="send_event"))
    token = ApiToken.issue(user)[1]
    ids = [f"req-{i}" for i in range(N)]
    handle = get_workflow("t-waiter")
    for offset in range(0, N, 100):
        handle.create_batch([{"id": iid} for iid in ids[offset : offset + 100]])
    workers = WorkerRunner(tmp_path, lease_seconds=5, processes=2)
    workers.start()
    web = WebServer(tmp_path)
    web.start()
    try:
        waiting = Instance.objects.filter(workflow_name="t-waiter", status="waiting")
        workers.wait(lambda: waiting.count() == N, "every instance to wait", 300)

        def approve(iid):
            request = urllib.request.Request(
                f"http://127.0.0.1:{web.port}/api/workflows/t-waiter/instances/{iid}/events/go",
                data=json.dumps({"approved": True}).encode(),
                method="POST",
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": f"approve-{iid}",
                },
            )
            for _ in range(200):  # a client that retries until it gets an answer
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        return json.loads(response.read())
                except urllib.error.HTTPError as exc:
                    if exc.code < 500:  # a refusal is an answer: retrying cannot change it
                        raise AssertionError(f"{iid}: {exc.code} {exc.read()[:300]!r}") from None
                    failures.append(iid)
                    time.sleep(0.25)
                except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError):
                    failures.append(iid)  # the server died mid-answer (IncompleteRead), or was down
                    time.sleep(0.25)
            raise AssertionError(f"{iid}: no answer")

        done = []
        failures = []  # requests that hit the killed server (and were retried)

        def killer():
            while len(done) < N // 3:
                time.sleep(0.05)
            web.kill9()  # in the middle of the approvals
            time.sleep(1)
            web.start()

        thread = threading.Thread(target=killer)
        thread.start()
        with ThreadPoolExecutor(32) as pool:
            for answer in pool.map(approve, ids):
                done.append(answer)
        thread.join()
        assert failures, "the web server was killed while approvals were in flight"
        # Every client retries once more after the fact: all of them are duplicates.
        with ThreadPoolExecutor(32) as pool:
            repeats = list(pool.map(approve, ids))
        assert all(r["duplicate"] for r in repeats)
        complete = Instance.objects.filter(workflow_name="t-waiter", status="complete")
        workers.wait(lambda: complete.count() == N, "every instance to resume", 300)
    finally:
        web.stop()
        workers.stop()
    assert Event.objects.filter(instance__workflow_name="t-waiter").count() == N, (
        "an approval was delivered twice or lost"
    )
    assert not Event.objects.filter(instance__workflow_name="t-waiter", consumed_at__isnull=True).exists()
    assert all(handle.get(iid).status()["output"] == [{"approved": True}] for iid in ids[:: max(1, N // 50)])
