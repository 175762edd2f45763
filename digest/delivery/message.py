"""A digest's email: its papers' cards rendered for one subscriber, with the list
headers of RFC 2369 and RFC 8058 and the ids the ESP returns on webhooks."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from digest.delivery.compose import make_email
from digest.delivery.render import PaperCard, Recipient, Renderer, render_digest, render_nothing
from digest.models import Digest, DigestItem, Paper, origin_label, paper_url
from subscriptions.tokens import digest_web_url, manage_url_for, unsubscribe_url

__all__ = ["digest_message", "load_cards", "shared_renderer"]

_RENDERERS = threading.local()


def shared_renderer() -> Renderer:
    """This thread's :class:`~digest.delivery.render.Renderer` (a renderer is not thread-safe;
    a prefork worker process has one thread): each paper card and layout is inlined once
    per worker, not once per batch (premailer costs ~3 ms a card run alone, ~60 new
    cards a batch of 500)."""
    renderer = getattr(_RENDERERS, "renderer", None)
    if renderer is None:
        renderer = _RENDERERS.renderer = Renderer()
    return renderer


def load_cards(digest_ids: Iterable[int]) -> dict[int, list[tuple[PaperCard, str]]]:
    """Digest id → its papers, in rank order, with the reason each was chosen. A paper
    carried by several digests is one :class:`PaperCard` object. Two queries of plain
    rows, whatever the number of digests."""
    items = list(
        DigestItem.objects.filter(digest_id__in=list(digest_ids))
        .order_by("digest_id", "rank")
        .values_list("digest_id", "paper_id", "reason")
    )
    cards = {
        pk: PaperCard(
            id=pk,
            title=title,
            url=paper_url(arxiv_id, title),
            abstract=abstract,
            upvotes=upvotes,
            published_on=published_on,
            authors_count=authors_count,
            origin=origin_label(origins),
        )
        for pk, title, arxiv_id, abstract, upvotes, published_on, authors_count, origins in (
            Paper.objects.filter(pk__in={paper_id for _, paper_id, _ in items}).values_list(
                "pk",
                "title",
                "arxiv_id",
                "abstract",
                "upvotes",
                "published_on",
                "authors_count",
                "origins",
            )
        )
    }
    out: dict[int, list[tuple[PaperCard, str]]] = defaultdict(list)
    for digest_id, paper_id, reason in items:
        out[digest_id].append((cards[paper_id], reason))
    return out


def digest_message(
    digest: Digest,
    *,
    renderer: Renderer | None = None,
    papers: Sequence[tuple[PaperCard, str]] | None = None,
    personal_links: bool = True,
    links: Mapping[str, str] | None = None,
) -> EmailMultiAlternatives:
    """The email for ``digest``: multipart text + HTML (the "nothing matched" note when
    it has no papers), with its stored Message-ID, the digest id in ``X-Digest-ID`` and
    as anymail metadata and tag, and the one-click unsubscribe headers of RFC 2369 and
    RFC 8058.

    Without ``renderer`` the email is rendered and inlined on its own; delivery passes
    the batch's :class:`~digest.delivery.render.Renderer` (same HTML, much faster) and the
    ``papers`` it loaded for the batch. Without ``personal_links`` the body's
    unsubscribe and settings links lead to the "email me my link" page instead of
    carrying the subscriber's tokens (the settings link signs them in): the copy shown
    to whoever holds the "view in browser" address. ``links`` replaces fields of the
    body's :class:`~digest.delivery.render.Recipient` — ``email``, and ``unsubscribe_url``,
    ``manage_url`` and ``web_url`` (plain ASCII URLs): a moderator's preview shows
    placeholders there, never links that act for the subscriber, and the public copy
    no address.
    """
    subscriber = digest.subscriber
    if papers is None:
        papers = load_cards([digest.pk]).get(digest.pk, [])
    unsubscribe = unsubscribe_url(subscriber.uuid)
    if personal_links:
        body_unsubscribe, body_manage = unsubscribe, manage_url_for(subscriber)
    else:
        body_unsubscribe = body_manage = settings.SITE_URL + reverse("email_link")
    recipient = Recipient(
        email=subscriber.email,
        unsubscribe_url=body_unsubscribe,
        manage_url=body_manage,
        web_url=digest_web_url(digest),
    )
    if links:
        recipient = replace(recipient, **links)
    frequency = str(subscriber.get_frequency_display()).lower()
    if papers:
        cards, reasons = [p for p, _ in papers], [r for _, r in papers]
        render = renderer.digest if renderer else render_digest
        parts = render(
            cards, reasons, recipient=recipient, frequency=frequency, edition=digest.period
        )
        kind = "digest"
    else:
        nothing = renderer.nothing if renderer else render_nothing
        parts = nothing(recipient=recipient, frequency=frequency, edition=digest.period)
        kind = "nothing"
    headers = {
        "List-Unsubscribe": f"<{unsubscribe}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "X-Digest-ID": str(digest.pk),
    }
    if digest.message_id:
        headers["Message-ID"] = digest.message_id
    message = make_email(kind, {}, subscriber.email, headers=headers, parts=parts)
    # django-anymail sends these to the ESP, which returns them in tracking webhooks
    # (digest.delivery.tracking); other backends ignore them.
    message.metadata = {"digest_id": str(digest.pk), "subscriber_id": str(subscriber.pk)}  # type: ignore[attr-defined]
    message.tags = ["digest"]  # type: ignore[attr-defined]
    return message
