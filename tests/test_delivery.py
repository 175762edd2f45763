"""Who gets a digest, when, and never the same paper twice."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.db.models import Q
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.delivery.plan import plan_digest
from digest.ingest.store import ingest_source
from digest.models import Digest, DigestItem, Paper
from digest.tasks import send_due_digests

from .conftest import PAGE_000, PAGE_002, PAGE_004, make_subscriber
from .test_signup import add_paper


@pytest.mark.django_db
def test_it_skips_papers_already_sent(outbox: Path) -> None:
    ingest_source(str(PAGE_000))
    ada = make_subscriber("ada@example.org", ["transformer"])
    now = timezone.now()
    [first] = deliver([ada.pk], now=now)
    assert (first.status, first.papers) == ("sent", 10)
    # The next day, the same subscriber: ten other papers, none repeated.
    ingest_source(str(PAGE_002))
    [second] = deliver([ada.pk], now=now + timedelta(days=1))
    assert (second.status, second.papers) == ("sent", 10)
    sent = list(DigestItem.objects.filter(subscriber=ada).values_list("paper_id", flat=True))
    assert len(sent) == len(set(sent)) == 20
    assert len(list(outbox.glob("*.eml"))) == 2


@pytest.mark.django_db
def test_a_second_run_in_the_same_period_sends_nothing(outbox: Path) -> None:
    ingest_source(str(PAGE_004))
    ada = make_subscriber("ada@example.org", ["mamba"])
    now = timezone.now()
    assert [r.status for r in deliver([ada.pk], now=now, force=True)] == ["sent"]
    assert [r.status for r in deliver([ada.pk], now=now, force=True)] == ["already"]
    assert len(list(outbox.glob("*.eml"))) == 1
    assert Digest.objects.get().status == Digest.SENT


@pytest.mark.django_db
def test_unconfirmed_paused_and_unsubscribed_subscribers_get_nothing(outbox: Path) -> None:
    ingest_source(str(PAGE_004))
    now = timezone.now()
    subscribers = [
        make_subscriber("new@example.org", ["mamba"], confirmed_at=None),
        make_subscriber("paused@example.org", ["mamba"], paused_at=now),
        make_subscriber("gone@example.org", ["mamba"], unsubscribed_at=now),
        make_subscriber("bounced@example.org", ["mamba"], suppressed_at=now),
    ]
    results = deliver([s.pk for s in subscribers], now=now, force=True)
    assert [r.status for r in results] == ["skipped"] * 4
    assert not list(outbox.glob("*.eml"))


@pytest.mark.django_db
def test_an_empty_digest_sends_nothing_and_reschedules(outbox: Path) -> None:
    ingest_source(str(PAGE_004))
    ada = make_subscriber("ada@example.org", ["protein folding"])
    now = timezone.now()
    [result] = deliver([ada.pk], now=now)
    assert result.status == "empty"
    assert not list(outbox.glob("*.eml"))
    ada.refresh_from_db()
    assert ada.next_digest_at > now


@pytest.mark.django_db
def test_hidden_papers_are_never_sent(outbox: Path) -> None:
    ingest_source(str(PAGE_004))
    mentions = Q(title__icontains="mamba") | Q(abstract__icontains="mamba")
    assert Paper.objects.filter(mentions).count() == 3  # two titles and one more abstract
    Paper.objects.filter(mentions).update(hidden_at=timezone.now())
    ada = make_subscriber("ada@example.org", ["mamba"])
    [result] = deliver([ada.pk])
    assert result.status == "empty"


@pytest.mark.django_db(transaction=True)
def test_the_beat_task_sends_only_due_digests(outbox: Path) -> None:
    ingest_source(str(PAGE_004))
    now = timezone.now()
    due = make_subscriber("due@example.org", ["mamba"], next_digest_at=now - timedelta(minutes=1))
    later = make_subscriber("later@example.org", ["mamba"], next_digest_at=now + timedelta(hours=3))
    assert send_due_digests.delay().get() == 1
    assert list(Digest.objects.values_list("subscriber_id", "status")) == [(due.pk, "sent")]
    due.refresh_from_db()
    assert due.next_digest_at > now
    later.refresh_from_db()
    assert later.next_digest_at == now + timedelta(hours=3)


@pytest.mark.django_db
def test_a_chosen_topic_selects_its_papers_with_the_reason(outbox: Path) -> None:
    from digest.models import Topic

    brains = Topic.objects.create(name="Brains", slug="brains", query="title:brain")
    ingest_source(str(PAGE_004))
    tagged = set(brains.papers.values_list("pk", flat=True))
    assert len(tagged) == 4  # four titles on the page have the word "brain"
    ada = make_subscriber("ada@example.org", [])
    ada.topics.add(brains)
    [result] = deliver([ada.pk])
    items = Digest.objects.get(pk=result.digest_id).items.all()
    assert {i.paper_id for i in items} == tagged
    assert {i.reason for i in items} == {'matched topic "Brains" (brain in title)'}


@pytest.mark.django_db
def test_a_pinned_paper_leads_every_digest_that_has_matches(outbox: Path) -> None:
    ingest_source(str(PAGE_004))
    pinned = Paper.objects.get(title="Visio-Linguistic Brain Encoding")
    pinned.pin()
    ada = make_subscriber("ada@example.org", ["mamba"])
    nobody = make_subscriber("nobody@example.org", ["protein folding"])
    results = {r.subscriber_id: r for r in deliver([ada.pk, nobody.pk])}
    items = list(Digest.objects.get(pk=results[ada.pk].digest_id).items.all())
    assert (items[0].paper_id, items[0].reason) == (pinned.pk, "pinned by the editors")
    assert len(items) == 4  # the pin, then the three papers that mention mamba
    assert results[nobody.pk].status == "empty"


@pytest.mark.django_db
def test_chunks_share_the_edition_until_an_ingest_a_hide_or_a_pin_changes_it(
    outbox: Path,
) -> None:
    """Each chunk of a daily run matches against the edition the worker prepared for the
    first one; a moderator's hide or pin, an edit or a new ingest in between is seen by
    the next chunk."""
    from digest.delivery import plan

    ingest_source(str(PAGE_004))
    now = timezone.now()
    mamba = list(Paper.objects.filter(Q(title__icontains="mamba") | Q(abstract__icontains="mamba")))
    ada = make_subscriber("ada@example.org", ["mamba"])
    [first] = deliver([ada.pk], now=now, force=True)
    assert first.papers == len(mamba) == 3
    prepared = [v for k, v in plan._memo.items() if k[0] == "edition"]

    def papers_of(email: str, filters: list[str]) -> set[int]:
        subscriber = make_subscriber(email, filters)
        [result] = deliver([subscriber.pk], now=now, force=True)
        return set(
            DigestItem.objects.filter(digest_id=result.digest_id).values_list("paper_id", flat=True)
        )

    # Nothing changed: the next chunk reuses the prepared edition.
    assert papers_of("bob@example.org", ["mamba"]) == {p.pk for p in mamba}
    assert [v for k, v in plan._memo.items() if k[0] == "edition"][-1] is prepared[-1]

    mamba[0].hide("off topic")
    assert papers_of("cy@example.org", ["mamba"]) == {p.pk for p in mamba[1:]}

    other = Paper.objects.exclude(pk__in=[p.pk for p in mamba]).first()
    other.pin()
    dee = papers_of("dee@example.org", ["mamba"])
    assert dee == {other.pk} | {p.pk for p in mamba[1:]}

    other.unpin()
    mamba[1].title = "Snakes on a plane"
    mamba[1].abstract = "No reptiles were harmed."
    mamba[1].save()
    assert papers_of("eve@example.org", ["mamba"]) == {mamba[2].pk}

    ingest_source(str(PAGE_000))
    assert papers_of("fay@example.org", ["transformer"])  # papers of the new page


@pytest.mark.django_db
def test_a_digest_puts_papers_holding_plain_words_together_first(outbox: Path) -> None:
    # The papers holding the words together have the fewest upvotes: without the rule
    # the scattered ones, more upvoted, would come first at each strength.
    together_title = add_paper("Scaling state space models", "We study them.", upvotes=1)
    scattered_title = add_paper(
        "Sparse models of motion", "The state of the art is in a latent space.", upvotes=90
    )
    together_abstract = add_paper("Selective scans", "Models whose state space grows.", upvotes=2)
    scattered_abstract = add_paper(
        "Fast scans", "Our models keep a hidden state in the embedding space.", upvotes=80
    )
    add_paper("Diffusion for video", "Nothing about it.", upvotes=99)
    ada = make_subscriber("ada@example.org", ["state space models"])
    digest = plan_digest(ada, timezone.now())
    items = list(digest.items.order_by("rank"))
    assert [i.paper_id for i in items] == [
        together_title.pk,
        scattered_title.pk,
        together_abstract.pk,
        scattered_abstract.pk,
    ]
    mine = 'matched your filter "state space models"'
    assert [i.reason for i in items] == [
        f'{mine} ("state space models" in title)',
        f"{mine} (models in title, space in abstract, state in abstract)",
        f'{mine} ("state space models" in abstract)',
        f"{mine} (models in abstract, space in abstract, state in abstract)",
    ]
    # Quoted, the filter keeps only the paper holding the exact phrase.
    bea = make_subscriber("bea@example.org", ['"state space models"'])
    quoted = plan_digest(bea, timezone.now())
    assert [i.paper_id for i in quoted.items.order_by("rank")] == [together_title.pk]
