"""Give digests planned by earlier releases what the current send path expects: a
``planned_at`` on every digest whose papers were chosen, and a Message-ID on every digest
that can still be sent. Delivery then has no branch for older rows."""

from email.utils import make_msgid
from urllib.parse import urlsplit

from django.conf import settings
from django.db import migrations
from django.db.models import Exists, OuterRef


def forwards(apps, schema_editor):
    Digest = apps.get_model("digest", "Digest")
    DigestItem = apps.get_model("digest", "DigestItem")
    with_items = DigestItem.objects.filter(digest_id=OuterRef("pk"))
    unplanned = Digest.objects.filter(planned_at__isnull=True).filter(Exists(with_items))
    for digest in unplanned.only("pk", "created_at").iterator():
        Digest.objects.filter(pk=digest.pk).update(planned_at=digest.created_at)
    domain = urlsplit(settings.SITE_URL).hostname or "localhost"
    unsendable = Digest.objects.filter(
        message_id="", planned_at__isnull=False, status__in=["pending", "sending"]
    )
    for pk in unsendable.values_list("pk", flat=True).iterator():
        Digest.objects.filter(pk=pk, message_id="").update(message_id=make_msgid(domain=domain))


class Migration(migrations.Migration):
    dependencies = [("digest", "0004_moderators_group")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
