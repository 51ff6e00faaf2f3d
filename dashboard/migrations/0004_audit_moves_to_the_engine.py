"""The dashboard's audit entries move into the engine's audit log (wf_audit), then go."""

from django.db import migrations


def copy_entries(apps, schema_editor):
    AuditEntry = apps.get_model("dashboard", "AuditEntry")
    AuditRecord = apps.get_model("workflows", "AuditRecord")
    batch = []
    for entry in AuditEntry.objects.select_related("user").order_by("pk").iterator(chunk_size=1000):
        batch.append(
            AuditRecord(
                at=entry.created_at, user_id=entry.user_id, actor=entry.user.username if entry.user else "",
                channel="dashboard", action=entry.action.replace("run-now", "retry_now").replace("send-event", "send_event"),
                workflow_name=entry.workflow, instance_key=entry.instance_id, details=entry.details or {},
            )
        )
        if len(batch) >= 1000:
            AuditRecord.objects.bulk_create(batch)
            batch = []
    AuditRecord.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0003_drop_waits_as_approvals"),
        ("workflows", "0006_audit_log"),
    ]

    operations = [
        migrations.RunPython(copy_entries, migrations.RunPython.noop),
        migrations.DeleteModel(name="AuditEntry"),
    ]
