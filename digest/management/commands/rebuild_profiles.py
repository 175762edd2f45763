"""``manage.py rebuild_profiles``: rebuild every deliverable subscriber's relevance
profile from their feedback and the papers their filters matched (docs/relevance.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from digest.relevance.profile import rebuild_profile
from subscriptions.models import Subscriber


class Command(BaseCommand):
    help = "Rebuild the relevance profile of every deliverable subscriber."

    def handle(self, *args: Any, **options: Any) -> None:
        ids = list(Subscriber.objects.deliverable().values_list("pk", flat=True))
        for pk in ids:
            rebuild_profile(pk)
        self.stdout.write(f"rebuilt {len(ids)} profiles")
