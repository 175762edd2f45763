"""Editions outside the schedule: the welcome digest sent on confirming, and "send me
one now" from the settings page, each exactly once and never at the cost of the
scheduled digest."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from digest.delivery.extra import TooSoon, ask_for_digest, on_request_period, send_extra
from digest.delivery.pipeline import deliver
from digest.models import Digest, DigestItem
from digest.tasks import send_extra_digest
from subscriptions.models import Subscriber

from .conftest import make_subscriber
from .test_manage import sign_in
from .test_signup import add_paper, sent, signed_up


@pytest.fixture(autouse=True)
def _empty_throttles() -> None:
    cache.clear()


def texts(message) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    return (
        message.get_body(("plain",)).get_content(),
        message.get_body(("html",)).get_content(),
    )


def confirm(client: Client, outbox: Path, capture) -> Subscriber:  # type: ignore[no-untyped-def]
    path = signed_up(client, outbox)
    with capture(execute=True):
        assert client.post(path).status_code == 302
    return Subscriber.objects.get(email="ada@example.org")


@pytest.mark.django_db
def test_confirming_sends_a_welcome_digest_of_the_last_days_at_once(
    client: Client, outbox: Path, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    now = timezone.now()
    recent = add_paper(
        "<em>Diffusion</em> models", "diffusion", 5, last_seen_at=now - timedelta(days=5)
    )
    add_paper("Old diffusion", "diffusion", 50, last_seen_at=now - timedelta(days=9))
    add_paper("Protein folding", "proteins", 50)
    ada = confirm(client, outbox, django_capture_on_commit_callbacks)

    [message] = sent(outbox, "digest")
    assert message["To"] == "ada@example.org"
    text, html = texts(message)
    assert "Welcome edition" in text and "Welcome edition" in html
    # When the first scheduled one comes, in the subscriber's own timezone.
    local = timezone.localtime(ada.next_digest_at, ZoneInfo(ada.timezone))
    when = f"{local:%A} {local.day} {local:%B} at {local:%H:%M} (Europe/Paris)"
    assert f"your first weekly digest comes on {when}" in " ".join(text.split())
    assert f"your first weekly digest comes on {when}" in " ".join(html.split())
    assert "&lt;em&gt;Diffusion&lt;/em&gt; models" in html and "<em>Diffusion" not in html
    assert "Old diffusion" not in text and "Protein" not in text
    welcome = Digest.objects.get(subscriber=ada, period=Digest.WELCOME)
    assert welcome.status == Digest.SENT
    assert list(welcome.items.values_list("paper_id", flat=True)) == [recent.pk]
    assert "A first digest of the last days&#x27; papers is on its way" in (
        client.get("/manage/").content.decode()
    )

    # The scheduled digest comes as before, without the papers already sent.
    late = add_paper("Diffusion, later", "diffusion", 1)
    with time_machine.travel(ada.next_digest_at + timedelta(minutes=1), tick=False):
        [result] = deliver([ada.pk])
    assert result.status == "sent"
    scheduled = Digest.objects.get(pk=result.digest_id)
    assert scheduled.period != Digest.WELCOME
    assert list(scheduled.items.values_list("paper_id", flat=True)) == [late.pk]
    assert DigestItem.objects.filter(subscriber=ada, paper=recent).count() == 1


@pytest.mark.django_db
def test_the_welcome_digest_goes_once_however_often_its_task_runs(outbox: Path) -> None:
    add_paper("Diffusion", "diffusion", 5)
    ada = make_subscriber("ada@example.org", ["diffusion"])
    assert send_extra_digest.delay(ada.pk, Digest.WELCOME).get() == "sent"
    assert send_extra_digest.delay(ada.pk, Digest.WELCOME).get() == "already"
    # Confirming again (after an unsubscribe) sends no second welcome.
    ada.unsubscribe()
    ada.confirm()
    assert send_extra_digest.delay(ada.pk, Digest.WELCOME).get() == "already"
    assert len(sent(outbox, "digest")) == 1


@pytest.mark.django_db
def test_when_nothing_matched_yet_the_welcome_says_so_and_when_the_next_comes(
    client: Client, outbox: Path, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    add_paper("Protein folding", "proteins", 50)
    ada = confirm(client, outbox, django_capture_on_commit_callbacks)
    [message] = sent(outbox, "nothing")
    assert message["Subject"] == "Welcome to Trending papers: no paper matched yet"
    text, html = texts(message)
    assert "No paper of the last days matched your filters yet" in text
    assert "No paper of the last days matched your filters yet" in html
    local = timezone.localtime(ada.next_digest_at, ZoneInfo(ada.timezone))
    assert f"comes on {local:%A} {local.day} {local:%B} at {local:%H:%M}" in " ".join(text.split())
    assert "https://papers.example.org/help/filters/" in text
    assert 'href="https://papers.example.org/help/filters/"' in html
    assert Digest.objects.get(subscriber=ada).status == Digest.SENT


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["suppress", "pause", "unsubscribe", "unconfirmed"])
def test_no_extra_digest_reaches_an_address_that_gets_none(outbox: Path, how: str) -> None:
    add_paper("Diffusion", "diffusion", 5)
    ada = make_subscriber("ada@example.org", ["diffusion"])
    if how == "suppress":
        ada.suppress("550 mailbox unavailable")
    elif how == "unconfirmed":
        Subscriber.objects.filter(pk=ada.pk).update(confirmed_at=None)
    else:
        getattr(ada, how)()
    for period in (Digest.WELCOME, on_request_period(timezone.now())):
        result, _ = send_extra(ada.pk, period)
        assert result.status == "skipped"
    assert not sent(outbox) and not Digest.objects.exists()


@pytest.mark.django_db
def test_an_extra_edition_for_a_feed_only_reader_goes_to_the_feed(outbox: Path) -> None:
    add_paper("Diffusion", "diffusion", 5)
    quiet = make_subscriber("quiet@example.org", ["nothing-matches"], feed_only=True)
    reader = make_subscriber("reader@example.org", ["diffusion"], feed_only=True)
    assert send_extra(reader.pk, Digest.WELCOME)[0].status == "feed"
    assert send_extra(quiet.pk, Digest.WELCOME)[0].status == "empty"
    assert not sent(outbox)


@pytest.mark.django_db
def test_an_unknown_period_is_refused() -> None:
    ada = make_subscriber("ada@example.org", ["diffusion"])
    with pytest.raises(ValueError, match="not an edition outside the schedule"):
        send_extra(ada.pk, ada.period_key(timezone.now()))


@pytest.mark.django_db
def test_send_me_one_now_sends_once_an_hour(
    client: Client, outbox: Path, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    add_paper("Diffusion one", "diffusion", 5)
    ada = make_subscriber("ada@example.org", ["diffusion"], timezone="Europe/Berlin")
    sign_in(client, ada)
    assert "Send me one now" in client.get("/manage/").content.decode()
    start = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/manage/send-now/", follow=True)
    assert response.redirect_chain[-1][0] == "/manage/#send-now"
    assert "is on its way to your inbox" in response.content.decode()
    [message] = sent(outbox, "digest")
    text, _ = texts(message)
    assert "On request," in text and "Your next daily digest still comes on" in " ".join(
        text.split()
    )

    add_paper("Diffusion two", "diffusion", 5)
    with time_machine.travel(start + timedelta(minutes=59), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/manage/send-now/", follow=True)
    again = timezone.localtime(
        Digest.objects.get(subscriber=ada).created_at + timedelta(hours=1),
        ZoneInfo(ada.timezone),
    )
    assert (
        f"less than an hour ago. You can ask again after {again:%H:%M} (Europe/Berlin)"
        in response.content.decode()
    )
    assert len(sent(outbox, "digest")) == 1

    with time_machine.travel(start + timedelta(minutes=61), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            client.post("/manage/send-now/")
    second = sent(outbox, "digest")[-1]
    assert len(sent(outbox, "digest")) == 2
    # Only what was not sent before.
    assert "Diffusion two" in texts(second)[0] and "Diffusion one" not in texts(second)[0]


@pytest.mark.django_db
def test_two_requests_at_once_make_one_digest() -> None:
    ada = make_subscriber("ada@example.org", ["diffusion"])
    now = timezone.now()
    first = ask_for_digest(ada, now)
    with pytest.raises(TooSoon) as raised:
        ask_for_digest(ada, now + timedelta(seconds=1))
    assert raised.value.again_at == first.created_at + timedelta(hours=1)
    assert Digest.objects.count() == 1 and first.period == on_request_period(now)
    assert len(first.period) <= Digest._meta.get_field("period").max_length


@pytest.mark.django_db
def test_send_me_one_now_has_a_limit_for_the_whole_site(
    settings, outbox: Path, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    settings.THROTTLES = {**settings.THROTTLES, "send-now": (1, 3600)}
    add_paper("Diffusion", "diffusion", 5)
    pages = []
    for address in ("ada@example.org", "bo@example.org"):
        client = Client()
        sign_in(client, make_subscriber(address, ["diffusion"]))
        with django_capture_on_commit_callbacks(execute=True):
            pages.append(client.post("/manage/send-now/", follow=True).content.decode())
    assert "is on its way" in pages[0]
    assert "Many people asked for a digest this hour" in pages[1]
    assert [m["To"] for m in sent(outbox, "digest")] == ["ada@example.org"]
    # The refused request does not count against bo: no digest row is left.
    assert Digest.objects.filter(subscriber__email="bo@example.org").count() == 0


@pytest.mark.django_db
def test_a_paused_subscriber_cannot_ask(client: Client, outbox: Path) -> None:
    ada = make_subscriber("ada@example.org", ["diffusion"])
    ada.pause()
    sign_in(client, ada)
    assert "Send me one now" not in client.get("/manage/").content.decode()
    response = client.post("/manage/send-now/", follow=True)
    assert "resume them first" in response.content.decode()
    assert not Digest.objects.exists() and not sent(outbox)
