"""Test your workflows: the seed's introspection API in Python, plus in-process runs.

    from workflows import get_workflow
    from workflows.testing import introspect_workflow_instance

    def test_trial_expires(workflow_runner):
        with introspect_workflow_instance(get_workflow("user-lifecycle"), "u1") as instance:
            instance.modify(lambda m: (m.disable_sleeps(), m.mock_step_result({"name": "check conversion"}, False)))
            get_workflow("user-lifecycle").create(id="u1", params={"email": "a@example.com"})
            assert instance.wait_for_status("complete") == "complete"

Two ways to run, one API:
- In-process (``InProcessRunner``, the default and the ``workflow_runner`` fixture): no
  worker and no real waiting. Waits advance every instance that has work now, and when
  nothing can run they move the engine's clock to the next timer (a sleep, a retry delay, an
  event deadline), so a 7-day sleep takes milliseconds even without ``disable_sleeps``.
  Step callbacks run on the test's thread, inside its transaction.
- Real workers (``WorkerRunner``): `manage.py workflows worker` processes against the test
  database (needs ``transaction=True``); waits poll with a timeout.

Modifications are stored in the database, so both runners see them; a session removes its
own on exit, together with the instances it captured.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db.models import F, Min, Q

from workflows import bulk, clock, notifications, overrides, tasks
from workflows.engine.control import RunOutcome
from workflows.engine.leases import claimable
from workflows.error_records import error_record, rebuild_error
from workflows.errors import WorkflowError
from workflows.models import Instance, Step, TestOverride
from workflows.states import FINISHED, Status, StepKind, StepStatus
from workflows.status_counts import delete_instances
from workflows.values import decode, encode

PREFIX = "[WorkflowIntrospector]"

if TYPE_CHECKING:
    from typing import TypeAlias

    from workflows.api import InstanceHandle, WorkflowHandle

    Runner: TypeAlias = "InProcessRunner | WorkerRunner"


class IntrospectionError(WorkflowError):
    """Misuse of the testing API, or a wait whose target became unreachable."""


# --------------------------------------------------------------------------- running


def run_until_idle(max_rounds: int = 1000) -> int:
    """Advance every instance with work due now, again and again, until none has any.

    Time does not move here (a sleep that is not over stays asleep; see ``InProcessRunner.wait``
    for time skipping). Returns how many advances claimed an instance.
    """
    advanced = 0
    for _ in range(max_rounds):
        notifications.run_due()  # reminders, escalations and notifications due now
        bulk.restart_due(clock.now())  # bulk jobs run here, in-process
        pks = list(Instance.objects.filter(claimable(clock.now())).order_by("pk").values_list("pk", flat=True))
        if not pks:
            return advanced
        for pk in pks:
            if tasks.advance(pk, renew_leases=False, inline_callbacks=True) != RunOutcome.NOT_CLAIMED:
                advanced += 1
    raise RuntimeError(f"instances still had work after {max_rounds} rounds; is a workflow looping?")


class InProcessRunner:
    """Runs instances in this process on the engine's clock, skipping time when nothing can run."""

    def __init__(self, time_skipping: bool = True) -> None:
        self.time_skipping = time_skipping

    def run_until_idle(self) -> int:
        """Run everything due now (time does not move); returns how many advances claimed an instance."""
        return run_until_idle()

    def advance(self, duration: Any) -> None:
        """Let a duration (seconds, timedelta or "7 days") pass on the engine's clock, running
        each timer that comes due on the way in order (a sleep, a reminder), as real time would."""
        from workflows.durations import parse_duration

        target = clock.now() + timedelta(seconds=parse_duration(duration))
        for _ in range(10_000):
            run_until_idle()
            upcoming = _next_timer()
            if upcoming is None or upcoming > target or upcoming <= clock.now():
                break
            clock.advance(upcoming - clock.now())
        clock.advance(max(target - clock.now(), timedelta(0)))
        run_until_idle()

    def wait(self, done: Callable[[], Any], description: str, timeout: float | None = None) -> Any:
        """Run and skip time until ``done()`` returns something truthy; return it.

        ``timeout`` bounds the real time spent (None: no bound); the engine's clock may jump
        days meanwhile.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        for _ in range(10_000):
            value = done()
            if value:
                return value
            if run_until_idle():
                continue  # something ran: look again before moving time
            if deadline is not None and time.monotonic() >= deadline:
                raise IntrospectionError(
                    f"{PREFIX} timed out after {timeout}s waiting for {description}{_waiting_hint()}"
                )
            next_timer = _next_timer()
            if not self.time_skipping or next_timer is None:
                raise IntrospectionError(
                    f"{PREFIX} nothing left to run while waiting for {description}{_waiting_hint()}"
                )
            clock.advance(max(next_timer - clock.now(), timedelta(0)))
        raise IntrospectionError(f"{PREFIX} gave up waiting for {description} after 10000 timer jumps")


def _next_timer() -> Any:
    """The earliest timer: a waiting instance's wake-up, a reminder, a notification's retry."""
    timers = [
        Instance.objects.filter(status=Status.WAITING, wake_at__isnull=False).aggregate(m=Min("wake_at"))["m"],
        notifications.next_due(),
    ]
    return min((when for when in timers if when is not None), default=None)


def _waiting_hint() -> str:
    waits = list(
        Step.objects.filter(kind=StepKind.WAIT, status=StepStatus.WAITING).values_list(
            "instance__instance_id", "event_type"
        )
    )
    if not waits:
        return ""
    listed = ", ".join(f"{iid} waits for {etype!r}" for iid, etype in waits[:5])
    return f" ({listed}; send it with send_event or m.mock_event)"


class WorkerRunner:
    """Real `manage.py workflows worker` processes against the test database.

    Use with ``@pytest.mark.django_db(transaction=True)``: workers are other processes and
    only see committed data. ``start()`` launches one more worker; ``stop()`` all of them.
    """

    def __init__(
        self, log_dir: Path | str, *, lease_seconds: float = 2, processes: int = 2, settings_module: str | None = None
    ):
        self.log_dir = Path(log_dir)
        self.lease_seconds = lease_seconds
        self.processes = processes
        self.settings_module = settings_module or os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings")
        self.procs: list[subprocess.Popen] = []
        self.log_paths: dict[int, Path] = {}

    def start(self, *, lease_seconds: float | None = None, env: dict[str, str] | None = None) -> subprocess.Popen:
        """One more worker process tree; ``env`` adds to its environment (another deployment)."""
        from django.conf import settings

        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": self.settings_module,
            "DATABASE_URL": database_url(),
            "WORKFLOWS_ENQUEUE": "1",
            "WORKFLOWS_TEST_OVERRIDES": "1",
            "WORKFLOWS_LEASE_SECONDS": str(lease_seconds or self.lease_seconds),
            "WORKFLOWS_WORKERS": str(self.processes),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        log_path = self.log_dir / f"worker-{len(self.procs) + 1}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "manage.py", "workflows", "worker"],
                cwd=settings.BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.log_paths[proc.pid] = log_path
        self.procs.append(proc)
        return proc

    def stop(self, grace: float = 20) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL one worker's whole process tree, as a crash would."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def run_until_idle(self, timeout: float = 30) -> int:
        """Wait until the workers have done everything due now: nothing queued, running or due.

        Returns 0: advances happen in the workers, which do not report them here.
        """

        def idle() -> bool:
            busy = claimable(clock.now()) | Q(status__in=[Status.RUNNING, Status.WAITING_FOR_PAUSE])
            return not Instance.objects.filter(busy).exists()

        self.wait(idle, "the workers to finish what is due", timeout)
        return 0

    def wait(self, done: Callable[[], Any], description: str, timeout: float | None = None) -> Any:
        """Poll ``done()`` until it returns something truthy (default timeout 30 s); return it."""
        limit = 30.0 if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            value = done()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise IntrospectionError(
                    f"{PREFIX} timed out after {limit}s waiting for {description}{self.log_tails()}"
                )
            time.sleep(0.05)

    def log_tails(self) -> str:
        return "".join(f"\n--- {self.log_paths[p.pid]}\n" + _tail(self.log_paths[p.pid]) for p in self.procs)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def database_url() -> str:
    """The URL of the database this process uses now (inside tests: the test database)."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


_default_runner = InProcessRunner()


# --------------------------------------------------------------------------- modifier


def _selector(step: str | dict) -> dict:
    if isinstance(step, str):
        step = {"name": step}
    if not isinstance(step, dict) or not isinstance(step.get("name"), str) or set(step) - {"name", "index"}:
        raise IntrospectionError(f"{PREFIX} a step selector is {{'name': str, 'index': int (1-based)}}, got {step!r}")
    index = step.get("index", 1)
    if isinstance(index, bool) or not isinstance(index, int) or index < 1:
        raise IntrospectionError(f"{PREFIX} step index is 1-based (the occurrence of the name); got {index!r}")
    return {"name": step["name"], "index": index}


def _selectors(steps: list | None) -> bool | list[dict]:
    return True if steps is None else [_selector(s) for s in steps]


class Modifier:
    """What ``modify(fn)`` hands to ``fn``: each call changes how the instance will run."""

    def __init__(self, introspector: InstanceIntrospector | WorkflowIntrospector) -> None:
        self._introspector = introspector

    def _spec(self) -> dict:
        return self._introspector._spec

    def _save(self) -> None:
        self._introspector._save()

    def disable_sleeps(self, steps: list | None = None) -> None:
        """All sleeps, or those selected (``[{"name", "index"}]``), complete at once (still recorded)."""
        self._merge("disable_sleeps", _selectors(steps))

    def disable_retry_delays(self, steps: list | None = None) -> None:
        self._merge("disable_retry_delays", _selectors(steps))

    def _merge(self, key: str, value: bool | list) -> None:
        spec = self._spec()
        current = spec.get(key, [])
        spec[key] = True if value is True or current is True else current + value
        self._save()

    def mock_step_result(self, step: str | dict, value: Any) -> None:
        """The step's callback is not run; ``value`` becomes its result (with normal attempt records)."""
        sel = _selector(step)
        spec = self._spec()
        if any(m["name"] == sel["name"] and m["index"] == sel["index"] for m in spec.get("step_results", [])):
            raise IntrospectionError(f"{PREFIX} Trying to mock step '{sel['name']}' multiple times!")
        spec.setdefault("step_results", []).append({**sel, "value": encode(value)})
        self._save()

    def mock_step_error(self, step: str | dict, error: BaseException, times: int | None = None) -> None:
        """Attempts raise ``error``: every attempt, or the first ``times`` (then the real callback or mock)."""
        sel = self._check_not_mocked(step, "mock error on")
        if not isinstance(error, BaseException):
            raise IntrospectionError(f"{PREFIX} mock_step_error needs an exception instance, got {error!r}")
        self._spec().setdefault("step_errors", []).append({**sel, "error": error_record(error), "times": _times(times)})
        self._save()

    def force_step_timeout(self, step: str | dict, times: int | None = None) -> None:
        """Attempts time out at once (WorkflowTimeoutError): every attempt, or the first ``times``."""
        sel = self._check_not_mocked(step, "force timeout on")
        self._spec().setdefault("step_timeouts", []).append({**sel, "times": _times(times)})
        self._save()

    def _check_not_mocked(self, step: str | dict, what: str) -> dict:
        sel = _selector(step)
        if any(m["name"] == sel["name"] and m["index"] == sel["index"] for m in self._spec().get("step_results", [])):
            raise IntrospectionError(f"{PREFIX} Trying to {what} step '{sel['name']}' after mocking its result!")
        return sel

    def mock_event(self, event: dict) -> None:
        """Deliver ``{"type", "payload"}`` as if sent with send_event (buffered until a wait takes it)."""
        if not isinstance(event, dict) or "type" not in event or set(event) - {"type", "payload"}:
            raise IntrospectionError(f"{PREFIX} mock_event takes {{'type': str, 'payload': ...}}, got {event!r}")
        assert isinstance(self._introspector, InstanceIntrospector)  # _WorkflowModifier refuses mock_event
        self._introspector._mock_event(event["type"], event.get("payload"))

    def force_event_timeout(self, step: str | dict) -> None:
        """That wait_for_event times out at once with WorkflowTimeoutError."""
        self._spec().setdefault("event_timeouts", []).append(_selector(step))
        self._save()


def _times(times: int | None) -> int | None:
    if times is None:
        return None
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise IntrospectionError(f"{PREFIX} times must be a positive integer or None, got {times!r}")
    return times


# --------------------------------------------------------------------------- introspectors


def _save_override(
    override: TestOverride | None, workflow_name: str, instance_id: str | None, spec: dict
) -> TestOverride:
    """Store a session's modifications (instance_id None: every instance of the workflow)."""
    if override is None:
        return TestOverride.objects.create(
            workflow_name=workflow_name, instance_id=instance_id, spec=spec, created_at=clock.now()
        )
    override.spec = spec
    override.save(update_fields=["spec"])
    return override


class InstanceIntrospector:
    """One instance, set up before (or after) it is created: modify it, wait for it, read it."""

    def __init__(
        self, workflow_name: str, instance_id: str, runner: Runner | None = None, override: TestOverride | None = None
    ) -> None:
        self.workflow_name = workflow_name
        self.instance_id = instance_id
        self.runner = runner or _default_runner
        self._override = override
        self._spec = dict(override.spec) if override else {}
        self._pending_events: list[tuple[str, object]] = []
        _activate()

    def __enter__(self) -> InstanceIntrospector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        return f"<InstanceIntrospector {self.workflow_name}/{self.instance_id}>"

    # ---- modifications

    def modify(self, fn: Callable[[Modifier], Any]) -> InstanceIntrospector:
        fn(Modifier(self))
        return self

    def _save(self) -> None:
        self._override = _save_override(self._override, self.workflow_name, self.instance_id, self._spec)

    def _mock_event(self, event_type: str, payload: Any) -> None:
        handle = self._maybe_handle()
        if handle is None:
            self._pending_events.append((event_type, payload))
        else:
            handle.send_event(event_type, payload)

    def _deliver_pending_events(self) -> None:
        handle = self._maybe_handle()
        if handle is not None:
            while self._pending_events:
                handle.send_event(*self._pending_events.pop(0))

    # ---- reading

    def _maybe_handle(self) -> InstanceHandle | None:
        """The instance's handle, or None while it has not been created."""
        from workflows.api import InstanceHandle

        exists = Instance.objects.filter(workflow_name=self.workflow_name, instance_id=self.instance_id).exists()
        return InstanceHandle(self.workflow_name, self.instance_id) if exists else None

    def _handle(self) -> InstanceHandle:
        handle = self._maybe_handle()
        if handle is None:
            raise IntrospectionError(
                f"{PREFIX} instance {self.instance_id!r} of {self.workflow_name!r} has not been created"
            )
        return handle

    def status(self) -> str:
        self._deliver_pending_events()
        handle = self._maybe_handle()
        return handle.status()["status"] if handle else "unknown"

    def _step(self, name: str, index: int, kind: str = StepKind.DO) -> Step | None:
        return Step.objects.filter(
            instance__workflow_name=self.workflow_name,
            instance__instance_id=self.instance_id,
            run_number=F("instance__run_number"),  # the current run, not steps a restart replaced
            kind=kind,
            name=name,
            occurrence=index,
        ).first()

    def wait_for_step_result(self, step: str | dict, index: int | None = None, timeout: float | None = None) -> Any:
        """The step's stored result once it succeeds; raises its error if it fails for good."""
        sel = _selector(
            step if index is None else {"name": step if isinstance(step, str) else step["name"], "index": index}
        )

        def done() -> Step | None:
            self._deliver_pending_events()
            row = self._step(sel["name"], sel["index"])
            if row is not None and row.status in (StepStatus.SUCCEEDED, StepStatus.FAILED):
                return row
            status = self.status()
            if status in FINISHED:
                raise IntrospectionError(
                    f"{PREFIX} The Workflow instance {self.instance_id} reached status '{status}' without step "
                    f"'{sel['name']}' (index {sel['index']}) finishing"
                )
            return None

        row = self.runner.wait(done, f"step '{sel['name']}' (index {sel['index']})", timeout)
        if row.status == StepStatus.FAILED:
            raise rebuild_error(row.error)
        return decode(row.result)

    def wait_for_status(self, status: str, timeout: float | None = None) -> str:
        """Returns once the instance has ``status``; raises at once if a different final status makes it unreachable."""
        if status not in Status.values:
            raise IntrospectionError(f"{PREFIX} unknown status {status!r}; one of {', '.join(Status.values)}")

        def done() -> str | None:
            current = self.status()
            if current == status:
                return current
            if current in FINISHED:
                raise IntrospectionError(
                    f"{PREFIX} The Workflow instance {self.instance_id} has reached status '{current}'. "
                    "This is a finite "
                    f"status that prevents it from ever reaching the expected status of '{status}'."
                )
            return None

        return self.runner.wait(done, f"status '{status}' of {self.instance_id}", timeout)

    def get_output(self) -> Any:
        return self._final(Status.COMPLETE, "output", "an output")

    def get_error(self) -> dict:
        return self._final(Status.ERRORED, "error", "error information")

    def _final(self, wanted: str, key: str, what: str) -> Any:
        """The instance's output or error, refused (with the spec's message) in any other status."""
        current = self._handle().status()
        if current["status"] != wanted:
            raise IntrospectionError(
                f'Cannot retrieve {key}: Workflow instance is in status "{current["status"]}" but must be "{wanted}" '
                f"to have {what} available"
            )
        return current[key]

    def dispose(self) -> None:
        """Stop the instance and delete all its state and modifications, so its id can be reused."""
        delete_instances(Instance.objects.filter(workflow_name=self.workflow_name, instance_id=self.instance_id))
        if self._override is not None and self._override.pk:
            self._override.delete()
        _deactivate()


class WorkflowIntrospector:
    """Captures every instance of a workflow created while it is active."""

    _active: dict[str, WorkflowIntrospector] = {}

    def __init__(self, workflow_name: str, runner: Runner | None = None) -> None:
        if workflow_name in self._active:
            raise IntrospectionError(
                f'Workflow "{workflow_name}" already has an active introspection session for binding "{workflow_name}".'
            )
        self.workflow_name = workflow_name
        self.runner = runner or _default_runner
        self.started = clock.now()
        self._first_pk = Instance.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        self._override: TestOverride | None = None
        self._spec: dict = {}
        self._introspectors: dict[str, InstanceIntrospector] = {}
        self._active[workflow_name] = self
        _activate()

    def __enter__(self) -> WorkflowIntrospector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def modify_all(self, fn: Callable[[Modifier], Any]) -> WorkflowIntrospector:
        """Apply modifications to every instance created from now on (mock_event is per instance)."""
        fn(_WorkflowModifier(self))
        return self

    def _save(self) -> None:
        self._override = _save_override(self._override, self.workflow_name, None, self._spec)

    def get(self) -> list[InstanceIntrospector]:
        """Introspectors of the instances created since the session started, oldest first."""
        ids = (
            Instance.objects.filter(workflow_name=self.workflow_name, pk__gt=self._first_pk)
            .order_by("pk")
            .values_list("instance_id", flat=True)
        )
        for instance_id in ids:
            if instance_id not in self._introspectors:
                self._introspectors[instance_id] = InstanceIntrospector(self.workflow_name, instance_id, self.runner)
        return list(self._introspectors.values())

    def dispose(self) -> None:
        for introspector in self.get():
            introspector.dispose()
        if self._override is not None and self._override.pk:
            self._override.delete()
        self._active.pop(self.workflow_name, None)
        _deactivate()


class _WorkflowModifier(Modifier):
    def mock_event(self, event: dict) -> None:
        raise IntrospectionError(f"{PREFIX} mock_event applies to one instance; use introspect_workflow_instance")


def introspect_workflow_instance(
    workflow: str | WorkflowHandle, instance_id: str, runner: Runner | None = None
) -> InstanceIntrospector:
    """An introspector for instance ``instance_id`` of ``workflow`` (a handle from get_workflow, or its name)."""
    name = workflow if isinstance(workflow, str) else workflow.name
    return InstanceIntrospector(name, instance_id, runner)


def introspect_workflow(workflow: str | WorkflowHandle, runner: Runner | None = None) -> WorkflowIntrospector:
    name = workflow if isinstance(workflow, str) else workflow.name
    return WorkflowIntrospector(name, runner)


_sessions = 0


def _activate() -> None:
    global _sessions
    _sessions += 1
    overrides.ACTIVE_IN_PROCESS = True


def _deactivate() -> None:
    global _sessions
    _sessions = max(0, _sessions - 1)
    overrides.ACTIVE_IN_PROCESS = _sessions > 0


__all__ = [
    "InProcessRunner",
    "WorkerRunner",
    "IntrospectionError",
    "introspect_workflow",
    "introspect_workflow_instance",
    "run_until_idle",
]


# --------------------------------------------------------------------------- replay checks


def export_history(handle: Any, path: str | Path | None = None) -> dict:
    """An instance's recorded history as JSON (written to ``path`` when given): keep real
    instances' histories as fixtures and replay them against new code with ``check_replay``."""
    import json

    from workflows.replay_check import export_history as _export

    history = _export(Instance.objects.get(workflow_name=handle.workflow_name, instance_id=handle.id))
    if path is not None:
        Path(path).write_text(json.dumps(history, indent=2))
    return history


def check_replay(workflow_cls: type, history: dict | str | Path) -> Any:
    """Replay a history (a dict, or a JSON file) through ``workflow_cls``'s current code without
    running or writing anything; returns a report: ``.result`` is clean, diverges or raises."""
    import json

    from workflows.replay_check import check_history

    loaded: dict = history if isinstance(history, dict) else json.loads(Path(history).read_text())
    return check_history(workflow_cls, loaded)
