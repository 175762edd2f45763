"""One canonical key per mailbox (subscriptions.addresses.canonical_key), kept unique.

Existing rows get their key. Where two rows share one (a look-alike address such as
ırıs@ signed up beside iris@), the confirmed, then oldest, row keeps the key; another
row that never confirmed is deleted (its address could not receive mail under the key's
rules and only blocked the owner), and a confirmed one is kept with its id appended to
its key, for a moderator to look at.
"""

from django.db import migrations, models
from django.db.models import F


def fill_keys(apps, schema_editor):
    from subscriptions.addresses import canonical_key

    Subscriber = apps.get_model("subscriptions", "Subscriber")
    taken = set()
    rows = Subscriber.objects.order_by(F("confirmed_at").asc(nulls_last=True), "created_at", "pk")
    for subscriber in rows.iterator():
        key = canonical_key(subscriber.email)
        if key in taken:
            if subscriber.confirmed_at is None:
                subscriber.delete()
                continue
            key = f"{key}#{subscriber.pk}"
        taken.add(key)
        Subscriber.objects.filter(pk=subscriber.pk).update(email_key=key)


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0004_held_signups_lift_suppression"),
    ]

    operations = [
        migrations.AddField(
            model_name="subscriber",
            name="email_key",
            field=models.CharField(default="", editable=False, max_length=254),
            preserve_default=False,
        ),
        migrations.RunPython(fill_keys, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="subscriber",
            constraint=models.UniqueConstraint(
                fields=("email_key",), name="subscriber_email_key_unique"
            ),
        ),
    ]
