"""A moderator's preview of a subscriber's next digest, planned and rendered exactly as
delivery would, then rolled back."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from digest.delivery.compose import as_text
from digest.delivery.message import digest_message
from digest.delivery.plan import error_text, plan_digest
from digest.models import Digest
from subscriptions.models import Subscriber

log = logging.getLogger(__name__)

__all__ = ["DigestPreview", "placeholder_links", "preview_next_digest"]


def placeholder_links() -> dict[str, str]:
    """What a preview shows instead of the subscriber's own links: the settings link
    signs its holder in as the subscriber and the unsubscribe link acts at once, so a
    moderator never sees them. Each placeholder is the site's address with a fragment
    naming the link."""
    return {
        name: f"{settings.SITE_URL}/#{name.replace('_url', '')}-link-of-the-subscriber"
        for name in ("unsubscribe_url", "manage_url", "web_url")
    }


@dataclass
class DigestPreview:
    """A subscriber's next digest as it would be sent: the edition (``period``),
    ``status`` the planning gave (``pending`` with papers, ``empty``, or ``sent``/
    ``sending`` when that edition already went out), the papers as
    ``(title, reason)`` pairs in rank order, and the rendered ``subject``, ``text`` and
    ``html`` when there is something to send. ``status`` is ``failed`` with the reason
    in ``error`` when planning or rendering this subscriber's digest fails, as delivery
    would record it."""

    at: datetime
    period: str
    status: str
    deliverable: bool
    papers: list[tuple[str, str]] = field(default_factory=list)
    subject: str = ""
    text: str = ""
    html: str = ""
    error: str = ""


def preview_next_digest(subscriber: Subscriber, now: datetime | None = None) -> DigestPreview:
    """Plan and render ``subscriber``'s next digest exactly as delivery would, then undo.

    The plan runs at the subscriber's next send time (or ``now`` when that has passed;
    the following edition's when that edition already went out)
    through :func:`digest.delivery.plan.plan_digest` and
    :func:`~digest.delivery.message.digest_message`
    inside a transaction that is rolled back: no digest row is claimed and nothing is
    sent. While it runs, a worker planning the same edition waits for it. The body's
    personal links are :func:`placeholder_links`.
    """
    now = now or timezone.now()
    at = (
        subscriber.next_digest_at
        if subscriber.next_digest_at and subscriber.next_digest_at > now
        else now
    )
    # An edition already sent (today's, once it went out) has nothing left to show: the
    # preview is of the one after it.
    gone = (Digest.SENT, Digest.SENDING)
    for _ in range(2):
        if not subscriber.digests.filter(
            period=subscriber.period_key(at), status__in=gone
        ).exists():
            break
        at = subscriber.compute_next_digest_at(at)
    with transaction.atomic():
        digest = plan_digest(subscriber, at)
        preview = DigestPreview(
            at=at,
            period=digest.period,
            status=digest.status,
            deliverable=subscriber.state == Subscriber.State.ACTIVE,
            papers=[(i.paper.title, i.reason) for i in digest.items.select_related("paper")],
        )
        if digest.status == Digest.FAILED:
            preview.error = digest.last_error
        elif digest.status == Digest.PENDING:
            try:
                message = digest_message(digest, links=placeholder_links(), feedback_links=False)
            except Exception as exc:  # shown to the moderator, as delivery records it
                log.warning("digest_preview_render_failed subscriber_id=%s", subscriber.pk)
                preview.status, preview.error = Digest.FAILED, error_text(exc)
            else:
                preview.subject = as_text(str(message.subject))
                preview.text = as_text(str(message.body))
                preview.html = next(
                    (str(c) for c, mime in message.alternatives if mime == "text/html"), ""
                )
        transaction.set_rollback(True)
    return preview
