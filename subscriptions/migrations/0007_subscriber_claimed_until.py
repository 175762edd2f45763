"""The beat's claim on a due subscriber (``Subscriber.claimed_until``): a nullable
column, added without rewriting the table."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("subscriptions", "0006_session_keys")]

    operations = [
        migrations.AddField(
            model_name="subscriber",
            name="claimed_until",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
