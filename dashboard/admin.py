from django.contrib import admin

from dashboard.models import AuditEntry, Decision, NonApprovalEventType


@admin.register(NonApprovalEventType)
class NonApprovalEventTypeAdmin(admin.ModelAdmin):
    list_display = ("event_type", "note")


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "action", "workflow", "instance_id")
    list_filter = ("action",)
    search_fields = ("instance_id",)

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    list_display = ("decided_at", "user", "workflow", "instance_id", "step", "approved")

    def has_change_permission(self, request, obj=None):
        return False
