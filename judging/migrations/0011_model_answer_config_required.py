"""ModelAnswer.model_config becomes required, in its own migration: on PostgreSQL a column cannot be
altered in the transaction whose backfill (0010) left deferred foreign-key checks pending."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("judging", "0010_lineups_and_exposure"),
    ]

    operations = [
        migrations.AlterField(
            model_name="modelanswer",
            name="model_config",
            field=models.ForeignKey(
                help_text="The configuration that answered (each assistant of the experiment answers alone).",
                on_delete=django.db.models.deletion.PROTECT,
                related_name="model_answers",
                to="judging.modelconfig",
            ),
        ),
    ]
