from __future__ import annotations

from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from dashboard.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "action", "workflow", "instance_id")
    list_filter = ("action",)
    search_fields = ("instance_id",)

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False
