"""The engine's settings: ``settings.WORKFLOWS`` merged over these defaults.

Read on every use (a dict lookup), so tests can change them with pytest-django's
``settings`` fixture.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Step config used where a step.do gives none (decision 2). Numbers are seconds.
    "STEP_RETRIES": {"limit": 5, "delay": 10, "backoff": "exponential"},
    "STEP_TIMEOUT": 600,
    # Stored size limit of params, step results, event payloads and output (decision 6).
    "MAX_VALUE_BYTES": 2**20,
    # step.do calls per run (cached replays count; sleeps and waits do not).
    "STEP_LIMIT": 10_000,
    # A worker holds an instance under a lease it renews while it works. If the worker
    # dies, another one takes the instance over once the lease has run out.
    "LEASE_SECONDS": 20,
    # How long a dispatched "advance this instance" task may wait in the queue before the
    # dispatcher sends another one (covers a task lost with a killed cluster).
    "DISPATCH_GRACE_SECONDS": 30,
    # How often the dispatcher looks for due timers and expired leases (one indexed MIN
    # query; it also sleeps exactly until the earliest due time when that comes sooner).
    "POLL_SECONDS": 0.05,
    # Leases taken over from dead workers in a row (no step finishing between them) before
    # the instance is errored instead of crashing workers forever.
    "MAX_WORKER_CRASHES": 5,
    # A worker hands an instance back to the queue after running it this long, at the
    # next step boundary, so one busy instance cannot hold a worker forever.
    "RUN_SLICE_SECONDS": 300,
    # After the instance it was kicked for, a worker keeps taking runnable instances from
    # the table for this long (engine.backlog), instead of one queue round trip each.
    "BACKLOG_SECONDS": 1.0,
    # How many kicks create_batch sends for a batch (each engages one worker process).
    "KICKS_PER_BATCH": 16,
    # An event queues no kick; the fast lanes find it at once. An instance it woke that no
    # fast lane has claimed after this long is kicked by the dispatcher.
    "FAST_LANE_HEAD_START_SECONDS": 0.02,
    # How long a stopping worker waits for running steps before killing its processes.
    "SHUTDOWN_GRACE_SECONDS": 30,
    # Finished instances are kept this long (decision 8).
    "RETENTION_DAYS": 30,
    # PostgreSQL: the engine's hot statements are prepared once per connection
    # (workflows.prepared). Set False behind a transaction-mode pooler older than PgBouncer 1.21.
    "PREPARED_STATEMENTS": True,
    # Send kicks to django-q2. Off only for tests that run instances in-process.
    "ENQUEUE": True,
    # Where kicks go: "database" (django-q2's ORM queue, in the same transaction as the
    # change) or "redis" (pushed after commit; the dispatcher re-sends one lost in between).
    "BROKER": "database",
    # Apply workflows.testing modifications (mocked steps, skipped sleeps) in this process.
    # Set in the settings of worker processes that tests start; off in production.
    "TEST_OVERRIDES": False,
    # Fan-out: steps of one instance running at once beyond this many in the coordinating
    # worker are handed to other worker processes (CPU-bound fan-out then scales with the
    # number of workers). Raise it for fan-out of I/O-bound steps, which threads serve well.
    "LOCAL_STEP_CONCURRENCY": 4,
    # How often a coordinating worker checks on the steps it handed out (seconds).
    "FANOUT_POLL_SECONDS": 0.05,
    # A handed-out step nobody has claimed after this long is run by its coordinator when
    # it has a free slot (so fan-out finishes even when every other worker is busy).
    "STEAL_AFTER_SECONDS": 1.0,
    # Named bindings available as self.env.NAME in workflows (see workflows/bindings).
    "BINDINGS": {},
    # django-q2 worker processes started by `manage.py workflows worker`.
    "WORKERS": 2,
    # The name of this deployment, recorded on the instances it runs (default: the git commit,
    # else the package version). See workflows.versions.
    "DEPLOYMENT": "",
    # True: a worker advances only instances of the workflow versions its own code has.
    "PIN_VERSIONS": False,
    # When a replay finds the code and the recorded history disagree: "warn" (record it on
    # the instance and carry on) or "error" (the instance errors with NonDeterminismError).
    "ON_DIVERGENCE": "warn",
    # Traces (workflows.tracing): "" (off), "otlp" (OTEL_* variables), "console" or "file:<path>".
    "TRACING": "",
    # A link to a trace UI from an instance's page, e.g. "http://localhost:16686/trace/{trace_id}".
    "TRACE_URL": "",
    # How approvers hear of requests: dotted paths of notifier classes (workflows.notifiers).
    "APPROVAL_NOTIFIERS": ["workflows.notifiers.EmailNotifier"],
    # Where people reach the dashboard, for the links in notifications ("https://ops.example.com").
    "BASE_URL": "",
    # The path of a personal decision link on the dashboard ({token} is filled in).
    "APPROVAL_LINK_PATH": "/approvals/link/{token}/",
    # True: a decision link alone identifies its addressee (no login). Off by default.
    "APPROVAL_LINKS_TOKEN_ONLY": False,
    # The JSON webhook notifier's endpoint and HMAC secret (workflows.notifiers.WebhookNotifier).
    "APPROVAL_WEBHOOK_URL": "",
    "APPROVAL_WEBHOOK_SECRET": "",
    # A notification is tried this many times, waiting NOTIFY_RETRY_SECONDS, then twice
    # that, and so on between attempts; each attempt may take NOTIFY_TIMEOUT_SECONDS.
    "NOTIFY_ATTEMPTS": 5,
    "NOTIFY_RETRY_SECONDS": 30,
    "NOTIFY_TIMEOUT_SECONDS": 10,
}


def get(name: str) -> Any:
    overrides = getattr(settings, "WORKFLOWS", {}) or {}
    return overrides.get(name, DEFAULTS[name])
