"""A digest's "view in browser" page and each subscriber's private Atom feed."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest
import time_machine
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.models import Digest
from subscriptions.models import Subscriber
from subscriptions.tokens import digest_web_url, manage_url

from .conftest import make_subscriber
from .test_signup import add_paper, path_of

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture(autouse=True)
def _empty_throttles() -> None:
    cache.clear()


def sent_digest(email: str = "ada@example.org") -> Digest:
    add_paper("<i>Diffusion</i> & video", "diffusion models", upvotes=9)
    ada = make_subscriber(email, ["diffusion"])
    [result] = deliver([ada.pk])
    assert result.status == "sent"
    return Digest.objects.get(pk=result.digest_id)


def _unsigned_votes(html: str) -> str:
    return re.sub(r'(/vote/[^:"]+):[^/"]+/', r"\1:signed/", html)


@pytest.mark.django_db
def test_a_sent_digest_opens_in_the_browser_as_its_email(client: Client, outbox: Path) -> None:
    digest = sent_digest()
    url = digest_web_url(digest)
    assert url.startswith("https://papers.example.org/d/")
    response = client.get(path_of(url))
    assert response.status_code == 200
    html = response.content.decode()
    sent = (outbox / f"digest-{digest.pk}.html").read_text()
    # The email as sent, but for the links that act for the subscriber: whoever holds
    # this address gets the "email me my link" page, not a sign-in or an unsubscribe.
    ask = "https://papers.example.org/link/?from=browser&amp;for="
    [settings_link] = set(re.findall(r'href="(https://[^"]+/manage/link/[^"]+)"', sent))
    [unsubscribe_link] = set(re.findall(r'href="(https://[^"]+/unsubscribe/[^"]+)"', sent))
    public = sent.replace(settings_link, ask + "settings")
    public = public.replace(unsubscribe_link, ask + "unsubscribe")
    # Nor the recipient's address.
    assert "ada@example.org" in sent
    public = public.replace("ada@example.org", "the recipient")
    # Vote links are signed with the time, to the second, when each page is written:
    # compare them without their timestamp and signature.
    assert _unsigned_votes(html) == _unsigned_votes(public)
    assert html.count("/vote/") == public.count("/vote/") > 0
    assert "/manage/link/" not in html and "/unsubscribe/" not in html
    assert "ada@example.org" not in html
    assert "<i>Diffusion" not in html
    # The email's inline styles are allowed there; scripts and forms are not.
    policy = response.headers["Content-Security-Policy"]
    assert "style-src 'unsafe-inline'" in policy and "default-src 'none'" in policy
    assert "script-src" not in policy
    assert response.headers["X-Robots-Tag"] == "noindex"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("wanted", "heading", "could"),
    [
        ("unsubscribe", "Unsubscribe: get your link first", "unsubscribe you"),
        ("settings", "Get a link to your settings", "change your settings"),
        ("<script>", "Get a link to your settings", "change your settings"),
    ],
)
def test_the_browser_copys_links_say_why_they_ask_for_the_address(
    client: Client, outbox: Path, wanted: str, heading: str, could: str
) -> None:
    digest = sent_digest()
    html = client.get(path_of(digest_web_url(digest))).content.decode()
    for link in ("unsubscribe", "settings"):
        assert f'href="https://papers.example.org/link/?from=browser&amp;for={link}"' in html
    page = client.get("/link/", {"from": "browser", "for": wanted}).content.decode()
    assert f"<h1>{heading}</h1>" in page
    assert "Why we ask for your address here" in page and f"could {could}" in page
    # Only the known values choose the wording; nothing of the query is shown.
    assert "&lt;script&gt;" not in page and "<script>" not in page
    # The form still works from there, and says nothing of whether the address is known.
    response = client.post("/link/?from=browser&for=unsubscribe", {"email": "ada@example.org"})
    assert response.status_code == 302 and response["Location"] == "/link/sent/"
    # Without the browser copy, no such paragraph.
    assert "Why we ask" not in client.get("/link/").content.decode()


@pytest.mark.django_db
def test_a_tampered_digest_link_is_refused_and_unsent_digests_are_not_shown(
    client: Client,
) -> None:
    digest = sent_digest()
    path = path_of(digest_web_url(digest))
    token = path.split("/")[2]
    assert client.get(f"/d/{token[:-2]}xx/").status_code == 400
    # Another digest id with this digest's signature.
    assert client.get(f"/d/{digest.pk + 1}:{token.split(':', 1)[1]}/").status_code == 400
    Digest.objects.filter(pk=digest.pk).update(status=Digest.PENDING)
    assert client.get(path).status_code == 404


@pytest.mark.django_db
def test_the_browser_copy_stops_working_after_unsubscribing_or_its_max_age(
    client: Client, settings
) -> None:  # type: ignore[no-untyped-def]
    digest = sent_digest()
    path = path_of(digest_web_url(digest))
    assert client.get(path).status_code == 200
    settings.DIGEST_WEB_MAX_AGE = 3600
    with time_machine.travel(timezone.now() + timedelta(seconds=3601)):
        assert client.get(path).status_code == 404
    digest.subscriber.unsubscribe()
    assert client.get(path).status_code == 404


def feed_url_of(client: Client, subscriber: Subscriber) -> str:
    """Sign in, make the feed address from the settings page and read it back there."""
    assert client.post(path_of(manage_url(subscriber.uuid))).status_code == 302
    assert client.post("/manage/feed/")["Location"] == "/manage/#feed"
    subscriber.refresh_from_db()
    url = f"https://papers.example.org/feed/{subscriber.feed_secret}/"
    assert f'value="{url}"'.encode() in client.get("/manage/").content
    return url


@pytest.mark.django_db
def test_the_private_feed_has_one_entry_per_paper_with_why_and_links(client: Client) -> None:
    add_paper(
        "Video <b>diffusion</b>",
        "diffusion video",
        upvotes=3,
        arxiv_id="2503.00001",
        authors=["Ada <Lovelace>", "Alan Turing"],
        github_repo="https://github.com/lab/repo",
    )
    digest = sent_digest()
    url = feed_url_of(client, digest.subscriber)
    response = Client().get(path_of(url))  # a feed reader: no session
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    feed = ElementTree.fromstring(response.content)
    entries = feed.findall(f"{ATOM}entry")
    # The digest's papers in its order, each an entry of its own; XML text, not markup.
    assert [e.find(f"{ATOM}title").text for e in entries] == [
        "<i>Diffusion</i> & video",
        "Video <b>diffusion</b>",
    ]
    first, second = entries
    assert first.find(f"{ATOM}link").get("href").startswith("https://huggingface.co/papers?q=")
    assert second.find(f"{ATOM}link").get("href") == "https://huggingface.co/papers/2503.00001"
    assert second.find(f"{ATOM}author/{ATOM}name").text == "Ada <Lovelace>, Alan Turing"
    summary = second.find(f"{ATOM}summary").text
    # The entry's HTML is escaped once for HTML, then for XML.
    assert "Ada &lt;Lovelace&gt;, Alan Turing" in summary
    assert '<strong>Why:</strong> matched your filter "diffusion"' in summary.replace("&quot;", '"')
    assert '<a href="https://arxiv.org/abs/2503.00001">arXiv</a>' in summary
    assert '<a href="https://github.com/lab/repo">Code</a>' in summary
    assert f'<a href="{digest_web_url(digest)}">' in summary
    # Ids stay the same on every read: a reader shows each paper once.
    ids = [e.find(f"{ATOM}id").text for e in entries]
    again = ElementTree.fromstring(Client().get(path_of(url)).content)
    assert [e.find(f"{ATOM}id").text for e in again.findall(f"{ATOM}entry")] == ids
    assert len(set(ids)) == 2 and all(i.startswith(digest_web_url(digest)) for i in ids)


@pytest.mark.django_db
def test_resetting_the_feed_address_retires_the_old_one(client: Client) -> None:
    digest = sent_digest()
    old = feed_url_of(client, digest.subscriber)
    client.post("/manage/feed/")
    digest.subscriber.refresh_from_db()
    new = f"/feed/{digest.subscriber.feed_secret}/"
    assert new != path_of(old)
    assert client.get(path_of(old)).status_code == 404
    assert client.get(new).status_code == 200


@pytest.mark.django_db
def test_there_is_no_feed_without_a_secret(client: Client) -> None:
    make_subscriber("ada@example.org", ["mamba"])
    assert client.get("/feed/anything/").status_code == 404
