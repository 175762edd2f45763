"""Every subscriber the product accepts gets a digest, at the limits it declares, and one
subscriber whose digest cannot be planned or rendered never stops the others.

On PostgreSQL: the limits are the database's as much as the code's (column types,
one INSERT per chunk).
"""

from __future__ import annotations

import email
from datetime import timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from digest.dashboard import dashboard_data
from digest.delivery import plan as plan_module
from digest.delivery import send as send_module
from digest.delivery.pipeline import deliver
from digest.delivery.plan import bounded_reason
from digest.delivery.preview import preview_next_digest
from digest.matching.query import MAX_FILTERS, MAX_QUERY_LENGTH, MAX_TERMS, validate_filters
from digest.models import Digest, DigestItem, Paper, Topic
from digest.tasks import send_due_digests
from subscriptions.models import Subscriber

from .conftest import make_subscriber
from .test_admin_roles import moderator_client

pytestmark = pytest.mark.django_db

# Distinct words of eleven letters: twenty of them, joined by " OR ", fill a filter.
WORDS = [f"zq{n:04d}alm{chr(97 + n % 26)}x" for n in range(400)]


def limit_filters() -> list[str]:
    """MAX_FILTERS filters of about MAX_QUERY_LENGTH characters and MAX_TERMS terms, each
    a different OR-list of words that are all in the long paper's title."""
    filters = []
    for n in range(MAX_FILTERS):
        terms = WORDS[n * MAX_TERMS : (n + 1) * MAX_TERMS]
        text = " OR ".join(terms)
        assert MAX_QUERY_LENGTH - 10 <= len(text) <= MAX_QUERY_LENGTH, len(text)
        filters.append(text)
    validate_filters(filters)  # the signup form would accept them
    return filters


def long_paper(n: int, *, words: list[str]) -> Paper:
    """A paper with a 1,000-character title made of ``words`` and 2,000 authors."""
    title = " ".join(words)
    title = (title + " " + "padding " * 200)[:1000].strip()
    return Paper.objects.create(
        arxiv_id=f"2611.{n:05d}",
        title=title,
        abstract=("An abstract that goes on. " * 200).strip(),
        authors=[f"Author Number{i} Surname{i}" for i in range(2000)],
        authors_count=2000,
        upvotes=10 + n,
        last_seen_at=timezone.now(),
    )


def test_a_subscriber_at_every_declared_limit_gets_their_digest(outbox: Path) -> None:
    assert connection.vendor == "postgresql"
    # Every word of every filter is in the first paper's title; the second and third
    # carry one word of each filter.
    papers = [long_paper(0, words=[w for k in (0, 3, 4, 5) for w in WORDS[k::MAX_TERMS]])]
    papers += [long_paper(n, words=WORDS[n::MAX_TERMS]) for n in (1, 2)]
    topics = [
        Topic.objects.create(name=f"Topic {n} " + "x" * 80, slug=f"t{n}", query=WORDS[n * 7])
        for n in range(30)
    ]
    for paper in papers:
        paper.topics.add(*topics)
    heavy = make_subscriber("heavy@example.org", limit_filters())
    heavy.topics.add(*topics)  # every topic
    others = [make_subscriber(f"r{n}@example.org", [WORDS[n % 3]]) for n in range(5)]

    # The moderator's preview of that digest works as delivery will.
    page = moderator_client().get(
        reverse("admin:subscriptions_subscriber_preview", args=[heavy.pk])
    )
    assert page.status_code == 200
    preview = page.context["preview"]
    assert preview.status == "pending" and len(preview.papers) == len(papers)
    assert all(0 < len(reason) <= DigestItem.REASON_MAX_CHARS for _, reason in preview.papers)

    results = deliver([heavy.pk, *(s.pk for s in others)])

    assert {r.email: r.status for r in results} == {
        "heavy@example.org": "sent",
        **{s.email: "sent" for s in others},
    }
    digest = Digest.objects.get(subscriber=heavy)
    items = list(digest.items.order_by("rank"))
    assert {i.paper_id for i in items} == {p.pk for p in papers}
    assert all(0 < len(i.reason) <= DigestItem.REASON_MAX_CHARS for i in items)
    eml = email.message_from_bytes(
        (outbox / f"digest-{digest.pk}.eml").read_bytes(), policy=policy.default
    )
    html = eml.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = eml.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert papers[0].title[:200] in " ".join(text.split()) or papers[0].title[:60] in text
    assert "2000 authors" in html and "2000 authors" in text
    heavy.refresh_from_db()
    assert heavy.next_digest_at > timezone.now()


def test_a_reason_is_cut_at_a_word_boundary() -> None:
    reason = "; ".join(f'matched your filter "{w}" ({w} in title)' for w in WORDS[:100])
    cut = bounded_reason(reason, 200)
    assert len(cut) <= 200 and cut.endswith("…")
    assert reason.startswith(cut[:-1]) and reason[len(cut) - 1] in " ;,"
    assert bounded_reason("short", 200) == "short"


def poison_matching(monkeypatch: pytest.MonkeyPatch, victim: Subscriber) -> None:
    """Matching raises for any batch that holds ``victim`` (a bug that one subscriber's
    filters trigger)."""
    select = plan_module._select

    def failing(subscribers, now, *rest):  # type: ignore[no-untyped-def]
        if any(s.pk == victim.pk for s in subscribers):
            raise ValueError(f"matching blew up on subscriber {victim.pk}")
        return select(subscribers, now, *rest)

    monkeypatch.setattr(plan_module, "_select", failing)


def test_a_subscriber_whose_plan_fails_is_marked_and_the_chunk_goes_on(
    monkeypatch: pytest.MonkeyPatch, outbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    papers = [long_paper(n, words=WORDS[n::MAX_TERMS]) for n in range(3)]
    readers = [make_subscriber(f"r{n}@example.org", [WORDS[n % 3]]) for n in range(9)]
    victim = readers[4]
    poison_matching(monkeypatch, victim)
    now = timezone.now()

    results = {r.email: r for r in deliver([s.pk for s in readers], now=now)}

    assert {a: r.status for a, r in results.items()} == {
        s.email: ("failed" if s == victim else "sent") for s in readers
    }
    failed = Digest.objects.get(subscriber=victim)
    assert failed.status == Digest.FAILED
    assert "matching blew up on subscriber" in failed.last_error
    assert not failed.items.exists()
    assert results[victim.email].error == failed.last_error
    assert len(list(outbox.glob("*.eml"))) == 8
    # Everyone moves on, the failed one too (it is not retried every tick).
    assert not Subscriber.objects.filter(next_digest_at__lte=now).exists()
    assert f"digest_plan_failed digest_id={failed.pk} subscriber_id={victim.pk}" in caplog.text
    assert DigestItem.objects.filter(paper__in=papers).count() == 8

    # The operator sees it: the dashboard counts it, the admin lists it with its error.
    assert dashboard_data()["failed_digests"] == 1
    moderator = moderator_client()
    dashboard = moderator.get(reverse("admin:dashboard")).content.decode()
    assert "<strong data-failed-digests>1</strong> failed digests" in dashboard
    listing = moderator.get(reverse("admin:digest_digest_changelist"), {"status": "failed"})
    [row] = listing.context["cl"].result_list
    assert row.pk == failed.pk and "matching blew up" in listing.content.decode()


def test_the_preview_of_a_subscriber_whose_plan_fails_shows_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    long_paper(0, words=WORDS[:5])
    victim = make_subscriber("victim@example.org", [WORDS[0]])
    poison_matching(monkeypatch, victim)
    page = moderator_client().get(
        reverse("admin:subscriptions_subscriber_preview", args=[victim.pk])
    )
    assert page.status_code == 200
    assert page.context["preview"].status == "failed"
    assert "matching blew up on subscriber" in page.content.decode()
    assert not Digest.objects.exists()  # rolled back, as every preview


def test_a_digest_that_cannot_be_rendered_fails_alone(
    monkeypatch: pytest.MonkeyPatch, outbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    [long_paper(n, words=WORDS[n::MAX_TERMS]) for n in range(3)]
    readers = [make_subscriber(f"r{n}@example.org", [WORDS[n % 3]]) for n in range(5)]
    victim = readers[2]
    render = send_module.digest_message

    def failing(digest, **kwargs):  # type: ignore[no-untyped-def]
        if digest.subscriber_id == victim.pk:
            raise KeyError("a template variable went missing")
        return render(digest, **kwargs)

    monkeypatch.setattr(send_module, "digest_message", failing)
    results = {r.email: r.status for r in deliver([s.pk for s in readers])}
    assert results == {s.email: ("failed" if s == victim else "sent") for s in readers}
    failed = Digest.objects.get(subscriber=victim)
    assert failed.status == Digest.FAILED and "KeyError" in failed.last_error
    assert not failed.items.exists()  # its papers are released for a later digest
    assert f"digest_render_failed digest_id={failed.pk}" in caplog.text
    assert len(list(outbox.glob("*.eml"))) == 4

    monkeypatch.setattr(send_module, "digest_message", render)
    monkeypatch.setattr(
        "digest.delivery.preview.digest_message",
        lambda digest, **kwargs: (_ for _ in ()).throw(
            KeyError("a template variable went missing")
        ),
    )
    other = make_subscriber("other@example.org", [WORDS[0]])
    preview = preview_next_digest(other)
    assert preview.status == "failed" and "KeyError" in preview.error


def test_a_paper_deleted_while_a_chunk_is_planned_fails_only_its_digest(
    monkeypatch: pytest.MonkeyPatch, outbox: Path
) -> None:
    papers = [long_paper(n, words=WORDS[n::MAX_TERMS]) for n in range(3)]
    readers = [make_subscriber(f"r{n}@example.org", [WORDS[n % 3]]) for n in range(4)]
    victim = readers[1]
    select = plan_module._select
    gone = Paper.objects.create(title="Deleted meanwhile", abstract="", last_seen_at=timezone.now())

    def with_a_deleted_paper(subscribers, now, *rest):  # type: ignore[no-untyped-def]
        chosen = select(subscribers, now, *rest)
        chosen[victim.pk] = [plan_module.Selection(gone.pk, "a reason"), *chosen[victim.pk]]
        Paper.objects.filter(pk=gone.pk).delete()  # a moderator merged it away
        return chosen

    monkeypatch.setattr(plan_module, "_select", with_a_deleted_paper)
    results = {r.email: r.status for r in deliver([s.pk for s in readers])}
    assert results == {s.email: ("failed" if s == victim else "sent") for s in readers}
    assert "ForeignKeyViolation" in Digest.objects.get(subscriber=victim).last_error or (
        "foreign key" in Digest.objects.get(subscriber=victim).last_error
    )
    assert DigestItem.objects.filter(paper__in=papers).count() == 3


def test_the_beat_tick_sends_the_others_when_one_subscriber_fails(
    monkeypatch: pytest.MonkeyPatch, outbox: Path, django_capture_on_commit_callbacks: Any
) -> None:
    [long_paper(n, words=WORDS[n::MAX_TERMS]) for n in range(2)]
    now = timezone.now()
    readers = [
        make_subscriber(
            f"r{n}@example.org", [WORDS[n % 2]], next_digest_at=now - timedelta(hours=1)
        )
        for n in range(6)
    ]
    poison_matching(monkeypatch, readers[0])
    with django_capture_on_commit_callbacks(execute=True):
        send_due_digests.delay().get()
    statuses = dict(Digest.objects.values_list("subscriber__email", "status"))
    assert statuses == {s.email: ("failed" if s == readers[0] else "sent") for s in readers}
