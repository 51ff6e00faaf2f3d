"""The dashboard's own records: only what belongs to its pages (people's saved list views).

What people do to instances is in the engine's audit log (``workflows.audit``)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SavedView(models.Model):
    """A named filter of the instance list ("failed imports of acme"), in its owner's navigation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views")
    name = models.CharField(max_length=60)
    query = models.CharField(max_length=1000)  # the list's query string, without a cursor
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "dashboard_saved_view"
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="dashboard_saved_view_name")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
