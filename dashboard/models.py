"""The dashboard's own records. Instances are referred to by workflow name and id, as a user
of the public API would, never by a foreign key into the engine's tables."""

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """Who did what to an instance from the dashboard, and when; shown on its timeline."""

    workflow = models.CharField(max_length=64)
    instance_id = models.CharField(max_length=100)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=40)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "dashboard_audit"
        indexes = [models.Index(fields=["workflow", "instance_id", "created_at"], name="dashboard_audit_instance")]
        ordering = ["created_at"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.user} {self.action} {self.workflow}/{self.instance_id}"
