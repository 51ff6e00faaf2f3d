"""The OpenAPI 3.1 document of the HTTP API, served at /api/openapi.json.

Tests check every endpoint's responses against it (schemathesis) as well as by hand.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from workflows import PUBLIC_KIND, Status, StepStatus, workflow_names

if TYPE_CHECKING:
    from django.http import HttpRequest

STATUSES = list(Status.values)
NAME = {"type": "string", "pattern": "^[a-zA-Z0-9_][a-zA-Z0-9-_]*$", "maxLength": 100}
TEXT = {"type": "string", "pattern": "^[^\\u0000]*$"}
# A bulk job filter's text fields, as workflows.InstanceFilter checks them.
FILTER_TEXT = {"type": ["string", "null"], "maxLength": 256, "pattern": "^[^\\u0000]*$"}
TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
ERROR_VALUE = {
    "type": ["object", "null"],
    "properties": {"name": {"type": "string"}, "message": {"type": "string"}},
    "required": ["name", "message"],
}

SCHEMAS = {
    "Approval": {
        "type": "object",
        "required": ["id", "workflow", "instance_id", "step", "status", "quorum", "decisions"],
        "properties": {
            "id": {"type": "integer"},
            "workflow": {"type": "string"},
            "instance_id": {"type": "string"},
            "step": {"type": "string"},
            "count": {"type": "integer"},
            "title": {"type": "string"},
            "details": {"type": "object"},
            "approvers": {"type": ["array", "null"], "items": {"type": "string"}},
            "quorum": {"type": "integer", "minimum": 1},
            "approvals": {"type": "integer"},
            "requested_by": {"type": ["string", "null"]},
            "status": {"enum": ["open", "approved", "rejected", "timed_out", "cancelled"]},
            "created_at": TIME,
            "deadline": NULLABLE_TIME,
            "closed_at": NULLABLE_TIME,
            "closed_by": {"type": ["string", "null"]},
            "form": {"type": ["array", "null"], "items": {"type": "object"}},
            "decisions": {"type": "array", "items": {"type": "object"}},
            "can_decide": {"type": "boolean"},
            "refusal": {"type": ["string", "null"]},
            "policy": {
                "type": "object",
                "description": "reminders, escalation and what the deadline decides, and how far they have gone",
                "properties": {
                    "remind_every": {"type": ["number", "null"]},
                    "escalate_to": {"type": ["array", "null"], "items": {"type": "string"}},
                    "on_timeout": {"enum": ["error", "approve", "reject"]},
                    "reminders_sent": {"type": "integer"},
                    "escalated_at": NULLABLE_TIME,
                    "next_nudge": NULLABLE_TIME,
                },
            },
            "notifications": {"type": "array", "items": {"type": "object"}},
        },
    },
    "AuditRecord": {
        "type": "object",
        "required": ["id", "at", "actor", "channel", "action", "workflow", "instance_id", "details"],
        "properties": {
            "id": {"type": "integer"},
            "at": TIME,
            "actor": {"type": ["string", "null"]},
            "channel": {"enum": ["dashboard", "api", "cli", "link", "python", "schedule", "system"]},
            "action": {"type": "string"},
            "workflow": {"type": ["string", "null"]},
            "instance_id": {"type": ["string", "null"]},
            "details": {"type": "object"},
        },
    },
    "BulkJobInput": {
        "type": "object",
        "required": ["action"],
        "additionalProperties": False,
        "properties": {
            "action": {"enum": ["retry", "resolve", "terminate", "pause", "resume"]},
            "filter": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "workflow": FILTER_TEXT,
                    "status": {"enum": [*STATUSES, None]},
                    "statuses": {"type": ["array", "null"], "items": {"enum": STATUSES}},
                    "created_after": NULLABLE_TIME,
                    "created_before": NULLABLE_TIME,
                    "id_prefix": FILTER_TEXT,
                    "attributes": {
                        "type": ["object", "null"],
                        "maxProperties": 10,
                        "propertyNames": {"minLength": 1, "maxLength": 64, "pattern": "^[^\\u0000]*$"},
                        "additionalProperties": {
                            "type": ["string", "number", "boolean"],
                            "minLength": 1,
                            "maxLength": 200,
                            "pattern": "^[^\\u0000]*$",
                        },
                    },
                    "failed_step": FILTER_TEXT,
                    "error_name": FILTER_TEXT,
                    "version": FILTER_TEXT,
                },
            },
            "output": {"description": "resolve: the output every instance's failed step gets"},
            "note": {"type": "string", "maxLength": 2000, "pattern": "^[^\\u0000]*$"},
        },
        # resolve acts on one step: the filter names it.
        "if": {"properties": {"action": {"const": "resolve"}}},
        "then": {
            "required": ["filter"],
            "properties": {
                "filter": {
                    "required": ["failed_step"],
                    "properties": {"failed_step": {"type": "string", "minLength": 1, "pattern": "^[^\\u0000]*$"}},
                }
            },
        },
    },
    "BulkJob": {
        "type": "object",
        "required": ["id", "action", "status", "total", "done", "refused", "skipped", "percent"],
        "properties": {
            "id": {"type": "integer"},
            "action": {"type": "string"},
            "filter": {"type": "object"},
            "status": {"enum": ["selecting", "running", "done", "cancelled"]},
            "total": {"type": "integer"},
            "done": {"type": "integer"},
            "refused": {"type": "integer"},
            "skipped": {"type": "integer"},
            "percent": {"type": "integer"},
            "items": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Absence": {
        "type": "object",
        "required": ["id", "user", "delegate", "starts", "ends"],
        "properties": {
            "id": {"type": "integer"},
            "user": {"type": "string"},
            "delegate": {"type": "string"},
            "starts": TIME,
            "ends": TIME,
            "note": {"type": "string"},
        },
    },
    "AbsenceInput": {
        "type": "object",
        "required": ["delegate", "starts", "ends"],
        "additionalProperties": False,
        "properties": {
            "delegate": {**TEXT, "description": "the username who decides meanwhile"},
            "starts": TIME,
            "ends": TIME,
            "note": {"type": "string", "maxLength": 200, "pattern": "^[^\\u0000]*$"},
        },
    },
    "DecisionInput": {
        "type": "object",
        "required": ["approved"],
        "additionalProperties": False,
        "properties": {
            "approved": {"type": "boolean"},
            "comment": {"type": "string", "maxLength": 2000, "pattern": "^[^\\u0000]*$"},
            "data": {"type": "object", "description": "the request's form fields, when it has a form"},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "fields": {"type": "object", "description": "invalid_data: each form field's problems"},
                },
            }
        },
    },
    "Workflow": {
        "type": "object",
        "required": ["name", "counts", "registered"],
        "properties": {
            "name": {"type": "string"},
            "registered": {"type": "boolean"},
            "description": {"type": "string"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "last_activity": NULLABLE_TIME,
        },
    },
    "InstanceSummary": {
        "type": "object",
        "required": ["workflow", "id", "status", "created_at"],
        "properties": {
            "workflow": {"type": "string"},
            "id": {"type": "string"},
            "status": {"enum": STATUSES},
            "created_at": TIME,
            "updated_at": TIME,
            "ended_at": NULLABLE_TIME,
            "error": ERROR_VALUE,
        },
    },
    "Step": {
        "type": "object",
        "required": ["kind", "name", "count", "status"],
        "properties": {
            "kind": {"enum": list(PUBLIC_KIND.values())},
            "name": {"type": "string"},
            "count": {"type": "integer", "minimum": 1},
            "seq": {"type": "integer"},
            "status": {"enum": list(StepStatus.values)},
            "started_at": TIME,
            "ended_at": NULLABLE_TIME,
            "wake_at": NULLABLE_TIME,
            "error": ERROR_VALUE,
            "attempts": {"type": "array", "items": {"type": "object"}},
            "output": {},
            "event_type": {"type": "string"},
            "event": {},
            "run": {"type": "integer", "minimum": 1, "description": "the run it belongs to (1 + restarts before it)"},
            "earlier_runs": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Step"},
                "description": "the same step in runs a restart replaced, with their attempts and errors",
            },
        },
    },
    "Instance": {
        "allOf": [
            {"$ref": "#/components/schemas/InstanceSummary"},
            {
                "type": "object",
                "required": ["params"],
                "properties": {
                    "params": {},
                    "output": {},
                    "started_at": NULLABLE_TIME,
                    "paused_at": NULLABLE_TIME,
                    "wake_at": NULLABLE_TIME,
                    "run": {"type": "integer", "minimum": 1},
                    "steps": {"type": "array", "items": {"$ref": "#/components/schemas/Step"}},
                    "earlier_steps": {"type": "array", "items": {"$ref": "#/components/schemas/Step"}},
                    "step_count": {"type": "integer"},
                    "events": {"type": "array", "items": {"type": "object"}},
                },
            },
        ]
    },
    "InstancePage": {
        "type": "object",
        "required": ["instances", "next_cursor"],
        "properties": {
            "instances": {"type": "array", "items": {"$ref": "#/components/schemas/InstanceSummary"}},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "CreateInstance": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "id": {**NAME, "type": ["string", "null"], "description": "null or absent: a UUID"},
            "params": {},
        },
    },
    "StatusChange": {
        "oneOf": [
            {
                "type": "object",
                "required": ["status"],
                "additionalProperties": False,
                "properties": {"status": {"enum": ["pause", "resume", "terminate"]}},
            },
            {
                "type": "object",
                "required": ["status"],
                "additionalProperties": False,
                "properties": {
                    "status": {"const": "restart"},
                    "from_step": {
                        **TEXT,
                        "maxLength": 256,
                        "description": "keep the results of the steps before this one",
                    },
                    "count": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 2**31,
                        "description": "occurrence of from_step (default 1)",
                    },
                },
                "dependentRequired": {"count": ["from_step"]},
            },
        ]
    },
    "InstanceRef": {
        "type": "object",
        "required": ["id", "workflow"],
        "properties": {
            "id": {"type": "string"},
            "workflow": {"type": "string"},
            "status": {"enum": STATUSES},
            "type": {"type": "string"},
            "duplicate": {"type": "boolean"},
        },
    },
}


def _json(schema_ref: str | dict) -> dict:
    schema = {"$ref": f"#/components/schemas/{schema_ref}"} if isinstance(schema_ref, str) else schema_ref
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    texts = {
        400: "Bad input",
        401: "Not authenticated",
        403: "Not allowed",
        404: "Unknown workflow or instance",
        409: "Duplicate id or wrong state",
        413: "Too large",
        422: "Invalid form data (the error lists each field's problems)",
        429: "Too many failed token authentications from this address (see Retry-After)",
    }
    if 401 in codes:  # whatever authenticates by token may be throttled
        codes = (*codes, 429)
    if 400 not in codes:  # any request may be malformed (a bad Host header, a NUL character)
        codes = (400, *codes)
    return {str(code): {"description": texts[code], **_json("Error")} for code in codes}


def _param(name: str, where: str = "path", schema: dict | None = None, description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema or TEXT,
        "description": description,
    }


# Text parameters: anything but a NUL character (refused everywhere: no field can store it).


WORKFLOW = _param("name", schema={"type": "string"}, description="workflow name")
INSTANCE = _param("instance_id", schema=NAME, description="instance id")

PATHS: dict[str, dict[str, Any]] = {
    "/api/workflows": {
        "get": {
            "summary": "Registered workflows with instance counts",
            "operationId": "listWorkflows",
            "responses": {
                "200": {
                    "description": "Workflows",
                    **_json(
                        {
                            "type": "object",
                            "required": ["workflows"],
                            "properties": {
                                "workflows": {"type": "array", "items": {"$ref": "#/components/schemas/Workflow"}}
                            },
                        }
                    ),
                },
                **_errors(401),
            },
        },
    },
    "/api/workflows/{name}": {
        "parameters": [WORKFLOW],
        "get": {
            "summary": "One workflow",
            "operationId": "getWorkflow",
            "responses": {"200": {"description": "The workflow", **_json("Workflow")}, **_errors(401, 404)},
        },
    },
    "/api/workflows/{name}/instances": {
        "parameters": [WORKFLOW],
        "get": {
            "summary": "Instances, newest first, with keyset pagination",
            "description": "Search attributes filter as attr.<name>=<value> query parameters (attr.customer=acme); "
            "every one given must match.",
            "operationId": "listInstances",
            "parameters": [
                _param("status", "query", {"enum": STATUSES}),
                _param("created_after", "query", {"type": "string", "format": "date-time"}),
                _param("created_before", "query", {"type": "string", "format": "date-time"}),
                _param("q", "query", description="the start of the instance id"),
                _param("cursor", "query", description="next_cursor of the previous page"),
                _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500}),
                _param("failed_step", "query", description="a step of the current run failed for good under this name"),
                _param("error_name", "query", description="the instance's error name, e.g. ConnectionError"),
                _param("version", "query", description="the workflow version the instances were created with"),
            ],
            "responses": {"200": {"description": "A page", **_json("InstancePage")}, **_errors(400, 401, 404)},
        },
        "post": {
            "summary": "Create an instance",
            "operationId": "createInstance",
            "requestBody": {"required": False, **_json("CreateInstance")},
            "responses": {
                "201": {"description": "Queued", **_json("InstanceRef")},
                **_errors(400, 401, 403, 404, 409, 413),
            },
        },
    },
    "/api/workflows/{name}/instances/batch": {
        "parameters": [WORKFLOW],
        "post": {
            "summary": "Create up to 100 instances; existing ids are skipped",
            "operationId": "createInstances",
            "requestBody": {
                "required": True,
                **_json(
                    {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/CreateInstance"},
                        "maxItems": 100,
                        "minItems": 1,
                    }
                ),
            },
            "responses": {
                "201": {
                    "description": "Created",
                    **_json(
                        {
                            "type": "object",
                            "required": ["created", "skipped"],
                            "properties": {
                                "created": {"type": "array", "items": {"$ref": "#/components/schemas/InstanceRef"}},
                                "skipped": {"type": "integer"},
                            },
                        }
                    ),
                },
                **_errors(400, 401, 403, 404, 413),
            },
        },
    },
    "/api/workflows/{name}/instances/{instance_id}": {
        "parameters": [WORKFLOW, INSTANCE],
        "get": {
            "summary": "Status, params, output, steps with attempts, events",
            "operationId": "getInstance",
            "parameters": [_param("simple", "query", {"enum": ["true", "false"]}, "true omits steps and events")],
            "responses": {"200": {"description": "The instance", **_json("Instance")}, **_errors(400, 401, 404)},
        },
    },
    "/api/workflows/{name}/instances/{instance_id}/status": {
        "parameters": [WORKFLOW, INSTANCE],
        "patch": {
            "summary": "Pause, resume, terminate or restart",
            "operationId": "changeStatus",
            "requestBody": {"required": True, **_json("StatusChange")},
            "responses": {"200": {"description": "Done", **_json("InstanceRef")}, **_errors(400, 401, 403, 404, 409)},
        },
    },
    "/api/workflows/{name}/instances/{instance_id}/events/{event_type}": {
        "parameters": [
            WORKFLOW,
            INSTANCE,
            _param("event_type", schema=NAME),
            _param(
                "Idempotency-Key",
                "header",
                {"type": "string", "minLength": 1, "maxLength": 200},
                "a retry with the same key delivers nothing more (the answer says duplicate: true)",
            ),
        ],
        "post": {
            "summary": "Send an event (answers a wait_for_event); the body is the payload",
            "operationId": "sendEvent",
            "requestBody": {"required": False, "content": {"application/json": {"schema": {}}}},
            "responses": {
                "202": {"description": "Delivered or buffered", **_json("InstanceRef")},
                **_errors(400, 401, 403, 404, 409, 413),
            },
        },
    },
    "/api/approvals": {
        "get": {
            "summary": "Approval requests: the caller's open ones (default), every open one, or history",
            "operationId": "listApprovals",
            "parameters": [
                _param("scope", "query", {"enum": ["mine", "all", "decided"]}, "all needs operate_instance"),
                _param("workflow", "query"),
                _param("decider", "query", description="decided only: a username, 'me' (default) or 'any'"),
                _param("outcome", "query", {"enum": ["approved", "rejected", "timed_out", "cancelled"]}),
                _param("since", "query", {"type": "string", "format": "date-time"}),
                _param("until", "query", {"type": "string", "format": "date-time"}),
                _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500}),
            ],
            "responses": {
                "200": {
                    "description": "Requests",
                    **_json(
                        {
                            "type": "object",
                            "required": ["approvals"],
                            "properties": {
                                "approvals": {"type": "array", "items": {"$ref": "#/components/schemas/Approval"}}
                            },
                        }
                    ),
                },
                **_errors(400, 401, 403),
            },
        },
    },
    "/api/approvals/{request_id}": {
        "parameters": [_param("request_id", schema={"type": "string", "pattern": "^[0-9]{1,18}$"})],
        "get": {
            "summary": "One approval request",
            "operationId": "getApproval",
            "responses": {"200": {"description": "The request", **_json("Approval")}, **_errors(401, 404)},
        },
    },
    "/api/approvals/{request_id}/decision": {
        "parameters": [_param("request_id", schema={"type": "string", "pattern": "^[0-9]{1,18}$"})],
        "post": {
            "summary": "Decide an approval request (recorded once; the last needed decision closes it)",
            "operationId": "decideApproval",
            "requestBody": {"required": True, **_json("DecisionInput")},
            "responses": {
                "200": {"description": "Recorded; the request as it is now", **_json("Approval")},
                **_errors(400, 401, 403, 404, 409, 422),
            },
        },
    },
    "/api/audit": {
        "get": {
            "summary": "The audit log, oldest first: every change, its actor and channel (operators)",
            "operationId": "listAudit",
            "parameters": [
                _param("workflow", "query"),
                _param("instance_id", "query"),
                _param("actor", "query", description="a username"),
                _param("since", "query", {"type": "string", "format": "date-time"}),
                _param("until", "query", {"type": "string", "format": "date-time"}),
                _param(
                    "after",
                    "query",
                    {"type": "integer", "minimum": 0, "maximum": 2**62},
                    "the last id of the previous page",
                ),
                _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}),
            ],
            "responses": {
                "200": {
                    "description": "Records",
                    **_json(
                        {
                            "type": "object",
                            "required": ["records", "next_after"],
                            "properties": {
                                "records": {"type": "array", "items": {"$ref": "#/components/schemas/AuditRecord"}},
                                "next_after": {"type": ["integer", "null"]},
                            },
                        }
                    ),
                },
                **_errors(400, 401, 403),
            },
        },
    },
    "/api/bulk-jobs": {
        "post": {
            "summary": "Apply an action to every instance matching a filter, as a job on the workers",
            "operationId": "startBulkJob",
            "requestBody": {"required": True, **_json("BulkJobInput")},
            "responses": {"202": {"description": "Started", **_json("BulkJob")}, **_errors(400, 401, 403)},
        },
    },
    "/api/bulk-jobs/{job_id}": {
        "parameters": [_param("job_id", schema={"type": "string", "pattern": "^[0-9]{1,18}$"})],
        "get": {
            "summary": "A bulk job's progress, and its items (refused ones by default)",
            "operationId": "getBulkJob",
            "parameters": [
                _param("items", "query", {"enum": ["refused", "done", "skipped", "pending", "all", "none"]}),
                _param(
                    "after",
                    "query",
                    {"type": "integer", "minimum": 0, "maximum": 2**62},
                    "the last item id of the previous page",
                ),
            ],
            "responses": {"200": {"description": "The job", **_json("BulkJob")}, **_errors(400, 401, 404)},
        },
        "delete": {
            "summary": "Cancel a bulk job (what is done stays done)",
            "operationId": "cancelBulkJob",
            "responses": {"200": {"description": "The job", **_json("BulkJob")}, **_errors(401, 403, 404)},
        },
    },
    "/api/delegations": {
        "get": {
            "summary": "The caller's absences not ended yet, and those they stand in for",
            "operationId": "listDelegations",
            "responses": {
                "200": {
                    "description": "Absences",
                    **_json(
                        {
                            "type": "object",
                            "required": ["absences", "standing_in_for"],
                            "properties": {
                                "absences": {"type": "array", "items": {"$ref": "#/components/schemas/Absence"}},
                                "standing_in_for": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Absence"},
                                },
                            },
                        }
                    ),
                },
                **_errors(401),
            },
        },
        "post": {
            "summary": "Be away from starts to ends: delegate sees, decides and is told of the caller's requests",
            "operationId": "setAway",
            "requestBody": {"required": True, **_json("AbsenceInput")},
            "responses": {"201": {"description": "Saved", **_json("Absence")}, **_errors(400, 401, 409)},
        },
    },
    "/api/delegations/{absence_id}": {
        "parameters": [_param("absence_id", schema={"type": "string", "pattern": "^[0-9]{1,18}$"})],
        "delete": {
            "summary": "Cancel one of the caller's absences",
            "operationId": "cancelAway",
            "responses": {"204": {"description": "Cancelled"}, **_errors(401, 404)},
        },
    },
    "/api/openapi.json": {
        "get": {
            "summary": "This document",
            "operationId": "openapi",
            "responses": {"200": {"description": "OpenAPI 3.1", **_json({"type": "object"})}, **_errors(401)},
        },
    },
}


def document(request: HttpRequest | None = None) -> dict:
    """The document, with the registered workflow names as the allowed values of ``{name}``."""
    paths = copy.deepcopy(PATHS)
    names = workflow_names()
    for item in paths.values():
        for param in item.get("parameters", []):
            if param["name"] == "name":
                param["schema"] = {"type": "string", "enum": names} if names else {"type": "string"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Durable workflows API",
            "version": "1",
            "description": 'Create, inspect and control workflow instances. Errors are {"error": {"code", "message"}}.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API token (python manage.py apitokens create USER)",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
            },
        },
    }
