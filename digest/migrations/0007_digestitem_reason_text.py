"""A reason is text of any length: a ``varchar(500)`` made a long reason fail the one
INSERT of a whole chunk on PostgreSQL. ``varchar`` to ``text`` is a change of the
catalogue only on PostgreSQL (the two are binary coercible): no table rewrite."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("digest", "0006_arxiv_sources")]

    operations = [
        migrations.AlterField(
            model_name="digestitem", name="reason", field=models.TextField(blank=True)
        ),
    ]
