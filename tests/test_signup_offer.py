"""Signing up again with a subscribed address: the new choices are offered in the
settings-link email, behind a signed link and one button press, instead of dropped."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.test import Client

from digest.models import Topic
from subscriptions.models import Subscriber
from subscriptions.signup import sign_up
from subscriptions.tokens import offer_url

from .conftest import make_subscriber
from .test_signup import link_in, path_of, sent, signup_data


@pytest.fixture(autouse=True)
def _empty_throttles() -> None:
    cache.clear()


@pytest.fixture
def grace() -> Subscriber:
    return make_subscriber("grace@example.org", ["mamba", "state space"])


def queries(subscriber: Subscriber) -> list[str]:
    return list(subscriber.filters.order_by("pk").values_list("query", flat=True))


def offered(client: Client, outbox: Path, **choices: object) -> str:
    """Sign grace up again through the form; the offer link's path from her email."""
    response = client.post("/", signup_data("Grace@Example.org", **choices))
    assert response.status_code == 302 and response["Location"] == "/check-your-inbox/"
    return path_of(link_in(sent(outbox, "manage-link")[-1], "/manage/offer/"))


@pytest.mark.django_db
def test_the_new_choices_are_offered_in_the_settings_link_email(
    client: Client, outbox: Path, grace: Subscriber
) -> None:
    topic = Topic.objects.create(name="Robotics <b>", slug="robotics", query="robot")
    offered(client, outbox, topics=[topic.pk])
    [message] = sent(outbox, "manage-link")
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "signed up again with other choices" in text
    assert "Filters:  diffusion | vision transformer" in text
    assert "Schedule: Weekly, on Mondays at 08:00 (Europe/Paris)" in text
    assert "Robotics &lt;b&gt;" in html and "Robotics <b>" not in html
    assert "https://papers.example.org/help/filters/" in text
    # Nothing changed yet.
    grace.refresh_from_db()
    assert queries(grace) == ["mamba", "state space"]
    assert (grace.frequency, grace.timezone) == ("daily", "UTC")


@pytest.mark.django_db
def test_one_press_replaces_the_choices_and_signs_the_browser_in(
    client: Client, outbox: Path, grace: Subscriber
) -> None:
    path = offered(client, outbox)
    browser = Client()
    page = browser.get(path)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Use the new choices?" in html and "<code>mamba</code>" in html
    assert "<code>vision transformer</code>" in html
    grace.refresh_from_db()
    assert queries(grace) == ["mamba", "state space"]  # a GET changes nothing

    response = browser.post(path, {"how": "replace"})
    assert response.status_code == 302 and response["Location"] == "/manage/#filters"
    grace.refresh_from_db()
    assert queries(grace) == ["diffusion", "vision transformer"]
    assert (grace.frequency, grace.timezone) == ("weekly", "Europe/Paris")
    # The next digest moved to the new schedule: a Monday, 08:00 in Paris.
    local = grace.next_digest_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.weekday(), local.hour) == (0, 8)
    assert grace.offered_signup is None
    assert "are now the new ones" in browser.get("/manage/").content.decode()
    # Once.
    again = browser.post(path, {"how": "replace"})
    assert again.status_code == 400 and "already applied, or replaced" in again.content.decode()


@pytest.mark.django_db
def test_adding_keeps_the_current_filters_and_schedule(
    client: Client, outbox: Path, grace: Subscriber
) -> None:
    path = offered(client, outbox, filters="state space\ndiffusion")
    assert Client().post(path, {"how": "add"}).status_code == 302
    grace.refresh_from_db()
    assert queries(grace) == ["mamba", "state space", "diffusion"]
    assert (grace.frequency, grace.timezone) == ("daily", "UTC")


@pytest.mark.django_db
def test_only_the_latest_offer_and_only_until_signing_out_everywhere(
    client: Client, outbox: Path, grace: Subscriber
) -> None:
    first = offered(client, outbox, filters="diffusion")
    second = offered(client, outbox, filters="robotics")
    response = Client().post(first, {"how": "replace"})
    assert (
        response.status_code == 400 and "already applied, or replaced" in response.content.decode()
    )
    grace.refresh_from_db()
    assert queries(grace) == ["mamba", "state space"]
    grace.sign_out_everywhere()
    response = Client().post(second, {"how": "replace"})
    assert response.status_code == 400 and "no longer works" in response.content.decode()
    assert queries(grace) == ["mamba", "state space"]


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["", "everything", "<script>"])
def test_a_tampered_link_or_choice_changes_nothing(
    client: Client, outbox: Path, grace: Subscriber, how: str
) -> None:
    path = offered(client, outbox)
    token = path.split("/")[3]
    assert Client().get(f"/manage/offer/{token[:-3]}abc/").status_code == 400
    # The same signature on another value, and a manage link's token here, are refused.
    assert Client().get(f"/manage/offer/x{token}/").status_code == 400
    manage_token = path_of(link_in(sent(outbox, "manage-link")[-1], "/manage/link/")).split("/")[3]
    assert Client().post(f"/manage/offer/{manage_token}/", {"how": "replace"}).status_code == 400
    response = Client().post(path, {"how": how})
    assert response.status_code == 400 and b"<script>" not in response.content
    grace.refresh_from_db()
    assert queries(grace) == ["mamba", "state space"] and grace.offered_signup is not None


@pytest.mark.django_db
def test_the_same_choices_again_send_the_plain_link(grace: Subscriber, outbox: Path) -> None:
    data = {
        "email": "grace@example.org",
        "frequency": "daily",
        "timezone": "UTC",
        "filters": ["mamba", "state space"],
        "topics": [],
    }
    assert sign_up(data) == "manage-link"
    text = sent(outbox, "manage-link")[-1].get_body(("plain",)).get_content()
    assert "/manage/offer/" not in text and "signed up again" not in text
    assert sign_up({**data, "filters": ["mamba"]}) == "manage-link-offer"
    grace.refresh_from_db()
    assert offer_url(grace).startswith("https://papers.example.org/manage/offer/")


@pytest.mark.django_db
def test_a_deleted_topic_in_an_offer_is_left_out(
    client: Client, outbox: Path, grace: Subscriber
) -> None:
    topic = Topic.objects.create(name="Robotics", slug="robotics", query="robot")
    path = offered(client, outbox, topics=[topic.pk])
    topic.delete()
    assert Client().post(path, {"how": "replace"}).status_code == 302
    grace.refresh_from_db()
    assert list(grace.topics.all()) == []
    assert queries(grace) == ["diffusion", "vision transformer"]
