from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = "Durable workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import workflows.api  # noqa: F401  (registers InstanceHandle as a storable value)

        # Like admin.py: every installed app's workflows.py registers its Workflow classes.
        autodiscover_modules("workflows")
