"""The engine's tables: the source of truth for every instance, step, attempt and event.

django-q2 only carries "advance instance N" kicks; whatever it loses or duplicates, these
rows say what has happened and what is due.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from workflows.states import ApprovalStatus, Permission, Status, StepKind, StepStatus


class Instance(models.Model):
    """One run of a workflow, unique by (workflow_name, instance_id).

    Scheduling columns:
    - ``wake_at``: when a waiting instance has something to do (earliest timer, or now
      when an awaited event arrived). A worker may only claim a waiting instance once due.
    - ``due_at``: when the dispatcher should look at the instance next: a timer, an
      expired lease (a dead worker), or a kick that may have been lost. NULL when nothing
      is due (paused, finished). Indexed: the dispatcher's only query.
    - ``lease_token``/``lease_until``: the worker that currently advances the instance.
      Every write a worker makes is fenced on its token, so a worker that lost its lease
      (terminate, restart, or a takeover after it stalled) can never commit again.
    - ``events_version``: bumped by every send_event; a worker parks only if it is
      unchanged since it claimed, so an event racing with parking is never missed.
    """

    workflow_name = models.CharField(max_length=64)
    instance_id = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    params = models.TextField(default="null")
    output = models.TextField(null=True)
    error = models.JSONField(null=True)

    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True)
    ended_at = models.DateTimeField(null=True)
    updated_at = models.DateTimeField()

    wake_at = models.DateTimeField(null=True)
    due_at = models.DateTimeField(null=True)
    lease_token = models.CharField(max_length=32, null=True)
    lease_until = models.DateTimeField(null=True)
    pause_requested = models.BooleanField(default=False)
    paused_at = models.DateTimeField(null=True)
    events_version = models.BigIntegerField(default=0)
    worker_crashes = models.IntegerField(default=0)

    # Set when a step of another instance created this one (the parent-child pattern).
    parent_workflow = models.CharField(max_length=64, null=True)
    parent_instance_id = models.CharField(max_length=100, null=True)
    # Which run of the instance is current: 1, then one more after each restart. Steps of
    # earlier runs are kept (with their attempts) as history; replay reads only this run's.
    run_number = models.PositiveIntegerField(default=1)
    # The workflow's version when the instance was created, and the deployment that last
    # claimed it (workflows.versions); the latest divergence between code and history.
    version = models.CharField(max_length=40, blank=True)
    deployment = models.CharField(max_length=60, blank=True)
    divergence = models.JSONField(null=True)
    # Tracing (workflows.tracing): the "create" span's traceparent, and the last segment's.
    trace_context = models.CharField(max_length=60, blank=True)
    last_span = models.CharField(max_length=60, blank=True)
    # {"cron", "scheduled_time"} for instances created by a workflow's cron schedule.
    schedule = models.JSONField(null=True)

    class Meta:
        db_table = "wf_instance"
        constraints = [
            models.UniqueConstraint(fields=["workflow_name", "instance_id"], name="wf_instance_unique_id"),
        ]
        indexes = [
            models.Index(fields=["due_at"], name="wf_instance_due", condition=models.Q(due_at__isnull=False)),
            # The runnable backlog a worker takes from after its instance (engine.backlog).
            models.Index(
                fields=["wake_at"], name="wf_instance_runnable", condition=models.Q(status__in=["queued", "waiting"])
            ),
            models.Index(fields=["workflow_name", "status", "-created_at"], name="wf_instance_list"),
            models.Index(fields=["-created_at"], name="wf_instance_created"),
            models.Index(fields=["parent_workflow", "parent_instance_id"], name="wf_instance_parent"),
        ]
        # Enforced by the dashboard and the HTTP API (the engine's Python API trusts its caller).
        permissions = [(permission.codename, permission.label) for permission in Permission]

    def __str__(self) -> str:
        return f"{self.workflow_name}/{self.instance_id}"


class Step(models.Model):
    """A step.do, sleep or wait_for_event, memoised by (kind, name, occurrence)."""

    # No index of its own: the unique key and wf_step_pending start with instance_id, and
    # every step's insert and status change would write a third entry for nothing.
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="steps", db_index=False)
    # The run it belongs to (Instance.run_number). A restart moves the steps it keeps to the
    # new run and leaves the others in the old one, as history.
    run_number = models.PositiveIntegerField(default=1)
    kind = models.CharField(max_length=8, choices=StepKind.choices)
    name = models.CharField(max_length=256)
    occurrence = models.IntegerField()
    seq = models.IntegerField(help_text="order in which steps first started")
    status = models.CharField(max_length=12, choices=StepStatus.choices)
    result = models.TextField(null=True)
    error = models.JSONField(null=True)
    config = models.JSONField(null=True)
    attempts = models.IntegerField(default=0)
    # When the current (or last, successful) attempt started. Attempt rows are written for
    # failed attempts only; the successful one is this row, which saves a write per step.
    attempt_started_at = models.DateTimeField(null=True)
    wake_at = models.DateTimeField(null=True)
    event_type = models.CharField(max_length=100, null=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True)
    # Set while another worker process runs this step for its instance (fan-out); that
    # worker's writes are fenced on it, as an instance's are on the instance lease.
    lease_token = models.CharField(max_length=32, null=True)
    lease_until = models.DateTimeField(null=True)
    # Set when an operator resolved the step by hand ({"by", "at", "note"}): its result was
    # typed in, not computed (``InstanceHandle.resolve_step``).
    resolution = models.JSONField(null=True)

    class Meta:
        db_table = "wf_step"
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "run_number", "kind", "name", "occurrence"], name="wf_step_unique_key"
            ),
        ]
        indexes = [
            models.Index(fields=["instance", "status"], name="wf_step_pending"),
            # The approval inbox: waiting event waits by deadline.
            models.Index(
                fields=["kind", "status", "wake_at"],
                name="wf_step_waits",
                condition=models.Q(status=StepStatus.WAITING),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}-{self.occurrence}"


class Attempt(models.Model):
    """A failed attempt of a step (the successful one is recorded on the step itself)."""

    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.IntegerField()
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True)
    success = models.BooleanField(null=True)
    error = models.JSONField(null=True)
    traceback = models.TextField(blank=True, default="")
    retry_delay = models.FloatField(null=True, help_text="seconds waited before the next attempt")

    class Meta:
        db_table = "wf_attempt"
        constraints = [models.UniqueConstraint(fields=["step", "number"], name="wf_attempt_unique")]


class Event(models.Model):
    """An event sent to an instance; buffered FIFO per type until a wait consumes it."""

    # No index of its own: wf_event_fifo starts with instance_id.
    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="events", db_index=False)
    type = models.CharField(max_length=100)
    payload = models.TextField(default="null")
    created_at = models.DateTimeField()
    consumed_by = models.OneToOneField(Step, null=True, on_delete=models.SET_NULL, related_name="consumed_event")
    consumed_at = models.DateTimeField(null=True)
    # A sender's retry with the same key is the same event (delivered once).
    idempotency_key = models.CharField(max_length=200, null=True)

    trace_context = models.CharField(max_length=60, blank=True)  # the sender's traceparent (tracing)

    class Meta:
        db_table = "wf_event"
        indexes = [models.Index(fields=["instance", "type", "consumed_at", "id"], name="wf_event_fifo")]
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "idempotency_key"],
                name="wf_event_once",
                condition=models.Q(idempotency_key__isnull=False),
            )
        ]


class TestOverride(models.Model):
    """Modifications a test asked for (``workflows.testing``): mocked steps, skipped sleeps...

    Kept in the database so a real worker process sees them too. ``instance_id`` NULL
    applies to every instance of the workflow created while the row exists. Consulted only
    when WORKFLOWS["TEST_OVERRIDES"] is on or a test session is active in this process.
    """

    __test__ = False  # not a pytest test class, despite the name

    workflow_name = models.CharField(max_length=64)
    instance_id = models.CharField(max_length=100, null=True)
    spec = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "wf_test_override"
        indexes = [models.Index(fields=["workflow_name", "instance_id"], name="wf_test_override_key")]


class ApprovalRequest(models.Model):
    """A ``step.wait_for_approval``: what is asked, who may decide, how many must agree, the end.

    Created with its step (kind ``approval``), in the worker's fenced transaction. Its
    deadline is the step's ``wake_at`` (so pausing moves it). ``workflows.approvals.decide``
    records decisions and closes it once (a row lock, then a conditional status change);
    the step reads the outcome when its instance replays.
    """

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="approval_requests")
    step = models.OneToOneField(Step, on_delete=models.CASCADE, related_name="approval_request")
    # The instance's and step's names, kept here so lists and filters need no join.
    workflow_name = models.CharField(max_length=64)
    instance_key = models.CharField(max_length=100)
    step_name = models.CharField(max_length=256)
    occurrence = models.IntegerField()
    title = models.TextField(blank=True)
    details = models.TextField(default="null")  # a mapping, stored by the value codec
    # The entries as the author wrote them ("group:finance", "user:ada", "perm:app.code"); None
    # means anyone with the approve permission. ApprovalApprover holds them for queries.
    approvers = models.JSONField(null=True)
    quorum = models.PositiveIntegerField(default=1)
    requested_by = models.CharField(max_length=150, null=True)
    form = models.CharField(max_length=300, blank=True)  # dotted path of a django.forms.Form
    status = models.CharField(max_length=12, choices=ApprovalStatus.choices, default=ApprovalStatus.OPEN)
    created_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True)
    closed_by = models.CharField(max_length=150, blank=True)
    result = models.TextField(null=True)  # the payload the step receives, stored by the value codec
    # Seconds from opening to closing, kept for the "how long humans take" figures.
    decision_seconds = models.FloatField(null=True)

    # The policy: reminders every remind_every seconds, escalation to escalate_to after
    # escalate_after seconds, and what the deadline decides (error, approve or reject).
    # Times are absolute (and move on with a paused instance, like its step timers).
    remind_every = models.FloatField(null=True)
    next_reminder_at = models.DateTimeField(null=True)
    escalate_to = models.JSONField(null=True)
    escalate_at = models.DateTimeField(null=True)  # NULL once escalated, or without escalation
    on_timeout = models.CharField(max_length=8, default="error")
    # The earliest of: the opening notifications (now, until sent), the next reminder, the
    # escalation. An engine timer like a step's wake_at, NULL when nothing is left; taken by
    # one dispatcher at a time under the row lock, so each slot fires once.
    nudge_at = models.DateTimeField(null=True)
    notified_at = models.DateTimeField(null=True)  # when the opening notifications were queued
    reminders_sent = models.IntegerField(default=0)
    escalated_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "wf_approval"
        indexes = [
            models.Index(
                fields=["workflow_name", "created_at"],
                name="wf_approval_open",
                condition=models.Q(status=ApprovalStatus.OPEN),
            ),
            models.Index(fields=["status", "-closed_at"], name="wf_approval_closed"),
            models.Index(fields=["nudge_at"], name="wf_approval_nudge", condition=models.Q(nudge_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"approval {self.pk} ({self.workflow_name}/{self.instance_key}: {self.step_name})"


class ApprovalApprover(models.Model):
    """One entry of a request's approvers, split for "what may this user decide" queries."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="approver_rows")
    kind = models.CharField(max_length=8)  # user, group or perm
    value = models.CharField(max_length=255)
    escalated = models.BooleanField(default=False)  # added by the escalation policy

    class Meta:
        db_table = "wf_approval_approver"
        constraints = [models.UniqueConstraint(fields=["request", "kind", "value"], name="wf_approver_once")]
        indexes = [models.Index(fields=["kind", "value"], name="wf_approver_lookup")]


class ApprovalDecision(models.Model):
    """One person's decision on a request: each decides once (the unique key makes sure)."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="decision_rows")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)
    # Decided by ``username`` for this approver, who had delegated to them.
    on_behalf_of = models.CharField(max_length=150, blank=True)
    approved = models.BooleanField()
    comment = models.TextField(blank=True)
    data = models.TextField(default="{}")  # the form's cleaned data, stored by the value codec
    decided_at = models.DateTimeField()
    channel = models.CharField(max_length=16)  # dashboard, api, cli, python
    # Decided as a superuser who is not among the approvers (the audit says so).
    as_superuser = models.BooleanField(default=False)

    class Meta:
        db_table = "wf_approval_decision"
        ordering = ["decided_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["request", "username"], name="wf_decision_once")]
        indexes = [models.Index(fields=["username", "-decided_at"], name="wf_decision_by")]


class Notification(models.Model):
    """One message to one person about one request, in one slot: the outbox.

    Written in the transaction that opens the request, claims a reminder slot or escalates,
    so it exists exactly when they happen; unique per (request, kind, slot, recipient,
    notifier), so a slot is never notified twice. Delivered by a django-q2 task, retried with
    backoff; a failure is logged and shown on the timeline, and never fails the workflow.
    """

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=12)  # opened, reminder, escalation
    slot = models.IntegerField(default=0)  # the reminder's number (0 for opened and escalation)
    recipient = models.CharField(max_length=150)  # a username
    notifier = models.CharField(max_length=200)  # the notifier's dotted path
    status = models.CharField(max_length=8, default="pending")  # pending, sent, failed, skipped
    attempts = models.IntegerField(default=0)
    # Like an instance's wake_at and due_at: an attempt may start once next_attempt_at has
    # come; the dispatcher kicks a delivery task again at due_at if the last one was lost.
    next_attempt_at = models.DateTimeField(null=True)
    due_at = models.DateTimeField(null=True)
    on_behalf_of = models.CharField(max_length=150, blank=True)  # the away approver a delegate is told for
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "wf_notification"
        constraints = [
            models.UniqueConstraint(
                fields=["request", "kind", "slot", "recipient", "notifier"], name="wf_notification_once"
            )
        ]
        indexes = [
            models.Index(fields=["due_at"], name="wf_notification_due", condition=models.Q(due_at__isnull=False)),
            models.Index(fields=["recipient", "-created_at"], name="wf_notification_to"),
        ]


class ApprovalLink(models.Model):
    """A personal link to one request for one approver: expires at the deadline, works once."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="links")
    username = models.CharField(max_length=150)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "wf_approval_link"
        constraints = [models.UniqueConstraint(fields=["request", "username"], name="wf_approval_link_once")]


class Delegation(models.Model):
    """While ``user`` is away (starts to ends), ``delegate`` sees, decides and is told of their requests."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="delegations")
    delegate = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stand_ins")
    starts = models.DateTimeField()
    ends = models.DateTimeField()
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "wf_delegation"
        indexes = [models.Index(fields=["delegate", "ends"], name="wf_delegation_delegate")]


class InstanceAttribute(models.Model):
    """A search attribute of an instance ("customer" = "acme"): business keys to find it by.

    Written from the params named by ``Workflow.search_attributes`` when the instance is
    created, and by ``step.set_attributes`` from ``run()``; looked up through its index.
    """

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="attributes")
    name = models.CharField(max_length=64)
    value = models.CharField(max_length=200)

    class Meta:
        db_table = "wf_attribute"
        constraints = [models.UniqueConstraint(fields=["instance", "name"], name="wf_attribute_once")]
        indexes = [models.Index(fields=["name", "value", "instance"], name="wf_attribute_lookup")]


class BulkJob(models.Model):
    """An action applied to every instance matching a filter, by the workers, in batches.

    First the matching instances are selected into items (``selecting``, by pk ranges), then
    each item is applied in its own transaction together with its result (``running``), so a
    killed worker's job resumes where it stopped and never acts on an instance twice. One
    runner at a time holds the job's lease; the dispatcher re-kicks a job whose runner died.
    """

    action = models.CharField(max_length=12)  # retry, resolve, terminate, pause, resume
    filter = models.JSONField()  # InstanceFilter.as_dict()
    options = models.JSONField(default=dict)  # resolve: {"step", "count", "output", "note"}
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor = models.CharField(max_length=150, blank=True)
    channel = models.CharField(max_length=12)
    status = models.CharField(max_length=10, default="selecting")  # selecting, running, done, cancelled
    total = models.IntegerField(default=0)
    done = models.IntegerField(default=0)
    refused = models.IntegerField(default=0)
    skipped = models.IntegerField(default=0)
    selected_up_to = models.BigIntegerField(default=0)  # the last instance pk selected
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True)
    lease_token = models.CharField(max_length=32, null=True)
    lease_until = models.DateTimeField(null=True)
    due_at = models.DateTimeField(null=True)  # when the dispatcher should (re)start a runner

    class Meta:
        db_table = "wf_bulk_job"
        indexes = [models.Index(fields=["due_at"], name="wf_bulk_job_due", condition=models.Q(due_at__isnull=False))]


class BulkJobItem(models.Model):
    """One instance of a bulk job, and what became of it."""

    job = models.ForeignKey(BulkJob, on_delete=models.CASCADE, related_name="items")
    instance_pk = models.BigIntegerField()
    workflow_name = models.CharField(max_length=64)
    instance_key = models.CharField(max_length=100)
    status = models.CharField(max_length=8, default="pending")  # pending, done, refused, skipped
    message = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "wf_bulk_item"
        constraints = [
            models.UniqueConstraint(fields=["job", "instance_pk"], name="wf_bulk_item_once"),
            # Two jobs never hold the same instance pending: the second one skips it.
            models.UniqueConstraint(
                fields=["instance_pk"], name="wf_bulk_item_pending", condition=models.Q(status="pending")
            ),
        ]
        indexes = [models.Index(fields=["job", "status", "id"], name="wf_bulk_item_job")]


class AuditRecord(models.Model):
    """One mutation: who did what to which instance, through which channel, and when.

    Written by the public API in the transaction of the change itself, whatever called it
    (the dashboard, the HTTP API, the CLI, a bulk action, your code), so there is no change
    without its record. The actor and channel come from ``workflows.audit.acting``.
    """

    at = models.DateTimeField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor = models.CharField(max_length=150, blank=True)  # the username, kept if the user is deleted
    channel = models.CharField(max_length=12)  # dashboard, api, cli, link, python, schedule, system
    action = models.CharField(max_length=40)
    workflow_name = models.CharField(max_length=64, blank=True)
    instance_key = models.CharField(max_length=100, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "wf_audit"
        indexes = [
            models.Index(fields=["workflow_name", "instance_key", "at"], name="wf_audit_instance"),
            models.Index(fields=["at"], name="wf_audit_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor or 'system'} via {self.channel}: {self.action}"


class ApprovalTiming(models.Model):
    """How many requests of a workflow closed on a day with a decision time in a bucket.

    Buckets are 5 % wide on a log scale (``workflows.approval_stats``), so the Approvals
    page reads a few hundred rows for its percentiles however many requests were decided,
    and keeps them when the instances themselves are pruned by retention.
    """

    workflow_name = models.CharField(max_length=64)
    day = models.DateField()
    bucket = models.SmallIntegerField()
    count = models.IntegerField(default=0)

    class Meta:
        db_table = "wf_approval_timing"
        constraints = [
            models.UniqueConstraint(fields=["workflow_name", "day", "bucket"], name="wf_approval_timing_key")
        ]
        indexes = [models.Index(fields=["day"], name="wf_approval_timing_day")]


class MetricSample(models.Model):
    """A counter or a histogram bucket kept in the database, so every process and machine adds
    to one figure; ``/metrics`` reads this small table instead of scanning the engine's."""

    name = models.CharField(max_length=100)
    labels = models.CharField(max_length=300)  # canonical JSON of the label values
    value = models.FloatField(default=0)

    class Meta:
        db_table = "wf_metric"
        constraints = [models.UniqueConstraint(fields=["name", "labels"], name="wf_metric_key")]


class WorkerHeartbeat(models.Model):
    """A running `workflows worker`, as its dispatcher last reported (health and metrics)."""

    name = models.CharField(max_length=200, unique=True)  # host:pid
    host = models.CharField(max_length=150)
    pid = models.IntegerField()
    processes = models.IntegerField()
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        db_table = "wf_worker"


class StatusCount(models.Model):
    """How many instances each workflow has per version and status: the overview's figures.

    Kept by the database itself: triggers on ``wf_instance`` append a row to
    ``StatusDelta`` for every insert and every change of status (a -1 and a +1), so no code
    path can miss one, and concurrent transactions never wait on a shared counter row. The
    dispatcher folds the deltas into these rows every few seconds (``workflows.status_counts``);
    a reader adds both, so figures are exact at every moment without counting the instances.
    """

    workflow_name = models.CharField(max_length=64)
    version = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=16)
    n = models.BigIntegerField(default=0)
    last_at = models.DateTimeField(null=True)  # the latest change of status counted here

    class Meta:
        db_table = "wf_status_count"
        constraints = [
            models.UniqueConstraint(fields=["workflow_name", "version", "status"], name="wf_status_count_key"),
        ]


class StatusDelta(models.Model):
    """One +1 or -1 of a StatusCount, appended by the triggers (see StatusCount)."""

    workflow_name = models.CharField(max_length=64)
    version = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=16)
    n = models.IntegerField()
    at = models.DateTimeField(null=True)

    class Meta:
        db_table = "wf_status_delta"
