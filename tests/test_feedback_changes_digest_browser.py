"""Votes cast in a real browser change the next digest as docs/relevance.md says.

Chromium (through Playwright) follows a sent digest's "More like this" link on one paper
and "Less like this" on another and presses each page's button. Each vote commits, and
the ``Feedback`` signal enqueues ``rebuild_profile`` on commit
(:mod:`digest.relevance.signals`); this suite runs Celery tasks eagerly (the autouse
fixture of ``tests/conftest.py``), so the rebuild runs in the live server's thread right
after the vote commits, as a worker would run it after taking it off the broker (that
path, through Redis and a worker process, is ``tests/test_relevance_worker.py``'s).

The next day's digest is then planned and sent: the papers the filters matched that were
not sent the day before. The test works out, from the stored papers, sightings and
embeddings with numpy and the documented formulas only, what that digest must hold —
the keyword score (points + trend fraction), the profile, ``learned(p)``, the order of
the matches and the "You may also like" papers — and compares. Two subscribers with the
same filters are the controls: one never votes (the keyword order), one only likes the
same paper (what the like alone would suggest). Screenshots of the next digest go to
``var/screenshots/feedback-next-digest*.png``.
"""

from __future__ import annotations

import io
import math
import re
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from bs4 import BeautifulSoup
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.models import Digest, DigestItem, Feedback, Paper, Sighting
from digest.relevance.embed import DIMENSIONS, load_vectors
from digest.relevance.vectors import from_bytes
from subscriptions.feedback import record_vote
from subscriptions.schedule import window

from .conftest import SCREENSHOTS, make_subscriber
from .test_browser import new_page, shot, site  # noqa: F401  (the fixture)
from .test_signup import sent

sync_api = pytest.importorskip("playwright.sync_api")

FILTERS = ["mamba", "survey", "attention"]
LIKED = "Mamba: Linear-Time Sequence Modeling with Selective State Spaces"
DISLIKED = "A Comprehensive Survey on Applications of Transformers for Deep Learning Tasks"
# docs/relevance.md's example: the liked title cut at a word within 60 characters.
REASON = 'like "Mamba: Linear-Time Sequence Modeling with Selective State…", which you liked'


def _points(paper: Paper) -> int:
    """docs/ingest-and-matching.md: each filter that matches gives 2 points with its word
    in the title or authors, 1 in the abstract only; a plural matches the singular."""
    total = 0
    for term in FILTERS:
        word = re.compile(rf"\b{term}s?\b", re.IGNORECASE)
        if word.search(paper.title) or word.search(" ".join(paper.authors or ())):
            total += 2
        elif word.search(paper.abstract):
            total += 1
    return total


def _trends(papers: list[Paper], now) -> dict[int, float]:  # type: ignore[no-untyped-def]
    """digest/matching/trend.py's formula: ln(1 + upvotes) + 2·ln(1 + gained) −
    age_days/7, ``gained`` between a paper's latest two sightings that show a count."""
    counts: dict[int, list[int]] = defaultdict(list)
    for pk, upvotes in (
        Sighting.objects.filter(upvotes__isnull=False)
        .order_by("-seen_at", "-id")
        .values_list("paper_id", "upvotes")
    ):
        counts[pk].append(upvotes)
    trends = {}
    for p in papers:
        seen = counts.get(p.pk, [])
        gained = seen[0] - seen[1] if len(seen) >= 2 else 0
        published = p.published_on or p.first_seen_at.date()
        age = max((now.date() - published).days, 0)
        trends[p.pk] = math.log1p(max(p.upvotes or 0, 0)) + 2 * math.log1p(max(gained, 0)) - age / 7
    return trends


def _items(digest: Digest) -> list[DigestItem]:
    return list(digest.items.order_by("rank"))


def _message_to(outbox: Path, address: str):  # type: ignore[no-untyped-def]
    return [m for m in sent(outbox, "digest") if m["To"] == address]


def _vote_in_browser(browser, html: str, title: str, label: str) -> None:  # type: ignore[no-untyped-def]
    """Open the email's HTML part, follow ``label``'s link on the paper ``title``, and
    press the button of the page it opens."""
    expect = sync_api.expect
    page = new_page(browser, viewport={"width": 390, "height": 844})
    page.set_content(html, wait_until="domcontentloaded")
    card = page.locator("table.paper", has=page.get_by_role("heading", name=title, exact=True))
    with page.expect_navigation():
        card.get_by_role("link", name=label).click()
    expect(page.get_by_role("heading", name=title)).to_be_visible()
    page.get_by_role("button", name=label).click()
    expect(page.get_by_role("heading", name=f"Noted: {label.lower()}")).to_be_visible()
    assert page.errors == []  # type: ignore[attr-defined]
    page.context.close()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("site")
def test_votes_from_the_email_reorder_the_next_digest_and_bring_suggestions(
    browser, outbox: Path
) -> None:  # type: ignore[no-untyped-def]
    expect = sync_api.expect
    call_command("embed_papers", stdout=io.StringIO())
    ada = make_subscriber("ada@example.org", FILTERS)
    grace = make_subscriber("grace@example.org", FILTERS)  # never votes
    hopper = make_subscriber("hopper@example.org", FILTERS)  # only likes the same paper
    everyone = [ada.pk, grace.pk, hopper.pk]
    today = timezone.now()

    # --- Digest 1: keyword order for all three (nobody has voted, nobody has a profile).
    first = {r.subscriber_id: r for r in deliver(everyone, now=today)}
    assert {r.status for r in first.values()} == {"sent"}
    sent_before = {i.paper_id for i in _items(Digest.objects.get(pk=first[ada.pk].digest_id))}
    assert len(sent_before) == settings.DIGEST_MAX_PAPERS
    for who in (grace, hopper):
        assert [i.paper_id for i in _items(Digest.objects.get(pk=first[who.pk].digest_id))] == [
            i.paper_id for i in _items(Digest.objects.get(pk=first[ada.pk].digest_id))
        ]
    liked = Paper.objects.get(title=LIKED)
    disliked = Paper.objects.get(title=DISLIKED)
    assert {liked.pk, disliked.pk} <= sent_before

    # --- The votes, from ada's email in Chromium.
    [message] = _message_to(outbox, ada.email)
    html = message.get_body(("html",)).get_content()
    _vote_in_browser(browser, html, LIKED, "More like this")
    _vote_in_browser(browser, html, DISLIKED, "Less like this")
    votes = {(f.paper_id, f.vote, f.source) for f in Feedback.objects.filter(subscriber=ada)}
    assert votes == {
        (liked.pk, Feedback.MORE, Feedback.EMAIL),
        (disliked.pk, Feedback.LESS, Feedback.EMAIL),
    }
    record_vote(hopper, liked, Feedback.MORE)

    # The profile was rebuilt when each vote committed, before any planning:
    # u = normalise(1.0·mean(liked) − 0.5·mean(disliked)).
    ids, matrix = load_vectors(Paper.objects.values_list("pk", flat=True))
    vec = dict(zip(ids, matrix, strict=True))
    ada.refresh_from_db()
    last_vote = Feedback.objects.filter(subscriber=ada).latest("updated_at").updated_at
    assert ada.profile_updated_at is not None and ada.profile_updated_at >= last_vote
    u = vec[liked.pk] - 0.5 * vec[disliked.pk]
    u = u / np.linalg.norm(u)
    assert np.allclose(from_bytes(ada.profile, DIMENSIONS), u, atol=1e-5)

    # --- Digest 2, the next day.
    tomorrow = today + timedelta(days=1)
    second = {r.subscriber_id: r for r in deliver(everyone, now=tomorrow, force=True)}
    assert {r.status for r in second.values()} == {"sent"}
    digests = {pk: Digest.objects.get(pk=second[pk].digest_id) for pk in everyone}
    assert digests[ada.pk].period != Digest.objects.get(pk=first[ada.pk].digest_id).period
    items = {pk: _items(d) for pk, d in digests.items()}
    matches = {pk: [i.paper_id for i in its if not i.suggested] for pk, its in items.items()}
    suggested = {pk: [i for i in its if i.suggested] for pk, its in items.items()}

    # What the documented formulas say, worked out here. The edition: papers seen within
    # the daily window; its trend fraction (P − 1 − rank)/(2P) by trend, then paper id
    # (the filters are single words: none earns the half point for words together).
    edition = list(
        Paper.objects.filter(hidden_at__isnull=True, last_seen_at__gte=tomorrow - window("daily"))
    )
    trend = _trends(edition, tomorrow)
    by_trend = sorted(edition, key=lambda p: (-trend[p.pk], p.pk))
    size = len(by_trend)
    keyword = {p.pk: _points(p) + (size - 1 - rank) / (2 * size) for rank, p in enumerate(by_trend)}
    points = {p.pk: _points(p) for p in edition}
    candidates = sorted(
        (pk for pk in keyword if points[pk] and pk not in sent_before),
        key=lambda pk: -keyword[pk],
    )
    limit = settings.DIGEST_MAX_PAPERS
    assert len(candidates) > 2 * limit  # the cut at 2 × DIGEST_MAX_PAPERS matters here
    # Grace, who never voted, gets the keyword order: this reading of the rules is the
    # product's.
    assert matches[grace.pk] == candidates[:limit]
    assert suggested[grace.pk] == []

    def learned(pk: int) -> float:
        p = vec[pk]
        margin = max(0.0, float(vec[disliked.pk] @ p) - float(vec[liked.pk] @ p))
        return float(u @ p) - 2 * margin

    considered = candidates[: 2 * limit]
    mixed = sorted(considered, key=lambda pk: -(keyword[pk] + 2 * learned(pk)))
    assert matches[ada.pk] == mixed[:limit]
    assert matches[ada.pk] != matches[grace.pk]  # the votes changed the order

    # You may also like: papers no filter matched, not sent, not voted on, scoring at
    # least the median of the matches considered, closer to the liked paper than to the
    # disliked one; best learned(p) first, three at most.
    bar = float(np.median([learned(pk) for pk in considered]))
    pool = [
        pk
        for pk in keyword
        if not points[pk]
        and pk not in sent_before
        and pk in vec
        and learned(pk) >= bar
        and float(vec[liked.pk] @ vec[pk]) > float(vec[disliked.pk] @ vec[pk])
    ]
    expected = sorted(pool, key=lambda pk: -learned(pk))[:3]
    assert expected
    assert [i.paper_id for i in suggested[ada.pk]] == expected
    assert {i.reason for i in suggested[ada.pk]} == {REASON}
    # Each suggestion is more like the liked paper than the edition's typical paper is:
    # in the closer half to it (and, by the pool's rule, none is closer to the disliked
    # one).
    to_liked = sorted(vec, key=lambda pk: -float(vec[pk] @ vec[liked.pk]))
    assert all(to_liked.index(pk) < len(to_liked) // 2 for pk in expected), [len(to_liked)] + [
        to_liked.index(pk) for pk in expected
    ]
    # The like alone (hopper) brings papers closer to the disliked paper than to the
    # liked one; ada, who also voted "less like this", gets none of them.
    near_disliked = {
        i.paper_id
        for i in suggested[hopper.pk]
        if float(vec[disliked.pk] @ vec[i.paper_id]) >= float(vec[liked.pk] @ vec[i.paper_id])
    }
    assert near_disliked
    assert not near_disliked & set(expected)

    # --- The next digest as ada's mail app shows it.
    [_, message] = _message_to(outbox, ada.email)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    titles = dict(
        Paper.objects.filter(pk__in=matches[ada.pk] + expected).values_list("pk", "title")
    )
    section = text.index("YOU MAY ALSO LIKE")
    assert all(text.index(titles[pk][:40]) < section for pk in matches[ada.pk])
    assert all(text.index(titles[pk][:40]) > section for pk in expected)
    assert text.count("which you liked") == len(expected)

    soup = BeautifulSoup(html, "html.parser")
    shown = [h.get_text(" ", strip=True) for h in soup.select("table.paper h2")]
    assert shown == [" ".join(titles[pk].split()) for pk in matches[ada.pk] + expected]

    for name, viewport in (
        ("feedback-next-digest", {"width": 1280, "height": 900}),
        ("feedback-next-digest-phone", {"width": 390, "height": 844}),
    ):
        page = new_page(browser, viewport=viewport)
        page.set_content(html, wait_until="domcontentloaded")
        heading = page.get_by_role("heading", name="You may also like")
        expect(heading).to_be_visible()
        cards = page.locator("table.paper h2")
        expect(cards).to_have_count(len(matches[ada.pk]) + len(expected))
        first_suggestion = page.locator(
            "table.paper", has=page.get_by_role("heading", name=titles[expected[0]], exact=True)
        )
        expect(first_suggestion).to_contain_text(REASON)
        shot(page, name)
        if name == "feedback-next-digest":
            heading.scroll_into_view_if_needed()
            page.screenshot(path=str(SCREENSHOTS / "feedback-next-digest-suggestions.png"))
        assert page.errors == []  # type: ignore[attr-defined]
        page.context.close()
