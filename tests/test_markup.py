"""Markup in every field a stranger controls stays text on every page.

Strangers write subscribers' filters (signup and settings pages), the papers' titles,
abstracts and authors (the pages we ingest, in all three formats) and what an ESP
reports about an address; moderators write topic names and queries. Each field here
carries the payloads of a security review — a script, a ``<meta http-equiv=refresh>``
that moved a moderator's browser, a ``<button form=…>`` that borrowed the admin's own
CSRF-protected form, an attribute break-out with ``onerror`` — and every admin and
public page showing it is parsed (BeautifulSoup, as a browser builds the DOM) for an
element the payload would have added.
"""

from __future__ import annotations

import html
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
from bs4 import BeautifulSoup
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.ingest.store import ingest_source
from digest.models import DeliveryEvent, Digest, Paper, Topic
from subscriptions.models import Subscriber
from subscriptions.tokens import (
    confirm_url,
    digest_web_url,
    feedback_url,
    manage_url,
    unsubscribe_url,
)

from .conftest import make_subscriber

MARK = "pwn3d"
PAYLOADS = [
    f"<script>window.{MARK}=1</script>",
    f"<meta http-equiv=refresh content=0;url=https://{MARK}.example/>",
    f"<button form=changelist-form name=action value=delete_selected>{MARK}</button>",
    f'"><img src=x onerror="window.{MARK}=1">',
    f"'><svg onload=window.{MARK}=1>",
]
ALL = " ".join(PAYLOADS)


def injected(markup: str) -> list[str]:
    """The elements and attributes in ``markup``'s DOM that a payload put there."""
    soup = BeautifulSoup(markup, "html.parser")
    found = []
    for tag in soup.find_all(True):
        if tag.name == "script" and MARK in tag.get_text():
            found.append(str(tag))
        if tag.name == "meta" and str(tag.get("http-equiv", "")).lower() == "refresh":
            found.append(str(tag))
        if tag.name in {"button", "img", "svg"} and MARK in str(tag):
            found.append(str(tag))
        if any(name.lower().startswith("on") for name in tag.attrs):
            found.append(str(tag))
    return found


def assert_clean(response: Any, where: str) -> None:
    assert response.status_code == 200, (where, response.status_code)
    body = response.content.decode()
    found = injected(body)
    assert not found, (where, found)


# --- Hostile data ---------------------------------------------------------------------


def paper_items(fmt: str, n: int) -> list[dict[str, Any]]:
    today = date.today()
    return [
        {
            "id": f"2511.{90000 + n * 10 + i:05d}",
            "title": f"Diffusion {fmt} {i} {PAYLOADS[i % len(PAYLOADS)]}",
            "summary": f"Diffusion models {fmt}. {ALL} More text about diffusion.",
            "authors": [{"name": p} for p in PAYLOADS],
            "publishedAt": (today - timedelta(days=1)).isoformat(),
            "upvotes": 50 - i,
        }
        for i in range(len(PAYLOADS))
    ]


def write_pages(folder: Path) -> list[Path]:
    """One page of each format whose papers carry the payloads."""
    json_items = paper_items("json", 1)
    html_items = paper_items("html", 2)
    text_items = paper_items("text", 3)
    pages = {
        "hostile.json": json.dumps(
            [{"paper": p, "title": p["title"], "numComments": 1} for p in json_items]
        ),
        "hostile.html": (
            '<!doctype html><html><body><div data-target="DailyPapers" data-props="'
            + html.escape(
                json.dumps(
                    {
                        "date": date.today().isoformat(),
                        "dailyPapers": [{"paper": p, "title": p["title"]} for p in html_items],
                    }
                )
            )
            + '"></div></body></html>'
        ),
    }
    lines = ["new", "", "Daily Papers", "", date.today().strftime("%b %-d"), ""]
    for p in text_items:
        published = date.fromisoformat(p["publishedAt"])
        lines += [
            p["title"],
            "",
            p["summary"],
            "",
            f"  • {len(p['authors'])} authors",
            "·",
            f"{published.strftime('%b %-d, %Y')} {p['upvotes']}",
            "",
        ]
    pages["hostile.txt"] = "\n".join(lines)
    paths = []
    for name, content in pages.items():
        path = folder / name
        path.write_text(content)
        paths.append(path)
    return paths


@pytest.fixture
def hostile(tmp_path: Path, outbox: Path) -> dict[str, Any]:
    for path in write_pages(tmp_path):
        result = ingest_source(str(path))
        assert result.as_dict()["papers"] > 0, result.as_dict()
    titles = list(Paper.objects.values_list("title", flat=True))
    assert any("html" in t and "<script>" in t for t in titles), titles
    assert any("text" in t and "<meta" in t for t in titles), titles
    assert any("json" in t and "<button" in t for t in titles), titles
    topic = Topic.objects.create(
        name=f"Diffusion {PAYLOADS[3]}", slug="diffusion-hostile", query='diffusion -"<b>"'
    )
    filters = [
        f'diffusion -"{payload}"'.replace('"', "'").replace("'", '"', 1) for payload in PAYLOADS
    ]
    filters = [f[:-1] + '"' for f in filters]
    ada = make_subscriber("ada@example.org", filters)
    ada.topics.add(topic)
    # Bob's next digest is not sent yet: the admin previews it.
    bob = make_subscriber("bob@example.org", filters)
    bob.topics.add(topic)
    [result] = deliver([ada.pk], force=True)
    assert result.status == "sent", result
    digest = Digest.objects.get(pk=result.digest_id)
    DeliveryEvent.objects.create(
        esp_name="Postmark",
        event_type="bounced",
        reject_reason="bounced",
        description=ALL,
        mta_response=ALL,
        recipient=PAYLOADS[3][:200],
        digest=digest,
        subscriber=ada,
        raw={"Description": ALL},
    )
    ada.next_digest_at = timezone.now()
    ada.save(update_fields=["next_digest_at"])
    return {"ada": ada, "bob": bob, "digest": digest, "topic": topic}


def path_of(url: str) -> str:
    return urlsplit(url).path


# --- The admin --------------------------------------------------------------------------


@pytest.mark.django_db
def test_no_admin_page_runs_markup_from_strangers(admin_client: Client, hostile) -> None:  # type: ignore[no-untyped-def]
    ada, bob, digest, topic = hostile["ada"], hostile["bob"], hostile["digest"], hostile["topic"]
    paper = Paper.objects.filter(title__contains="<script>").first()
    event = DeliveryEvent.objects.get()
    flt = ada.filters.first()
    pages = {
        "index": reverse("admin:index"),
        "dashboard": reverse("admin:dashboard"),
        "subscribers": reverse("admin:subscriptions_subscriber_changelist"),
        "subscribers found": reverse("admin:subscriptions_subscriber_changelist") + "?q=ada",
        "subscriber": reverse("admin:subscriptions_subscriber_change", args=[ada.pk]),
        "next digest": reverse("admin:subscriptions_subscriber_preview", args=[bob.pk]),
        "next digest html": reverse("admin:subscriptions_subscriber_preview_html", args=[bob.pk]),
        "filters": reverse("admin:subscriptions_filter_changelist"),
        "filter": reverse("admin:subscriptions_filter_change", args=[flt.pk]),
        "papers": reverse("admin:digest_paper_changelist"),
        "papers found": reverse("admin:digest_paper_changelist") + "?q=diffusion",
        "paper": reverse("admin:digest_paper_change", args=[paper.pk]),
        "topics": reverse("admin:digest_topic_changelist"),
        "topic": reverse("admin:digest_topic_change", args=[topic.pk]),
        "digests": reverse("admin:digest_digest_changelist"),
        "digest": reverse("admin:digest_digest_change", args=[digest.pk]),
        "events": reverse("admin:digest_deliveryevent_changelist"),
        "event": reverse("admin:digest_deliveryevent_change", args=[event.pk]),
        "ingest runs": reverse("admin:digest_ingestrun_changelist"),
    }
    for where, url in pages.items():
        assert_clean(admin_client.get(url), where)
    preview = admin_client.post(
        reverse("admin:digest_topic_preview"),
        {"query": topic.query, "name": topic.name, "topic_id": str(topic.pk)},
    )
    assert_clean(preview, "topic preview")
    # The text part is on the preview page, as text.
    page = admin_client.get(pages["next digest"]).content.decode()
    text = BeautifulSoup(page, "html.parser").select_one("pre").get_text()
    assert PAYLOADS[1] in text


# --- Public pages -------------------------------------------------------------------------


def sign_in(client: Client, subscriber: Subscriber) -> None:
    session = client.session
    session["subscriptions.subscriber"] = str(subscriber.uuid)
    session.save()


@pytest.mark.django_db
def test_no_public_page_runs_markup_from_strangers(client: Client, hostile) -> None:  # type: ignore[no-untyped-def]
    ada, digest = hostile["ada"], hostile["digest"]
    for where, url in {
        "home": "/",
        "email link": "/link/",
        "digest in the browser": path_of(digest_web_url(digest)),
        "unsubscribe": path_of(unsubscribe_url(ada.uuid)),
        "confirm": path_of(confirm_url(ada.uuid)),
        "manage link": path_of(manage_url(ada.uuid)),
    }.items():
        assert_clean(client.get(url), where)

    sign_in(client, ada)
    assert_clean(client.get("/manage/"), "settings page")
    # Votes on papers with markup in their titles, abstracts and authors; a pick search
    # and a pasted reference carrying a payload.
    for paper in Paper.objects.filter(title__contains="pwn3d")[:5]:
        vote = path_of(feedback_url(ada.uuid, paper.pk, 1))
        assert_clean(client.get(vote), "vote page")
        assert client.post(vote).status_code == 302
        assert_clean(client.get(vote + "?voted=1"), "vote page, voted")
    assert ada.feedback.count() == 5
    assert_clean(client.get("/manage/"), "settings page with votes")
    assert_clean(client.get("/manage/", {"papers": PAYLOADS[0]}), "pick search")
    bad_pick = client.post("/manage/likes/", {"reference": PAYLOADS[3]})
    assert bad_pick.status_code == 400 and not injected(bad_pick.content.decode())
    flt = ada.filters.first()
    for where, url, data in [
        (
            "add preview",
            "/manage/filters/",
            {"new-query": f'diffusion -"{PAYLOADS[0]}x"', "action": "preview"},
        ),
        (
            "edit preview",
            f"/manage/filters/{flt.pk}/",
            {f"f{flt.pk}-query": f'diffusion -"{PAYLOADS[2]}y"', "action": "preview"},
        ),
    ]:
        assert_clean(client.post(url, data), where)
    bad = client.post("/manage/filters/", {"new-query": f'"{PAYLOADS[1]}', "action": "preview"})
    assert bad.status_code == 400 and not injected(bad.content.decode())
    signup = client.post(
        "/",
        {
            "email": "x@example.org",
            "filters": f'"{PAYLOADS[4]}',
            "frequency": "daily",
            "timezone": "UTC",
        },
    )
    assert signup.status_code == 400 and not injected(signup.content.decode())

    response = client.get("/preview.json", {"q": "diffusion"})
    assert response["Content-Type"] == "application/json"
    assert any("<script>" in p["title"] for p in response.json()["papers"])

    client.post("/manage/feed/")
    ada.refresh_from_db()
    feed = Client().get(f"/feed/{ada.feed_secret}/")
    assert feed.status_code == 200
    root = ElementTree.fromstring(feed.content)
    for node in root.iter():
        if node.tag.endswith(("content", "summary")) and node.text:
            assert not injected(node.text), node.text
