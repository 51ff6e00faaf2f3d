"""An index for id prefix search (dashboard filter, API "q"), on PostgreSQL.

varchar_pattern_ops lets PostgreSQL use it for LIKE 'prefix%' whatever the database's
collation; SQLite has no operator classes (and its instance tables stay small).
"""
from django.db import migrations


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE INDEX IF NOT EXISTS wf_instance_id_prefix ON wf_instance (instance_id varchar_pattern_ops)")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS wf_instance_id_prefix")


class Migration(migrations.Migration):
    dependencies = [("workflows", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
