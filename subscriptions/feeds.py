"""Each subscriber's private Atom feed (RFC 4287) of the papers their digests carried,
built with Django's syndication framework. The URL holds ``Subscriber.feed_secret``;
resetting the secret retires the old URL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils.feedgenerator import Atom1Feed

from digest.delivery.message import load_cards
from digest.delivery.render import PaperCard, authors_line, card_view, edition_label
from digest.models import Digest, Feedback, archive_cutoff

from .models import Subscriber
from .tokens import digest_web_url, feedback_url

FEED_DIGESTS = 30


@dataclass(frozen=True)
class FeedEntry:
    """One paper of a sent digest, as one entry of the feed: the paper's card (as the
    email shows it), why it matched, and the digest it came in."""

    digest: Digest
    card: PaperCard
    reason: str


class DigestFeed(Feed):
    """``/feed/<secret>/``: one entry per paper of the last :data:`FEED_DIGESTS` sent
    digests within ``DIGEST_ARCHIVE_DAYS`` (older ones no longer keep their papers),
    newest digest first and each digest's papers in its order. An entry has the paper's
    title, its authors, why it matched, its summary and links, the subscriber's "More
    like this" and "Less like this" links, and links to the paper's page; its id is the
    digest's "view in browser" address and the paper's id, so it stays the same on every
    read. The digests of a feed-only subscriber are here too."""

    feed_type = Atom1Feed
    description_template = "subscriptions/feed_entry.html"

    def get_object(self, request: HttpRequest, secret: str) -> Subscriber:  # type: ignore[override]
        return get_object_or_404(Subscriber.objects.exclude(feed_secret=""), feed_secret=secret)

    def title(self, obj: Subscriber) -> str:
        return f"{settings.SITE_NAME}: your papers"

    def subtitle(self, obj: Subscriber) -> str:
        return f"The papers {settings.SITE_NAME} chose for you, one entry each."

    def link(self, obj: Subscriber) -> str:
        return settings.SITE_URL + "/"

    def items(self, obj: Subscriber) -> list[FeedEntry]:
        digests = list(
            obj.digests.filter(status=Digest.SENT, sent_at__gte=archive_cutoff())
            .select_related("subscriber")
            .order_by("-sent_at", "-id")[:FEED_DIGESTS]
        )
        cards = load_cards(d.pk for d in digests)
        return [
            FeedEntry(digest, card, reason)
            for digest in digests
            for card, reason in cards.get(digest.pk, [])
        ]

    def item_title(self, item: FeedEntry) -> str:
        return item.card.title

    def item_link(self, item: FeedEntry) -> str:
        return item.card.url

    def item_guid(self, item: FeedEntry) -> str:
        return f"{digest_web_url(item.digest)}#paper-{item.card.id}"

    def item_guid_is_permalink(self, item: FeedEntry) -> bool:
        return False

    def item_author_name(self, item: FeedEntry) -> str | None:
        return authors_line(item.card.authors, item.card.authors_count) or None

    def item_pubdate(self, item: FeedEntry) -> datetime | None:
        return item.digest.sent_at

    def item_updateddate(self, item: FeedEntry) -> datetime | None:
        return item.digest.sent_at

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        entry: FeedEntry = kwargs["item"]
        owner = entry.digest.subscriber.uuid
        context.update(
            {
                "p": entry.card,
                "c": card_view(entry.card),
                "reason": entry.reason,
                "digest_url": digest_web_url(entry.digest),
                "edition": edition_label(entry.digest.period),
                "frequency": entry.digest.subscriber.get_frequency_display().lower(),
                "more_url": feedback_url(owner, entry.card.id, Feedback.MORE),
                "less_url": feedback_url(owner, entry.card.id, Feedback.LESS),
            }
        )
        return context
