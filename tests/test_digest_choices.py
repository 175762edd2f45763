"""What each digest carries, per subscriber: papers per digest (1–30), strong matches
only, the "nothing matched" note, and feed only (no email)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.models import Digest, DigestItem
from subscriptions.models import MAX_PAPERS, Subscriber

from .conftest import make_subscriber
from .test_manage import sign_in
from .test_signup import add_paper, read_eml, sent

ATOM = "{http://www.w3.org/2005/Atom}"
LONG = "Diffusion " + "with an extraordinarily long and winding title " * 20


@pytest.fixture(autouse=True)
def _empty_throttles() -> None:
    cache.clear()


def many_papers(count: int, *, long: bool = False) -> list[int]:
    return [
        add_paper(f"{LONG if long else 'Diffusion'} <b>{n}</b>", "diffusion", upvotes=n).pk
        for n in range(count)
    ]


def carried(digest_id: int | None) -> list[int]:
    return list(
        DigestItem.objects.filter(digest_id=digest_id)
        .order_by("rank")
        .values_list("paper_id", flat=True)
    )


@pytest.mark.django_db
def test_the_settings_page_shows_and_saves_the_choices(client: Client) -> None:
    ada = make_subscriber("ada@example.org", ["diffusion"])
    sign_in(client, ada)
    page = client.get("/manage/").content.decode()
    assert 'id="choices"' in page and "What each digest carries" in page
    assert '<option value="10" selected>10</option>' in page
    assert f'<option value="{MAX_PAPERS}">{MAX_PAPERS}</option>' in page

    response = client.post(
        "/manage/choices/",
        {"max_papers": "30", "strong_only": "on", "send_empty": "", "feed_only": "on"},
    )
    assert response.status_code == 302 and response["Location"] == "/manage/#choices"
    ada.refresh_from_db()
    assert (ada.max_papers, ada.strong_only, ada.send_empty, ada.feed_only) == (
        30,
        True,
        False,
        True,
    )
    # Feed only needs the feed: its address is made at once.
    assert ada.feed_secret
    page = client.get("/manage/").content.decode()
    assert "go to your private feed only" in page
    assert '<option value="30" selected>30</option>' in page


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["0", "31", "-1", "ten", "<script>", ""])
def test_a_bad_number_of_papers_is_refused_and_changes_nothing(client: Client, bad: str) -> None:
    ada = make_subscriber("ada@example.org", ["diffusion"], max_papers=7)
    sign_in(client, ada)
    response = client.post("/manage/choices/", {"max_papers": bad, "strong_only": "on"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Select a valid choice" in html or "This field is required" in html
    assert "<script>" not in html.split('id="choices"')[1].split("</section>")[0].replace(
        "&lt;script&gt;", ""
    )
    ada.refresh_from_db()
    assert (ada.max_papers, ada.strong_only) == (7, False)


@pytest.mark.django_db
def test_each_subscriber_gets_their_number_of_papers_up_to_30_long_titles(
    outbox: Path,
) -> None:
    many_papers(40, long=True)
    most = make_subscriber("most@example.org", ["diffusion"], max_papers=MAX_PAPERS)
    one = make_subscriber("one@example.org", ["diffusion"], max_papers=1)
    usual = make_subscriber("usual@example.org", ["diffusion"])
    results = {r.email: r for r in deliver([most.pk, one.pk, usual.pk])}
    assert {e: (r.status, r.papers) for e, r in results.items()} == {
        "most@example.org": ("sent", 30),
        "one@example.org": ("sent", 1),
        "usual@example.org": ("sent", 10),
    }
    # Best first, whatever the number: the top of 30 is the top of 10 is the top of 1.
    top30 = carried(results["most@example.org"].digest_id)
    assert carried(results["usual@example.org"].digest_id) == top30[:10]
    assert carried(results["one@example.org"].digest_id) == top30[:1]

    eml = read_eml(outbox / f"digest-{results['most@example.org'].digest_id}.eml")
    text = eml.get_body(("plain",)).get_content()
    html = eml.get_body(("html",)).get_content()
    assert "Your 30 best matches of this edition" in text
    assert "Your 30 best matches of this edition" in html
    assert "<b>39</b>" not in html and "&lt;b&gt;39&lt;/b&gt;" in html
    eml = read_eml(outbox / f"digest-{results['one@example.org'].digest_id}.eml")
    assert "1 paper matched your filters" in eml.get_body(("plain",)).get_content()


@pytest.mark.django_db
def test_fewer_matches_than_asked_are_not_called_the_best(outbox: Path) -> None:
    many_papers(12)
    most = make_subscriber("most@example.org", ["diffusion"], max_papers=30)
    [result] = deliver([most.pk])
    assert (result.status, result.papers) == ("sent", 12)
    text = read_eml(outbox / f"digest-{result.digest_id}.eml").get_body(("plain",)).get_content()
    assert "12 papers matched your filters" in text and "best matches" not in text


@pytest.mark.django_db
def test_strong_only_keeps_title_matches_even_when_weak_ones_outrank_them() -> None:
    # Two filters in the abstract give as many points as one in the title; with more
    # upvotes the abstract-only papers come first in the ranking.
    weak = [add_paper(f"Weak {n}", "alpha and beta", upvotes=500 + n).pk for n in range(4)]
    strong = [add_paper(f"Alpha {n}", "nothing else", upvotes=n).pk for n in range(3)]
    picky = make_subscriber("picky@example.org", ["alpha", "beta"], max_papers=2, strong_only=True)
    everyone = make_subscriber("all@example.org", ["alpha", "beta"], max_papers=2)
    results = {r.email: r for r in deliver([picky.pk, everyone.pk])}
    assert set(carried(results["picky@example.org"].digest_id)) == set(strong[1:])
    assert set(carried(results["all@example.org"].digest_id)) <= set(weak)


@pytest.mark.django_db
def test_strong_only_with_only_abstract_matches_gets_nothing(outbox: Path) -> None:
    add_paper("Something", "diffusion in the abstract", upvotes=3)
    add_paper("Pinned paper", "unrelated", upvotes=3, pinned_at=timezone.now())
    picky = make_subscriber("picky@example.org", ["diffusion"], strong_only=True)
    [result] = deliver([picky.pk])
    assert result.status == "empty" and not sent(outbox)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("site", "choice", "note"),
    [(False, None, False), (True, None, True), (False, True, True), (True, False, False)],
)
def test_the_nothing_matched_note_follows_the_choice_else_the_site(
    settings, outbox: Path, site: bool, choice: bool | None, note: bool
) -> None:  # type: ignore[no-untyped-def]
    add_paper("Protein folding", "proteins", upvotes=3)
    settings.DIGEST_SEND_EMPTY = site
    ada = make_subscriber("ada@example.org", ["diffusion"], send_empty=choice)
    [result] = deliver([ada.pk])
    assert result.status == ("sent" if note else "empty")
    assert [m["X-Email-Kind"] for m in sent(outbox)] == (["nothing"] if note else [])


@pytest.mark.django_db
def test_a_new_subscriber_follows_the_sites_defaults(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DIGEST_SEND_EMPTY = True
    settings.DIGEST_MAX_PAPERS = 12
    ada = Subscriber.objects.create(email="ada@example.org")
    assert (ada.send_empty, ada.wants_empty_notes, ada.max_papers) == (None, True, 12)
    settings.DIGEST_MAX_PAPERS = 500
    assert Subscriber.objects.create(email="bo@example.org").max_papers == MAX_PAPERS


@pytest.mark.django_db
def test_feed_only_sends_no_email_and_the_feed_carries_the_digest(
    client: Client, outbox: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.DIGEST_SEND_EMPTY = True
    many_papers(3)
    reader = make_subscriber("reader@example.org", ["diffusion"], feed_only=True)
    quiet = make_subscriber("quiet@example.org", ["nothing-matches"], feed_only=True)
    secret = reader.reset_feed_secret()
    results = {r.email: r for r in deliver([reader.pk, quiet.pk])}
    assert (results["reader@example.org"].status, results["reader@example.org"].papers) == (
        "feed",
        3,
    )
    # No note either: a note is an email.
    assert results["quiet@example.org"].status == "empty"
    assert not sent(outbox)
    digest = Digest.objects.get(pk=results["reader@example.org"].digest_id)
    assert digest.status == Digest.SENT and digest.sent_at is not None
    feed = client.get(f"/feed/{secret}/").content
    titles = [e.findtext(f"{ATOM}title") for e in ElementTree.fromstring(feed).iter(f"{ATOM}entry")]
    assert titles == [f"Diffusion <b>{n}</b>" for n in (2, 1, 0)]
    # Delivering again publishes nothing twice.
    reader.refresh_from_db()
    reader.next_digest_at = timezone.now() - timedelta(seconds=1)
    reader.save(update_fields=["next_digest_at"])
    assert {r.status for r in deliver([reader.pk])} == {"already"}
    assert not sent(outbox) and reader.digests.count() == 1
