"""The settings page reached by a single-use magic link, and everything on it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.matching.query import MAX_FILTERS
from digest.models import Digest, Topic
from subscriptions.models import ErasureCount, Filter, Subscriber
from subscriptions.tokens import MANAGE, make_link_token, make_token, manage_url

from .conftest import make_subscriber
from .test_signup import add_paper, link_in, path_of, sent


@pytest.fixture(autouse=True)
def _empty_throttles() -> None:
    cache.clear()


def sign_in(client: Client, subscriber: Subscriber) -> None:
    """Use a fresh manage link, as a subscriber clicking it in a digest does."""
    response = client.post(path_of(manage_url(subscriber.uuid)))
    assert response.status_code == 302 and response["Location"] == "/manage/"


@pytest.fixture
def ada(client: Client) -> Subscriber:
    ada = make_subscriber("ada@example.org", ["diffusion", "mamba"])
    sign_in(client, ada)
    return ada


# --- the magic link --------------------------------------------------------------------


@pytest.mark.django_db
def test_manage_url_is_an_absolute_link_to_a_button_page(client: Client) -> None:
    grace = make_subscriber("grace@example.org", ["mamba"])
    url = manage_url(grace.uuid)
    assert url.startswith("https://papers.example.org/manage/link/")
    response = client.get(path_of(url))
    assert response.status_code == 200 and b"Open my settings" in response.content
    # A GET (a mail scanner) spends nothing and signs nobody in.
    assert Subscriber.objects.get(pk=grace.pk).link_counter == 0
    assert client.get("/manage/")["Location"] == "/link/"


@pytest.mark.django_db
def test_a_settings_link_keeps_working_for_its_lifetime_in_any_browser(client: Client) -> None:
    grace = make_subscriber("grace@example.org", ["mamba"])
    path = path_of(manage_url(grace.uuid))
    assert client.post(path)["Location"] == "/manage/"
    assert client.get("/manage/").status_code == 200
    # Last week's link works again, in another browser too.
    other = Client()
    assert other.post(path)["Location"] == "/manage/"
    assert other.get("/manage/").status_code == 200
    assert client.get("/manage/").status_code == 200
    # A browser already signed in as that subscriber goes straight to the settings.
    assert client.get(path)["Location"] == "/manage/"


@pytest.mark.django_db
def test_signing_out_of_every_browser_voids_sessions_and_links(client: Client) -> None:
    grace = make_subscriber("grace@example.org", ["mamba"])
    old_link = path_of(manage_url(grace.uuid))
    other = Client()
    assert client.post(old_link).status_code == 302 and other.post(old_link).status_code == 302
    response = client.post("/manage/sign-out-everywhere/")
    assert response["Location"] == "/link/"
    assert client.get("/manage/")["Location"] == "/link/"
    assert other.get("/manage/")["Location"] == "/link/"
    refused = Client().post(old_link)
    assert refused.status_code == 400 and b"signed out of every browser" in refused.content
    # A link sent afterwards works.
    assert Client().post(path_of(manage_url(grace.uuid))).status_code == 302


@pytest.mark.django_db
def test_an_expired_or_tampered_manage_link_is_refused(client: Client) -> None:
    grace = make_subscriber("grace@example.org", ["mamba"])
    path = path_of(manage_url(grace.uuid))
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        response = client.post(path)
    assert response.status_code == 400 and b"it has expired" in response.content
    token = path.split("/")[3]
    for bad in (
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        make_token(grace.uuid, MANAGE),  # no counter
        make_link_token(grace.uuid, 0, "subscriptions.confirm"),  # another purpose
    ):
        assert client.post(f"/manage/link/{bad}/").status_code == 400
    assert client.get("/manage/")["Location"] == "/link/"


@pytest.mark.django_db
def test_a_link_from_the_link_email_opens_the_settings(client: Client, outbox: Path) -> None:
    make_subscriber("grace@example.org", ["mamba"])
    client.post("/link/", {"email": "grace@example.org"})
    [message] = sent(outbox, "manage-link")
    path = path_of(link_in(message, "/manage/link/"))
    assert client.post(path)["Location"] == "/manage/"
    assert b"grace@example.org" in client.get("/manage/").content


@pytest.mark.django_db
def test_every_settings_action_needs_a_session(client: Client) -> None:
    make_subscriber("grace@example.org", ["mamba"])
    for url in ("/manage/", "/manage/data.json", "/manage/delete/"):
        assert client.get(url)["Location"] == "/link/"
    for url in ("/manage/filters/", "/manage/pause/", "/manage/schedule/", "/manage/delete/"):
        assert client.post(url)["Location"] == "/link/"
    assert Subscriber.objects.get().state == "active"


@pytest.mark.django_db
def test_settings_forms_without_a_csrf_token_are_forbidden() -> None:
    grace = make_subscriber("grace@example.org", ["mamba"])
    client = Client(enforce_csrf_checks=True)
    page = client.get(path_of(manage_url(grace.uuid)))
    token = page.cookies["csrftoken"].value
    response = client.post(path_of(manage_url(grace.uuid)), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302  # signed in with the token
    for url, data in [
        ("/manage/filters/", {"new-query": "robots"}),
        ("/manage/pause/", {}),
        ("/manage/unsubscribe/", {}),
        ("/manage/delete/", {}),
        ("/manage/schedule/", {"frequency": "weekly"}),
        ("/manage/sign-out/", {}),
    ]:
        assert client.post(url, data).status_code == 403, url
    grace.refresh_from_db()
    assert grace.state == "active" and grace.filters.count() == 1


# --- filters ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_lists_filters_escaped_with_the_csp_header(client: Client) -> None:
    grace = make_subscriber("grace@example.org", ["<b>bold</b> mamba"])
    sign_in(client, grace)
    response = client.get("/manage/")
    html = response.content.decode()
    assert 'value="&lt;b&gt;bold&lt;/b&gt; mamba"' in html and "<b>bold" not in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


@pytest.mark.django_db
def test_adding_a_filter(client: Client, ada: Subscriber) -> None:
    response = client.post("/manage/filters/", {"new-query": '"state space" OR ssm'})
    assert response.status_code == 302 and response["Location"] == "/manage/#filters"
    assert [f.query for f in ada.filters.all()] == ["diffusion", "mamba", '"state space" OR ssm']
    assert b"Filter added." in client.get("/manage/").content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query, message, column",
    [
        ("robots (arm", "Unclosed (", 8),
        ("vision OR", "OR needs a term on both sides", 8),
        ("-medical", "The query only excludes words", 1),
        ("ro*", "Prefix too short", 1),
        ("Diffusions", "Same as filter 1", 1),
    ],
)
def test_an_invalid_filter_shows_the_parser_error_in_place(
    client: Client, ada: Subscriber, query: str, message: str, column: int
) -> None:
    response = client.post("/manage/filters/", {"new-query": query})
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html and f"at character {column}:" in html
    assert "<mark>" in html
    assert ada.filters.count() == 2


@pytest.mark.django_db
def test_no_more_than_the_maximum_of_filters(client: Client) -> None:
    grace = make_subscriber("grace@example.org", [f"word{n}" for n in range(MAX_FILTERS)])
    sign_in(client, grace)
    response = client.post("/manage/filters/", {"new-query": "robots"})
    assert response.status_code == 400
    assert f"You already have {MAX_FILTERS} filters" in response.content.decode()
    assert grace.filters.count() == MAX_FILTERS


@pytest.mark.django_db
def test_preview_renders_recent_matches_without_saving(client: Client, ada: Subscriber) -> None:
    add_paper("Robots that fold laundry", "A robot arm.", upvotes=40)
    add_paper("Robotic <script>surgery</script>", "Robots in surgery.", upvotes=10)
    add_paper("Language models", "No match here.", upvotes=99)
    old = add_paper("Old robots", "robots", upvotes=100)
    Paper = type(old)
    Paper.objects.filter(pk=old.pk).update(last_seen_at=timezone.now() - timedelta(days=8))
    response = client.post("/manage/filters/", {"new-query": "robots", "action": "preview"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "<strong>2</strong> papers in the last 7 days matched <code>robots</code>" in html
    assert html.index("Robots that fold laundry") < html.index("Robotic &lt;script&gt;")
    # (The "papers like these" section lists every recent paper to pick from.)
    filters = html.split('id="likes"')[0]
    assert "Language models" not in filters and "Old robots" not in filters
    assert 'value="robots"' in html  # the text stays in the field
    assert ada.filters.count() == 2


@pytest.mark.django_db
def test_editing_previewing_and_removing_a_filter(client: Client, ada: Subscriber) -> None:
    first, second = ada.filters.all()
    url = f"/manage/filters/{first.pk}/"
    assert client.post(url, {f"f{first.pk}-query": "diffusion -medical"}).status_code == 302
    assert Filter.objects.get(pk=first.pk).query == "diffusion -medical"
    # Changing it into a copy of the other filter is refused, naming that filter.
    response = client.post(url, {f"f{first.pk}-query": "Mamba"})
    assert response.status_code == 400 and "Same as filter 2" in response.content.decode()
    # Keeping the same text is not a duplicate of itself.
    assert client.post(url, {f"f{first.pk}-query": "diffusion -medical"}).status_code == 302
    add_paper("Diffusion for video", "diffusion", upvotes=1)
    response = client.post(url, {f"f{first.pk}-query": "video", "action": "preview"})
    assert b"<strong>1</strong> paper in the last 7 days" in response.content
    assert Filter.objects.get(pk=first.pk).query == "diffusion -medical"
    assert client.post(url, {"action": "remove"}).status_code == 302
    assert [f.pk for f in ada.filters.all()] == [second.pk]


@pytest.mark.django_db
def test_another_subscribers_filter_cannot_be_touched(client: Client, ada: Subscriber) -> None:
    grace = make_subscriber("grace@example.org", ["mamba"])
    theirs = grace.filters.get()
    assert client.post(f"/manage/filters/{theirs.pk}/", {"action": "remove"}).status_code == 404
    assert Filter.objects.filter(pk=theirs.pk).exists()


# --- the JSON preview ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_preview_endpoint_returns_matches_or_the_error(client: Client) -> None:
    add_paper("Mamba meets vision", "state space models", upvotes=7)
    ok = client.get("/preview.json", {"q": '"state space"'}).json()
    assert ok["ok"] and ok["count"] == 1 and ok["days"] == 7
    assert ok["papers"][0]["title"] == "Mamba meets vision"
    assert ok["papers"][0]["url"].startswith("https://huggingface.co/papers")
    bad = client.get("/preview.json", {"q": "mamba AND"}).json()
    assert bad == {
        "ok": False,
        "error": {"message": "AND needs a term on both sides", "position": 6, "column": 7},
    }


@pytest.mark.django_db
def test_the_preview_endpoint_is_throttled(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.THROTTLES = {**settings.THROTTLES, "preview-ip": (2, 60)}
    assert [client.get("/preview.json", {"q": "x"}).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]


# --- topics, schedule, state -----------------------------------------------------------


@pytest.mark.django_db
def test_picking_topics(client: Client, ada: Subscriber) -> None:
    robots = Topic.objects.create(name="Robotics", slug="robotics", query="robot")
    Topic.objects.create(name="Audio", slug="audio", query="audio")
    assert b"Robotics" in client.get("/manage/").content
    assert client.post("/manage/topics/", {"topics": [robots.pk]}).status_code == 302
    assert list(ada.topics.all()) == [robots]
    assert client.post("/manage/topics/", {"topics": [99999]}).status_code == 400
    assert client.post("/manage/topics/", {}).status_code == 302
    assert not ada.topics.exists()


@pytest.mark.django_db
def test_changing_the_schedule_moves_the_next_digest(client: Client, ada: Subscriber) -> None:
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        response = client.post(
            "/manage/schedule/",
            {"frequency": "weekly", "weekday": "1", "hour": "7", "timezone": "America/New_York"},
        )
    assert response.status_code == 302
    ada.refresh_from_db()
    assert (ada.frequency, ada.weekday, ada.hour, ada.timezone) == (
        "weekly",
        1,
        7,
        "America/New_York",
    )
    assert ada.next_digest_at == ada.compute_next_digest_at(now)
    local = ada.next_digest_at.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
    assert (local.weekday(), local.hour) == (1, 7)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field, value", [("timezone", "Mars/Olympus_Mons"), ("hour", "24"), ("frequency", "hourly")]
)
def test_an_invalid_schedule_is_refused_in_place(
    client: Client, ada: Subscriber, field: str, value: str
) -> None:
    data = {"frequency": "daily", "weekday": "0", "hour": "8", "timezone": "UTC", field: value}
    response = client.post("/manage/schedule/", data)
    assert response.status_code == 400
    assert b'class="error"' in response.content
    ada.refresh_from_db()
    assert (ada.frequency, ada.hour, ada.timezone) == ("daily", 8, "UTC")


@pytest.mark.django_db
def test_pause_resume_unsubscribe_and_subscribe_again(client: Client, ada: Subscriber) -> None:
    assert client.post("/manage/pause/").status_code == 302
    ada.refresh_from_db()
    assert ada.state == "paused"
    assert deliver([ada.pk], force=True)[0].status == "skipped"
    later = timezone.now() + timedelta(days=3)
    with time_machine.travel(later, tick=False):
        client.post("/manage/resume/")
    ada.refresh_from_db()
    assert ada.state == "active" and ada.next_digest_at == ada.compute_next_digest_at(later)
    client.post("/manage/unsubscribe/")
    ada.refresh_from_db()
    assert ada.state == "unsubscribed"
    page = client.get("/manage/").content.decode()
    assert "Subscribe again" in page
    client.post("/manage/resume/")
    ada.refresh_from_db()
    assert ada.state == "active"


# --- data and deletion -----------------------------------------------------------------


@pytest.mark.django_db
def test_downloading_my_data(client: Client, ada: Subscriber, outbox: Path) -> None:
    add_paper("Diffusion for video", "diffusion", upvotes=1)
    deliver([ada.pk])
    response = client.get("/manage/data.json")
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="my-digest-data.json"'
    data = json.loads(response.content)
    assert data["email"] == "ada@example.org" and data["state"] == "active"
    assert [f["query"] for f in data["filters"]] == ["diffusion", "mamba"]
    assert data["schedule"]["timezone"] == "UTC"
    [digest] = data["digests"]
    assert digest["status"] == "sent"
    assert digest["papers"][0]["title"] == "Diffusion for video"
    assert data["digest_choices"] == {
        "max_papers": 10,
        "strong_only": False,
        "send_empty": None,
        "feed_only": False,
    }
    assert data["offered_signup"] is None


@pytest.mark.django_db
def test_delete_me_erases_everything_but_anonymous_counts(
    client: Client, ada: Subscriber, outbox: Path
) -> None:
    add_paper("Diffusion for video", "diffusion", upvotes=1)
    deliver([ada.pk])
    page = client.get("/manage/delete/")
    assert page.status_code == 200 and b"Delete me" in page.content
    assert Subscriber.objects.filter(pk=ada.pk).exists()  # a GET asks, only
    response = client.post("/manage/delete/")
    assert response.status_code == 200 and b"Your data is deleted" in response.content
    assert not Subscriber.objects.filter(email__iexact="ada@example.org").exists()
    assert not Filter.objects.filter(subscriber_id=ada.pk).exists()
    assert not Digest.objects.filter(subscriber_id=ada.pk).exists()
    [counts] = ErasureCount.objects.all()
    assert (counts.subscribers, counts.digests_sent) == (1, 1)
    assert counts.month == timezone.now().date().replace(day=1)
    assert client.get("/manage/")["Location"] == "/link/"  # the session ended


@pytest.mark.django_db
def test_signing_out(client: Client, ada: Subscriber) -> None:
    assert client.post("/manage/sign-out/")["Location"] == "/"
    assert client.get("/manage/")["Location"] == "/link/"


@pytest.mark.django_db
def test_a_row_saves_the_other_rows_sent_with_it_and_no_one_elses(client: Client, ada) -> None:  # type: ignore[no-untyped-def]
    grace = make_subscriber("grace@example.org", ["transformer"])
    first, second = ada.filters.order_by("id")
    foreign = grace.filters.get()
    response = client.post(
        f"/manage/filters/{first.pk}/",
        {
            "action": "save",
            f"f{first.pk}-query": "video diffusion",
            f"f{second.pk}-query": "state space",
            f"f{foreign.pk}-query": "<script>hijacked</script>",
        },
    )
    assert response.status_code == 302
    assert list(ada.filters.order_by("id").values_list("query", flat=True)) == [
        "video diffusion",
        "state space",
    ]
    assert grace.filters.get().query == "transformer"


@pytest.mark.django_db
def test_two_rows_made_the_same_are_refused_together(client: Client, ada) -> None:  # type: ignore[no-untyped-def]
    first, second = ada.filters.order_by("id")
    response = client.post(
        f"/manage/filters/{first.pk}/",
        {"action": "save", f"f{first.pk}-query": "robots", f"f{second.pk}-query": "robots"},
    )
    assert response.status_code == 400
    assert "Same as filter" in response.content.decode()
    assert list(ada.filters.order_by("id").values_list("query", flat=True)) == [
        "diffusion",
        "mamba",
    ]
