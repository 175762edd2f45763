""" "More like this" / "Less like this": the signed links of a digest, the page a GET
shows, the vote a POST records, and the votes, picked papers and suggestions on the
settings page."""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.core import signing
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.models import Digest, Feedback, Paper
from subscriptions.feedback import arxiv_id_of
from subscriptions.models import MAX_SUGGESTIONS, Subscriber
from subscriptions.tokens import (
    FEEDBACK,
    digest_web_url,
    feedback_links,
    feedback_url,
    read_feedback_token,
)

from .conftest import make_subscriber
from .test_manage import sign_in
from .test_signup import add_paper, path_of, sent

MORE, LESS = Feedback.MORE, Feedback.LESS


@pytest.fixture(autouse=True)
def _empty_throttles() -> None:
    cache.clear()


@pytest.fixture
def ada() -> Subscriber:
    return make_subscriber("ada@example.org", ["diffusion"])


@pytest.fixture
def paper() -> Paper:
    return add_paper(
        "Diffusion for video",
        "We generate video with diffusion. It works well. " * 20,
        upvotes=12,
        arxiv_id="2503.01234",
        authors=["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"],
        authors_count=4,
    )


def vote_path(subscriber: Subscriber, paper: Paper, vote: int) -> str:
    return path_of(feedback_url(subscriber.uuid, paper.pk, vote))


# --- the link and its page -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_get_shows_the_paper_and_a_button_and_records_nothing(
    client: Client, ada: Subscriber, paper: Paper
) -> None:
    path = vote_path(ada, paper, MORE)
    for _ in range(2):  # Safe Links opens every link twice
        response = client.get(path)
        assert response.status_code == 200
    html = response.content.decode()
    assert (
        "Diffusion for video" in html and 'href="https://huggingface.co/papers/2503.01234"' in html
    )
    assert "Ada Lovelace, Alan Turing, Grace Hopper et al. · 4 authors" in html
    assert "We generate video with diffusion." in html
    assert len(re.search(r'class="abstract">([^<]*)<', html)[1]) <= 300  # an excerpt
    assert (
        html.count("<form") == 1 and '<button type="submit" class="primary">More like this' in html
    )
    assert response["X-Robots-Tag"] == "noindex"
    assert not Feedback.objects.exists()
    # HEAD (a link checker) records nothing either.
    assert client.head(path).status_code == 200
    assert not Feedback.objects.exists()


@pytest.mark.django_db
def test_the_post_records_the_vote_and_the_page_says_so(
    client: Client, ada: Subscriber, paper: Paper
) -> None:
    path = vote_path(ada, paper, LESS)
    response = client.post(path)
    assert response.status_code == 302 and response["Location"] == path + "?voted=1"
    [row] = Feedback.objects.all()
    assert (row.subscriber_id, row.paper_id, row.vote, row.source) == (
        ada.pk,
        paper.pk,
        LESS,
        "email",
    )
    assert row.created_at == row.updated_at
    page = client.get(response["Location"]).content.decode()
    assert "Noted: less like this" in page and "<form" not in page.split("Not what you meant")[0]


@pytest.mark.django_db
def test_a_second_vote_replaces_the_first(client: Client, ada: Subscriber, paper: Paper) -> None:
    with time_machine.travel(timezone.now() - timedelta(days=3), tick=False):
        client.post(vote_path(ada, paper, MORE))
    first = Feedback.objects.get()
    client.post(vote_path(ada, paper, MORE))  # the same again: still one row
    client.post(vote_path(ada, paper, LESS))
    [row] = Feedback.objects.all()
    assert row.pk == first.pk and row.vote == LESS
    assert row.created_at == first.created_at and row.updated_at > first.updated_at + timedelta(
        days=2
    )
    # Its page shows the vote standing now.
    html = client.get(vote_path(ada, paper, MORE)).content.decode()
    assert "You said “less like this”" in html


@pytest.mark.django_db
def test_a_picked_paper_voted_from_an_email_becomes_an_email_vote(
    client: Client, ada: Subscriber, paper: Paper
) -> None:
    Feedback.objects.create(subscriber=ada, paper=paper, vote=MORE, source="picked")
    client.post(vote_path(ada, paper, LESS))
    assert Feedback.objects.values_list("vote", "source").get() == (LESS, "email")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the signature
        lambda t: t.replace(".1:", ".-1:", 1),  # the vote
        lambda t: re.sub(r"\.(\d+)\.", lambda m: f".{int(m[1]) + 1}.", t, count=1),  # the paper
        lambda t: t.split(":", 1)[1],  # cut short
        lambda t: "",
    ],
)
def test_a_tampered_link_gets_a_clear_400_and_records_nothing(
    client: Client, ada: Subscriber, paper: Paper, tamper
) -> None:  # type: ignore[no-untyped-def]
    add_paper("Another paper", "x")  # a paper id one higher exists
    token = vote_path(ada, paper, MORE).removeprefix("/vote/").rstrip("/")
    path = f"/vote/{tamper(token)}/"
    for method in (client.get, client.post):
        response = method(path)
        if response.status_code == 404:  # the empty token matches no URL at all
            assert tamper(token) == ""
            continue
        assert response.status_code == 400
        assert "This link is not valid" in response.content.decode()
    assert not Feedback.objects.exists()


@pytest.mark.django_db
def test_a_forged_link_for_another_subscriber_or_purpose_is_refused(
    client: Client, ada: Subscriber, paper: Paper
) -> None:
    bob = make_subscriber("bob@example.org", ["video"])
    ada_token = vote_path(ada, paper, MORE).removeprefix("/vote/").rstrip("/")
    # Bob's uuid put in Ada's signed token.
    forged = ada_token.replace(ada.uuid.hex, bob.uuid.hex)
    # A token signed for another purpose (the same payload, another salt).
    other = signing.TimestampSigner(salt="subscriptions.unsubscribe").sign(
        f"{bob.uuid.hex}.{paper.pk}.1"
    )
    # A token signed with another key.
    wrong_key = signing.TimestampSigner(key="not-our-secret", salt=FEEDBACK).sign(
        f"{bob.uuid.hex}.{paper.pk}.1"
    )
    for token in (forged, other, wrong_key):
        assert client.post(f"/vote/{token}/").status_code == 400
    assert not Feedback.objects.exists()


@pytest.mark.django_db
def test_a_link_votes_for_its_own_subscriber_whoever_is_signed_in(
    client: Client, ada: Subscriber, paper: Paper
) -> None:
    bob = make_subscriber("bob@example.org", ["video"])
    sign_in(client, bob)
    client.post(vote_path(ada, paper, MORE))
    assert Feedback.objects.values_list("subscriber_id", flat=True).get() == ada.pk
    assert not bob.feedback.exists()


@pytest.mark.django_db
def test_links_work_for_the_archive_lifetime_and_expire_after(
    client: Client, settings, ada: Subscriber, paper: Paper
) -> None:  # type: ignore[no-untyped-def]
    settings.FEEDBACK_LINK_MAX_AGE = 60  # too short: the archive's lifetime wins
    settings.DIGEST_ARCHIVE_DAYS = 90
    with time_machine.travel(timezone.now() - timedelta(days=89), tick=False):
        old = vote_path(ada, paper, MORE)
    assert client.post(old).status_code == 302
    with time_machine.travel(timezone.now() - timedelta(days=91), tick=False):
        older = vote_path(ada, paper, LESS)
    response = client.post(older)
    assert response.status_code == 400 and "it has expired" in response.content.decode()
    assert Feedback.objects.get().vote == MORE


@pytest.mark.django_db
@pytest.mark.parametrize("verb", ["unsubscribe", "suppress"])
def test_an_unsubscribed_or_suppressed_subscriber_does_not_vote(
    client: Client, ada: Subscriber, paper: Paper, verb: str
) -> None:
    path = vote_path(ada, paper, MORE)
    if verb == "unsubscribe":
        ada.unsubscribe()
    else:
        ada.suppress("the mailbox does not exist")
    for method in (client.get, client.post):
        response = method(path)
        assert response.status_code == 400
        assert "no longer subscribed" in response.content.decode()
    assert not Feedback.objects.exists()


@pytest.mark.django_db
def test_an_erased_subscriber_leaves_a_dead_link(
    client: Client, ada: Subscriber, paper: Paper
) -> None:
    path = vote_path(ada, paper, MORE)
    ada.erase()
    assert client.post(path).status_code == 400
    assert not Feedback.objects.exists()


@pytest.mark.django_db
def test_a_paper_gone_or_hidden_records_nothing(
    client: Client, ada: Subscriber, paper: Paper
) -> None:
    hidden = add_paper("Spam paper", "x", hidden_at=timezone.now(), hidden_reason="spam")
    gone = vote_path(ada, paper, MORE)
    paper.delete()
    for path in (gone, vote_path(ada, hidden, MORE)):
        response = client.post(path)
        assert response.status_code == 400
        assert "no longer available" in response.content.decode()
    assert not Feedback.objects.exists()


@pytest.mark.django_db
def test_markup_in_a_paper_is_text_on_the_vote_page(client: Client, ada: Subscriber) -> None:
    evil = add_paper(
        'Robots <script>alert(1)</script> "quoted" & <b>bold</b>',
        "An <img src=x onerror=alert(1)> abstract.",
        authors=["Eve <i>Evil</i>"],
    )
    html = client.get(vote_path(ada, evil, MORE)).content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html and "<i>Evil" not in html
    assert "Robots &lt;script&gt;alert(1)&lt;/script&gt; &quot;quoted&quot; &amp; &lt;b&gt;" in html
    assert "Eve &lt;i&gt;Evil&lt;/i&gt;" in html


@pytest.mark.django_db
def test_the_vote_needs_the_pages_csrf_token(ada: Subscriber, paper: Paper) -> None:
    client = Client(enforce_csrf_checks=True)
    path = vote_path(ada, paper, MORE)
    # A cross-site form posting to the link (no token, no cookie) is refused.
    assert client.post(path).status_code == 403
    assert not Feedback.objects.exists()
    page = client.get(path)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
    assert client.post(path, {"csrfmiddlewaretoken": token}).status_code == 302
    assert Feedback.objects.get().vote == MORE


def test_links_made_in_bulk_are_those_of_djangos_signer(settings) -> None:  # type: ignore[no-untyped-def]
    subscriber_uuid = uuid.uuid4()
    with time_machine.travel("2026-11-30 12:00:00Z", tick=False):
        links = feedback_links(subscriber_uuid)
        for paper_id in (1, 42, 10**12):
            assert links(paper_id) == (
                feedback_url(subscriber_uuid, paper_id, MORE),
                feedback_url(subscriber_uuid, paper_id, LESS),
            )
            for link, vote in zip(links(paper_id), (MORE, LESS), strict=True):
                token = link.removeprefix("https://papers.example.org/vote/").removesuffix("/")
                assert read_feedback_token(token) == (subscriber_uuid, paper_id, vote)
    # Another secret makes other links, which this site refuses.
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    with time_machine.travel("2026-11-30 12:00:00Z", tick=False):
        other = feedback_links(subscriber_uuid)(42)[0]
    settings.SECRET_KEY = settings.SECRET_KEY.replace("another", "the-first")
    with pytest.raises(signing.BadSignature):
        read_feedback_token(
            other.removeprefix("https://papers.example.org/vote/").removesuffix("/")
        )


# --- the links in what is sent -------------------------------------------------------------


def vote_links(text: str) -> list[str]:
    return re.findall(r"https://papers\.example\.org/vote/[^\s\"<>]+", text)


@pytest.mark.django_db
def test_every_paper_of_a_digest_carries_its_own_links(
    client: Client, ada: Subscriber, outbox: Path
) -> None:
    papers = [add_paper(f"Diffusion paper {n}", "diffusion", upvotes=n) for n in range(3)]
    bob = make_subscriber("bob@example.org", ["diffusion"])
    deliver([ada.pk, bob.pk])
    messages = {m["To"]: m for m in sent(outbox, "digest")}
    seen: dict[str, set[str]] = {}
    for address, message in messages.items():
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        links = vote_links(text)
        assert len(links) == 6 and set(links) == set(vote_links(html))
        assert all(f'href="{link}"' in html for link in links)
        assert html.count(">More like this</a>") == html.count(">Less like this</a>") == 3
        seen[address] = set(links)
    assert not seen["ada@example.org"] & seen["bob@example.org"]
    # Ada's links name Ada, each paper, each vote.
    named = {
        read_feedback_token(link.rstrip("/").rsplit("/", 1)[1]) for link in seen["ada@example.org"]
    }
    assert named == {(ada.uuid, p.pk, v) for p in papers for v in (MORE, LESS)}


@pytest.mark.django_db
def test_the_web_copy_and_the_feed_carry_the_links_too(
    client: Client, ada: Subscriber, outbox: Path
) -> None:
    paper = add_paper("Diffusion for video", "diffusion", upvotes=3)
    deliver([ada.pk])
    digest = Digest.objects.get(subscriber=ada)
    web = client.get(path_of(digest_web_url(digest))).content.decode()
    links = vote_links(web)
    assert len(links) == 2 and "ada@example.org" not in web
    assert client.post(path_of(links[0].replace("&amp;", "&"))).status_code == 302
    assert Feedback.objects.get().paper_id == paper.pk
    ada.reset_feed_secret()
    feed = client.get(f"/feed/{ada.feed_secret}/").content.decode()
    assert len(vote_links(feed)) == 2


@pytest.mark.django_db
def test_a_moderators_preview_has_no_vote_links(admin_client: Client, ada: Subscriber) -> None:
    add_paper("Diffusion for video", "diffusion", upvotes=3)
    page = admin_client.get(f"/admin/subscriptions/subscriber/{ada.pk}/preview/")
    assert page.status_code == 200 and "Diffusion for video" in page.content.decode()
    assert not vote_links(page.content.decode())


# --- the settings page ---------------------------------------------------------------------


@pytest.mark.django_db
def test_the_settings_page_lists_votes_and_undoes_one(
    client: Client, ada: Subscriber, paper: Paper
) -> None:
    other = add_paper("Mamba <i>fast</i>", "ssm", upvotes=1)
    client.post(vote_path(ada, paper, MORE))
    client.post(vote_path(ada, other, LESS))
    sign_in(client, ada)
    html = client.get("/manage/").content.decode()
    section = html.split('id="likes"')[1].split("</section>")[0]
    assert section.index("Mamba &lt;i&gt;fast&lt;/i&gt;") < section.index("Diffusion for video")
    assert "Less like this" in section and "More like this" in section
    row = Feedback.objects.get(paper=other)
    response = client.post(f"/manage/likes/{row.pk}/undo/")
    assert response.status_code == 302 and response["Location"] == "/manage/#likes"
    assert list(ada.feedback.values_list("paper_id", flat=True)) == [paper.pk]
    # Another subscriber's vote cannot be undone from here.
    bob = make_subscriber("bob@example.org", ["x"])
    bobs = Feedback.objects.create(subscriber=bob, paper=paper, vote=MORE)
    assert client.post(f"/manage/likes/{bobs.pk}/undo/").status_code == 404
    assert Feedback.objects.filter(pk=bobs.pk).exists()


@pytest.mark.django_db
def test_recent_papers_are_listed_searched_and_picked(client: Client, ada: Subscriber) -> None:
    recent = add_paper("Vision transformers at scale", "vit", upvotes=5)
    add_paper("Mamba for audio", "ssm", upvotes=50)
    old = add_paper("Ancient vision paper", "old", upvotes=99)
    Paper.objects.filter(pk=old.pk).update(first_seen_at=timezone.now() - timedelta(days=30))
    sign_in(client, ada)
    section = client.get("/manage/").content.decode().split('id="likes"')[1]
    assert section.index("Mamba for audio") < section.index("Vision transformers at scale")
    assert "Ancient vision paper" not in section
    found = (
        client.get("/manage/", {"papers": "VISION scale"}).content.decode().split('id="likes"')[1]
    )
    assert "Vision transformers at scale" in found and "Mamba for audio" not in found
    nothing = client.get("/manage/", {"papers": "zebra"}).content.decode()
    assert "has “zebra” in its title" in nothing
    response = client.post("/manage/likes/", {"paper": str(recent.pk)})
    assert response.status_code == 302
    row = Feedback.objects.get()
    assert (row.paper_id, row.vote, row.source) == (recent.pk, MORE, "picked")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "pasted",
    [
        "2503.01234",
        "2503.01234v3",
        "arXiv:2503.01234",
        " https://arxiv.org/abs/2503.01234v2 ",
        "http://arxiv.org/pdf/2503.01234v1.pdf",
        "arxiv.org/pdf/2503.01234",
        "https://www.arxiv.org/html/2503.01234v2#S3",
        "https://export.arxiv.org/abs/2503.01234?context=cs",
        "https://huggingface.co/papers/2503.01234",
        "huggingface.co/papers/2503.01234/community",
        "<https://hf.co/papers/2503.01234>",
    ],
)
def test_a_pasted_arxiv_id_or_link_adds_the_paper(
    client: Client, ada: Subscriber, paper: Paper, pasted: str
) -> None:
    sign_in(client, ada)
    response = client.post("/manage/likes/", {"reference": pasted})
    assert response.status_code == 302, response.content.decode()[:500]
    assert Feedback.objects.values_list("paper_id", "vote", "source").get() == (
        paper.pk,
        MORE,
        "picked",
    )


def test_old_style_ids_and_other_sites() -> None:
    assert arxiv_id_of("hep-th/9901001v2") == "hep-th/9901001"
    assert arxiv_id_of("https://arxiv.org/abs/math.GT/0309136") == "math.GT/0309136"
    assert arxiv_id_of("https://example.org/abs/2503.01234") is None
    assert arxiv_id_of("https://evil.example/?u=arxiv.org/abs/2503.01234") is None
    assert arxiv_id_of("not a paper") is None
    assert arxiv_id_of("2503.1234567") is None
    assert arxiv_id_of("x" * 600) is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("pasted", "says"),
    [
        ("2599.99999", "We have no paper arXiv:2599.99999 yet"),
        ("https://example.org/paper/2503.01234", "That is not an arXiv id"),
        ("", "Paste an arXiv id or a link"),
    ],
)
def test_an_unknown_or_unreadable_reference_is_a_clear_error_keeping_the_text(
    client: Client, ada: Subscriber, paper: Paper, pasted: str, says: str
) -> None:
    sign_in(client, ada)
    response = client.post("/manage/likes/", {"reference": pasted})
    assert response.status_code == 400
    html = response.content.decode()
    assert says in html
    if pasted:
        assert f'value="{pasted}"' in html  # nothing lost
    assert not Feedback.objects.exists()
    # A hidden paper cannot be picked by id either, nor a made-up id.
    hidden = add_paper("Hidden", "x", hidden_at=timezone.now())
    response = client.post("/manage/likes/", {"paper": str(hidden.pk)})
    assert response.status_code == 400 and "no longer available" in response.content.decode()
    response = client.post("/manage/likes/", {"paper": "1 OR 1=1"})
    assert response.status_code == 400 and "not a paper of the list" in response.content.decode()
    assert not Feedback.objects.exists()


@pytest.mark.django_db
def test_suggestions_are_chosen_from_0_to_10(client: Client, ada: Subscriber) -> None:
    sign_in(client, ada)
    assert 'name="suggestions" value="3"' in client.get("/manage/").content.decode()
    for value in ("0", str(MAX_SUGGESTIONS)):
        assert client.post("/manage/suggestions/", {"suggestions": value}).status_code == 302
        ada.refresh_from_db()
        assert ada.suggestions == int(value)
    for bad in ("11", "-1", "three", ""):
        response = client.post("/manage/suggestions/", {"suggestions": bad})
        assert response.status_code == 400, bad
        assert 'class="error"' in response.content.decode()
    ada.refresh_from_db()
    assert ada.suggestions == MAX_SUGGESTIONS


@pytest.mark.django_db
def test_settings_forms_of_this_section_need_a_session_and_a_csrf_token(
    ada: Subscriber, paper: Paper
) -> None:
    row = Feedback.objects.create(subscriber=ada, paper=paper, vote=MORE)
    anonymous = Client()
    for url in ("/manage/likes/", f"/manage/likes/{row.pk}/undo/", "/manage/suggestions/"):
        assert anonymous.post(url, {"reference": "2503.01234"})["Location"] == "/link/"
    client = Client(enforce_csrf_checks=True)
    from subscriptions.tokens import manage_url

    page = client.get(path_of(manage_url(ada.uuid)))
    token = page.cookies["csrftoken"].value
    client.post(path_of(manage_url(ada.uuid)), {"csrfmiddlewaretoken": token})
    for url in ("/manage/likes/", f"/manage/likes/{row.pk}/undo/", "/manage/suggestions/"):
        assert client.post(url, {"reference": "2503.01234", "suggestions": "0"}).status_code == 403
    ada.refresh_from_db()
    assert ada.suggestions == 3 and Feedback.objects.filter(pk=row.pk).exists()


# --- privacy --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_votes_are_in_download_my_data(client: Client, ada: Subscriber, paper: Paper) -> None:
    picked = add_paper("Mamba", "ssm", arxiv_id="2312.00752")
    client.post(vote_path(ada, paper, LESS))
    Feedback.objects.create(subscriber=ada, paper=picked, vote=MORE, source="picked")
    sign_in(client, ada)
    data = json.loads(client.get("/manage/data.json").content)
    assert data["suggestions"] == 3
    assert [(v["paper"], v["arxiv_id"], v["vote"], v["source"]) for v in data["votes"]] == [
        ("Diffusion for video", "2503.01234", "less", "email"),
        ("Mamba", "2312.00752", "more", "picked"),
    ]
    assert data["votes"][0]["url"] == "https://huggingface.co/papers/2503.01234"
    assert all(v["created_at"] and v["updated_at"] for v in data["votes"])


@pytest.mark.django_db
def test_delete_me_deletes_the_votes(client: Client, ada: Subscriber, paper: Paper) -> None:
    bob = make_subscriber("bob@example.org", ["x"])
    client.post(vote_path(ada, paper, MORE))
    Feedback.objects.create(subscriber=bob, paper=paper, vote=LESS)
    sign_in(client, ada)
    assert client.post("/manage/delete/").status_code == 200
    assert not Subscriber.objects.filter(pk=ada.pk).exists()
    assert list(Feedback.objects.values_list("subscriber_id", flat=True)) == [bob.pk]
    assert Paper.objects.filter(pk=paper.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_votes_arriving_at_once_leave_one_row_with_one_of_them() -> None:
    # Eight requests at once on PostgreSQL (both links pressed in several tabs): each in
    # its own connection, all released together. The unique (subscriber, paper) pair
    # and update_or_create's retry leave one row, and no request fails.
    from subscriptions.feedback import record_vote

    ada = make_subscriber("ada@example.org", ["diffusion"])
    paper = add_paper("Diffusion for video", "x")
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def vote(value: int) -> None:
        try:
            barrier.wait(timeout=10)
            record_vote(ada, paper, value)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=vote, args=(MORE if n % 2 else LESS,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    [row] = Feedback.objects.all()
    assert row.vote in (MORE, LESS) and row.updated_at >= row.created_at
