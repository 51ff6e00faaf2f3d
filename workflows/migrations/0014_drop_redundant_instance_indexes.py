"""Drop the foreign-key indexes of wf_step.instance_id and wf_event.instance_id.

Each is a prefix of an index the table has anyway (wf_step_unique_key and wf_step_pending;
wf_event_fifo), so queries lose nothing, and every step's insert and status change wrote an
entry in it for nothing. Only the index goes: the foreign keys stay (AlterField would drop
and re-add them, checking every row, or rebuild the table on SQLite).
"""

import django.db.models.deletion
from django.db import migrations, models

DROPPED = {"wf_step": "wf_step_instance_id_711772a2", "wf_event": "wf_event_instance_id_151aa259"}


class Migration(migrations.Migration):
    dependencies = [("workflows", "0013_status_delta_autovacuum")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name=model,
                    name="instance",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name=related,
                        to="workflows.instance",
                    ),
                )
                for model, related in (("event", "events"), ("step", "steps"))
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{index}"', f'CREATE INDEX "{index}" ON "{table}" ("instance_id")'
                )
                for table, index in DROPPED.items()
            ],
        )
    ]
