"""Each subscriber's private Atom feed (RFC 4287) of their sent digests, built with
Django's syndication framework. The URL holds ``Subscriber.feed_secret``; resetting the
secret retires the old URL."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils.feedgenerator import Atom1Feed

from digest.models import Digest, Feedback, archive_cutoff

from .models import Subscriber
from .tokens import digest_web_url, feedback_url

FEED_DIGESTS = 30


class DigestFeed(Feed):
    """``/feed/<secret>/``: the last :data:`FEED_DIGESTS` sent digests within
    ``DIGEST_ARCHIVE_DAYS`` (older ones no longer keep their papers), newest first; each
    entry links to the digest's "view in browser" page and lists its papers, each with
    the subscriber's "More like this" and "Less like this" links."""

    feed_type = Atom1Feed
    description_template = "subscriptions/feed_entry.html"

    def get_object(self, request: HttpRequest, secret: str) -> Subscriber:  # type: ignore[override]
        return get_object_or_404(Subscriber.objects.exclude(feed_secret=""), feed_secret=secret)

    def title(self, obj: Subscriber) -> str:
        return f"{settings.SITE_NAME}: your digests"

    def subtitle(self, obj: Subscriber) -> str:
        return f"The papers {settings.SITE_NAME} chose for you."

    def link(self, obj: Subscriber) -> str:
        return settings.SITE_URL + "/"

    def items(self, obj: Subscriber) -> list[Digest]:
        return list(
            obj.digests.filter(status=Digest.SENT, sent_at__gte=archive_cutoff())
            .select_related("subscriber")
            .order_by("-sent_at", "-id")
            .prefetch_related("items__paper")[:FEED_DIGESTS]
        )

    def item_title(self, item: Digest) -> str:
        count = len(item.items.all())
        kind = item.subscriber.get_frequency_display().lower()
        return f"Your {kind} digest, {item.period}: {count} paper{'s' if count != 1 else ''}"

    def item_link(self, item: Digest) -> str:
        return digest_web_url(item)

    def item_pubdate(self, item: Digest) -> datetime | None:
        return item.sent_at

    def item_updateddate(self, item: Digest) -> datetime | None:
        return item.sent_at

    def get_context_data(self, **kwargs):  # type: ignore[no-untyped-def]
        context = super().get_context_data(**kwargs)
        item = kwargs["item"]
        owner = item.subscriber.uuid
        context["papers"] = [
            (
                i.paper,
                feedback_url(owner, i.paper_id, Feedback.MORE),
                feedback_url(owner, i.paper_id, Feedback.LESS),
            )
            for i in item.items.all()
        ]
        return context
