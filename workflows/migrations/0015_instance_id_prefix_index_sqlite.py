"""SQLite: an index on wf_instance.instance_id for the instance list's id prefix search.

PostgreSQL has had one since 0002 (varchar_pattern_ops, for LIKE). SQLite's LIKE ignores
case and cannot use an index, so ``queries`` searches a prefix there as a range over this
index; without it the search read all 1.1 million rows (80-130 ms in bench.scale).
"""

from django.db import migrations


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("CREATE INDEX IF NOT EXISTS wf_instance_id_prefix ON wf_instance (instance_id)")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("DROP INDEX IF EXISTS wf_instance_id_prefix")


class Migration(migrations.Migration):
    dependencies = [("workflows", "0014_drop_redundant_instance_indexes")]
    operations = [migrations.RunPython(create, drop)]
