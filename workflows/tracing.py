"""OpenTelemetry traces of instances: one trace per instance, from whatever created it to its end.

Off unless ``WORKFLOWS["TRACING"]`` names an exporter (``otlp``: the standard ``OTEL_*``
variables say where; ``console``; ``file:<path>``, JSON lines that ``manage.py workflows
trace`` prints as a tree) and the ``otel`` extra is installed. Off, nothing here imports
OpenTelemetry and every function is a no-op.

On: creating an instance records a short "create" span under the creator's context (an API
request's ``traceparent``, a parent workflow's step, a CLI call) and keeps its context on
the instance. Each run segment (a claim, from start to park or finish, on any worker, on any
day) is a span in that same trace, linked to the segment before it; each step attempt is a
child span (name, attempt, outcome, error); sleeps, event waits and approvals are spans of
the time waited (for approvals, who decided). ``send_event`` keeps the sender's context on
the event, and the wait that takes it links to it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from workflows import conf

if TYPE_CHECKING:
    from workflows.engine.replay import InstanceRun

log = logging.getLogger("workflows.tracing")

_tracer: Any = None
_setup_lock = threading.Lock()
_setup_for: str | None = None


def enabled() -> bool:
    return bool(conf.get("TRACING"))


def tracer() -> Any:
    """The tracer (set up once per process, after any fork), or None when tracing is off."""
    global _tracer, _setup_for
    setting = conf.get("TRACING")
    if not setting:
        return None
    with _setup_lock:
        if _tracer is None or _setup_for != setting:
            _tracer = _set_up(setting)
            _setup_for = setting
    return _tracer


def _set_up(setting: str) -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "django-workflows"}))
    if setting == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    elif setting.startswith("file:"):
        provider.add_span_processor(SimpleSpanProcessor(json_lines_exporter(setting[5:])))
    elif setting == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        raise ValueError(f'WORKFLOWS["TRACING"] must be "otlp", "console" or "file:<path>", got {setting!r}')
    with contextlib.suppress(Exception):  # a provider set already (by the host project) is kept
        trace.set_tracer_provider(provider)
    return provider.get_tracer("workflows")


# --------------------------------------------------------------------------- carrying context


def current_parent() -> str:
    """The W3C ``traceparent`` of the current span ("" when tracing is off or there is none)."""
    if tracer() is None:
        return ""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent", "")


def _context_of(traceparent: str) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent}) if traceparent else None


@contextlib.contextmanager
def from_headers(headers: Any) -> Iterator[None]:
    """Continue the caller's trace (its ``traceparent`` header) for what a request does."""
    traceparent = headers.get("traceparent", "") if tracer() is not None else ""
    if not traceparent:
        yield
        return
    from opentelemetry import context

    token = context.attach(_context_of(traceparent))
    try:
        yield
    finally:
        context.detach(token)


def creation(workflow: str, instance_id: str) -> str:
    """A "create" span under the current context; returns its traceparent for the instance."""
    return _point_span(f"create {workflow}", {"workflow.name": workflow, "workflow.instance_id": instance_id})


def sending(instance: Any, event_type: str) -> str:
    """A "send_event" span (under the sender's context, else in the instance's own trace);
    returns its traceparent, which the wait that takes the event links to."""
    if tracer() is None:
        return ""
    from opentelemetry import trace

    current = trace.get_current_span().get_span_context()
    attributes = {
        "workflow.name": instance.workflow_name,
        "workflow.instance_id": instance.instance_id,
        "workflow.event_type": event_type,
    }
    parent = None if current.is_valid else _context_of(instance.trace_context)
    return _point_span(f"send_event {event_type}", attributes, parent)


def _point_span(name: str, attributes: dict[str, str], parent: Any = None) -> str:
    """A span that marks a moment (under ``parent``, else the current context); its traceparent."""
    found = tracer()
    if found is None:
        return ""
    with found.start_as_current_span(name, context=parent, attributes=attributes):
        return current_parent()


# --------------------------------------------------------------------------- spans of a run


@contextlib.contextmanager
def segment(run: InstanceRun) -> Iterator[Any]:
    """A span for one claim of the instance, in the instance's trace, linked to the segment before."""
    found = tracer()
    if found is None:
        yield None
        return
    from opentelemetry import trace

    instance = run.instance
    links = []
    previous = _context_of(instance.last_span or "")
    if previous is not None:
        span_context = trace.get_current_span(previous).get_span_context()
        if span_context.is_valid:
            links.append(trace.Link(span_context, {"relation": "previous segment"}))
    attributes = {
        "workflow.name": instance.workflow_name, "workflow.instance_id": instance.instance_id,
        "workflow.run": instance.run_number, "workflow.version": instance.version or "", "process.pid": os.getpid(),
    }  # fmt: skip
    with found.start_as_current_span(
        f"run {instance.workflow_name}", context=_context_of(instance.trace_context or ""), links=links,
        attributes=attributes,
    ) as span:  # fmt: skip
        yield span


@contextlib.contextmanager
def attempt(run: InstanceRun, name: str, number: int) -> Iterator[None]:
    """A child span of the current segment for one step attempt; failures mark it as an error."""
    found = tracer()
    if found is None:
        yield
        return
    from opentelemetry.trace import Status, StatusCode

    attributes = {"workflow.step": name, "workflow.attempt": number, "workflow.name": run.instance.workflow_name}
    with found.start_as_current_span(f"step {name}", attributes=attributes, record_exception=False) as span:
        try:
            yield
        except Exception as exc:
            span.set_attribute("workflow.outcome", "failed")
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, str(exc)[:300]))
            raise
        span.set_attribute("workflow.outcome", "succeeded")


def waited(
    run: InstanceRun, kind: str, name: str, started: datetime, ended: datetime, link_to: str = "", **more: Any
) -> None:
    """A span for the time a sleep, an event wait or an approval waited (under the current segment)."""
    found = tracer()
    if found is None:
        return
    from opentelemetry import trace

    links = []
    sender = _context_of(link_to)
    if sender is not None:
        context = trace.get_current_span(sender).get_span_context()
        if context.is_valid:
            links.append(trace.Link(context, {"relation": "event sender"}))
    attributes = {
        "workflow.wait": kind,
        "workflow.step": name,
        "workflow.waited_seconds": (ended - started).total_seconds(),
    }
    attributes.update({f"workflow.{key}": value for key, value in more.items() if value is not None})
    span = found.start_span(f"{kind} {name}", start_time=_ns(started), links=links, attributes=attributes)
    span.end(end_time=_ns(ended))


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


def log_ids() -> dict[str, str]:
    """The current trace and span ids for a log line ({} when tracing is off)."""
    if _tracer is None:
        return {}
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def trace_id_of(traceparent: str) -> str:
    """The trace id in a ``traceparent`` ("00-<trace id>-<span id>-01")."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 else ""


# --------------------------------------------------------------------------- a local exporter


def json_lines_exporter(path: str) -> Any:
    """A span exporter writing JSON lines to ``path``: for a laptop without a collector, and tests.
    (Defined here, not at import, so that importing this module never imports OpenTelemetry.)"""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class JsonLinesExporter(SpanExporter):
        lock = threading.Lock()

        def export(self, spans: Any) -> SpanExportResult:
            lines = "".join(json.dumps(_plain(span)) + "\n" for span in spans)
            with self.lock, open(path, "a", encoding="utf-8") as out:
                out.write(lines)
            return SpanExportResult.SUCCESS

    return JsonLinesExporter()


def _plain(span: Any) -> dict[str, Any]:
    context = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name, "trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent else None, "start": span.start_time, "end": span.end_time,
        "status": span.status.status_code.name, "attributes": dict(span.attributes or {}),
        "links": [{"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}",
                   "attributes": dict(link.attributes or {})} for link in span.links],
    }  # fmt: skip
