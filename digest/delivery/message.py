"""A digest's email: its papers' cards rendered for one subscriber, with the list
headers of RFC 2369 and RFC 8058 and the ids the ESP returns on webhooks."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse
from django.utils import timezone

from digest.delivery.compose import make_email
from digest.delivery.render import (
    SHOWN_AUTHORS,
    PaperCard,
    Recipient,
    Renderer,
    render_digest,
    render_nothing,
)
from digest.matching.trend import upvote_growth
from digest.models import Digest, DigestItem, Paper, origin_label, paper_url
from subscriptions.schedule import DAILY, WEEKLY
from subscriptions.tokens import digest_web_url, manage_url_for, unsubscribe_url
from subscriptions.tokens import feedback_links as vote_links

if TYPE_CHECKING:  # the subscriber arrives as digest.subscriber; no import needed at run time
    from subscriptions.models import Subscriber

__all__ = ["digest_message", "load_cards", "next_digest_text", "shared_renderer"]

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


# Growth is counted over one edition's period before planning, and labelled so.
_GROWTH_PERIOD = {
    DAILY: (timedelta(days=1), "today"),
    WEEKLY: (timedelta(days=7), "this week"),
}


def load_cards(digest_ids: Iterable[int]) -> dict[int, list[tuple[PaperCard, str]]]:
    """Digest id → its papers, in rank order, with the reason each was chosen.

    Each card carries the upvotes its paper gained since the previous edition — since
    one edition's period (a day, a week) before the digest was planned
    (:func:`digest.matching.trend.upvote_growth`) — so digests of one chunk (planned
    at one instant, of one frequency) share one :class:`PaperCard` object per paper.
    Three queries of plain rows, and 2 to 4 per (frequency, planning instant) for the
    growth, whatever the number of digests."""
    ids = list(digest_ids)
    items = list(
        DigestItem.objects.filter(digest_id__any=ids)
        .order_by("digest_id", "rank")
        .values_list("digest_id", "paper_id", "reason", "suggested")
    )
    out: dict[int, list[tuple[PaperCard, str]]] = defaultdict(list)  # no papers: []
    if not items:
        return out
    rows = {
        row[0]: row
        for row in Paper.objects.filter(pk__any={item[1] for item in items}).values_list(
            "pk",
            "title",
            "arxiv_id",
            "abstract",
            "ai_summary",
            "upvotes",
            "published_on",
            "authors",
            "authors_count",
            "github_repo",
            "project_page",
            "origins",
        )
    }
    editions = {
        pk: (frequency, planned_at or timezone.now())
        for pk, frequency, planned_at in Digest.objects.filter(pk__any=ids).values_list(
            "pk", "subscriber__frequency", "planned_at"
        )
    }
    papers_of: dict[tuple[str, datetime], set[int]] = defaultdict(set)
    for digest_id, paper_id, _, _ in items:
        papers_of[editions[digest_id]].add(paper_id)
    cards: dict[tuple[str, datetime], dict[int, PaperCard]] = {}
    for (frequency, planned_at), paper_ids in papers_of.items():
        period, label = _GROWTH_PERIOD.get(frequency, (timedelta(days=1), ""))
        gained = upvote_growth(paper_ids, since=planned_at - period)
        cards[frequency, planned_at] = {pk: _card(rows[pk], gained[pk], label) for pk in paper_ids}
    for digest_id, paper_id, reason, suggested in items:
        card = cards[editions[digest_id]][paper_id]
        out[digest_id].append((replace(card, suggested=True) if suggested else card, reason))
    return out


def _card(row: tuple[Any, ...], gained: int, gained_label: str) -> PaperCard:
    """A card from a row of :func:`load_cards`' paper query."""
    (pk, title, arxiv_id, abstract, ai_summary, upvotes, published_on) = row[:7]
    authors, authors_count, github_repo, project_page, origins = row[7:]
    return PaperCard(
        id=pk,
        title=title,
        url=paper_url(arxiv_id, title),
        abstract=abstract,
        upvotes=upvotes,
        published_on=published_on,
        authors_count=authors_count,
        authors=tuple(str(name) for name in (authors or ())[:SHOWN_AUTHORS]),
        gained=gained if upvotes is not None else None,
        gained_label=gained_label,
        arxiv_id=arxiv_id,
        github_repo=github_repo,
        project_page=project_page,
        ai_summary=ai_summary,
        origin=origin_label(origins),
    )


def next_digest_text(subscriber: Subscriber) -> str:
    """When ``subscriber``'s next scheduled digest goes out, in their timezone:
    ``"on Monday 7 December at 08:00 (Europe/Berlin)"``; ``"on its usual schedule"``
    when none is scheduled (paused, not confirmed)."""
    if subscriber.next_digest_at is None:
        return "on its usual schedule"
    local = timezone.localtime(subscriber.next_digest_at, ZoneInfo(subscriber.timezone))
    return f"on {local:%A} {local.day} {local:%B} at {local:%H:%M} ({subscriber.timezone})"


def digest_message(
    digest: Digest,
    *,
    renderer: Renderer | None = None,
    papers: Sequence[tuple[PaperCard, str]] | None = None,
    personal_links: bool = True,
    links: Mapping[str, str] | None = None,
    fit: bool = True,
    feedback_links: bool = True,
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
    to whoever holds the "view in browser" address (``?from=browser&for=unsubscribe`` or
    ``…settings``, so that page says why it asks for the address). ``links`` replaces fields of the
    body's :class:`~digest.delivery.render.Recipient` — ``email``, and ``unsubscribe_url``,
    ``manage_url`` and ``web_url`` (plain ASCII URLs): a moderator's preview shows
    placeholders there, never links that act for the subscriber, and the public copy
    no address. Without ``fit`` every paper is shown, however long the email (the "view
    in browser" page, where mail apps do not cut it short); with it the email stays
    within ``DIGEST_MAX_BYTES``. With ``feedback_links`` each paper carries the
    subscriber's signed "More like this" and "Less like this" links (also in the "view
    in browser" copy: they only lead to a page with a button, and a vote can be undone);
    a moderator's preview goes without.
    """
    subscriber = digest.subscriber
    if papers is None:
        papers = load_cards([digest.pk]).get(digest.pk, [])
    unsubscribe = unsubscribe_url(subscriber.uuid)
    if personal_links:
        body_unsubscribe, body_manage = unsubscribe, manage_url_for(subscriber)
    else:
        # The "email me my link" page, saying why it asks for the address (BROWSER_COPY).
        ask = settings.SITE_URL + reverse("email_link") + "?from=browser&for="
        body_unsubscribe, body_manage = ask + "unsubscribe", ask + "settings"
    recipient = Recipient(
        email=subscriber.email,
        unsubscribe_url=body_unsubscribe,
        manage_url=body_manage,
        web_url=digest_web_url(digest),
        next_digest=next_digest_text(subscriber),
    )
    if links:
        recipient = replace(recipient, **links)
    frequency = str(subscriber.get_frequency_display()).lower()
    if papers:
        cards, reasons = [p for p, _ in papers], [r for _, r in papers]
        render = renderer.digest if renderer else render_digest
        parts = render(
            cards,
            reasons,
            recipient=recipient,
            frequency=frequency,
            edition=digest.period,
            fit=fit,
            limit=subscriber.max_papers,
            feedback=vote_links(subscriber.uuid) if feedback_links else None,
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
    message.tags = ["digest", *getattr(message, "tags", [])]  # type: ignore[attr-defined]
    return message
