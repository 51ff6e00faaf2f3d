"""A read-only view of the engine's tables in the Django admin (operators change state through the API)."""

from __future__ import annotations

from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from workflows.models import ApprovalDecision, ApprovalRequest, Attempt, AuditRecord, Event, Instance, Step


class ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


class StepInline(ReadOnly, admin.TabularInline):
    model = Step
    fields = (
        "seq",
        "kind",
        "name",
        "occurrence",
        "status",
        "attempts",
        "wake_at",
        "started_at",
        "ended_at",
        "result",
        "error",
    )
    ordering = ("seq",)
    extra = 0


class EventInline(ReadOnly, admin.TabularInline):
    model = Event
    fields = ("type", "payload", "created_at", "consumed_at")
    extra = 0


@admin.register(Instance)
class InstanceAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("instance_id", "workflow_name", "status", "created_at", "updated_at")
    list_filter = ("workflow_name", "status")
    search_fields = ("instance_id",)
    date_hierarchy = "created_at"
    inlines = [StepInline, EventInline]


@admin.register(Attempt)
class AttemptAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("step", "number", "success", "started_at", "ended_at", "retry_delay")
    list_filter = ("success",)


class ApprovalDecisionInline(ReadOnly, admin.TabularInline):
    model = ApprovalDecision
    fields = ("username", "approved", "comment", "decided_at", "channel", "as_superuser")
    extra = 0


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("id", "workflow_name", "instance_key", "step_name", "title", "status", "quorum", "created_at")
    list_filter = ("status", "workflow_name")
    search_fields = ("instance_key", "title")
    inlines = [ApprovalDecisionInline]


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("at", "actor", "channel", "action", "workflow_name", "instance_key")
    list_filter = ("channel", "action")
    search_fields = ("instance_key", "actor")
    date_hierarchy = "at"
