"""wf_status_delta is a queue: rows appended by triggers, folded and deleted every 2 s.

PostgreSQL's default autovacuum waits for 20 % of a table to be dead; a queue table is
almost all dead between vacuums, and every page reading the counts scans those dead rows
(120 ms after a million deltas, 0.3 ms once vacuumed). Vacuum it after every 10,000 dead
rows instead, the usual setting for queue tables.
"""

from django.db import migrations


def tune(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE wf_status_delta SET (autovacuum_vacuum_scale_factor = 0, "
            "autovacuum_vacuum_threshold = 10000, autovacuum_vacuum_insert_scale_factor = 0, "
            "autovacuum_vacuum_insert_threshold = 10000)"
        )


def untune(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE wf_status_delta RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, "
            "autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_insert_threshold)"
        )


class Migration(migrations.Migration):
    dependencies = [("workflows", "0012_runnable_backlog")]

    operations = [migrations.RunPython(tune, untune)]
