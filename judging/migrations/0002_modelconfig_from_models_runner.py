"""Carry a release-0.1 database forward: its model configurations lived in the `models_runner` app.

New databases create judging_modelconfig in 0001 and this does nothing. On a release-0.1 database
the table models_runner_modelconfig is renamed (foreign keys follow it), its content type (and so
its permissions) moves to this app, and the removed app's migration records go.
"""

from django.db import migrations

OLD_TABLE = "models_runner_modelconfig"


def move_release_table(apps, schema_editor):
    if OLD_TABLE not in schema_editor.connection.introspection.table_names():
        return
    model_config = apps.get_model("judging", "ModelConfig")
    schema_editor.alter_db_table(model_config, OLD_TABLE, model_config._meta.db_table)
    content_types = apps.get_model("contenttypes", "ContentType").objects.using(schema_editor.connection.alias)
    if not content_types.filter(app_label="judging", model="modelconfig").exists():
        content_types.filter(app_label="models_runner", model="modelconfig").update(app_label="judging")
    schema_editor.execute("DELETE FROM django_migrations WHERE app = 'models_runner'")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("judging", "0001_initial"),
    ]

    operations = [migrations.RunPython(move_release_table, migrations.RunPython.noop)]
