"""Digests and "nothing matched" notes go through the ESP's bulk stream, confirmations
and settings links through its transactional one, as the settings say: sent through
django-anymail's real backends to a stand-in API on loopback."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest

from digest.delivery.compose import esp_stream, make_email
from digest.delivery.pipeline import deliver
from digest.models import Paper
from subscriptions.signup import send_confirmation, send_manage_link
from tests.support.esp import FakeEspApi

from .conftest import make_subscriber


def test_the_list_mail_is_bulk_and_the_rest_transactional() -> None:
    assert [esp_stream(k) for k in ("digest", "nothing", "confirm", "manage-link")] == [
        "bulk",
        "bulk",
        "transactional",
        "transactional",
    ]


def send_every_kind(settings) -> None:  # type: ignore[no-untyped-def]
    Paper.objects.create(title="Diffusion", title_key="diffusion", abstract="Diffusion.")
    ada = make_subscriber("ada@example.org", ["diffusion"])
    grace = make_subscriber("grace@example.org", ["nothing-matches-this"])
    settings.DIGEST_SEND_EMPTY = True
    results = deliver([ada.pk, grace.pk])
    assert sorted(r.status for r in results) == ["sent", "sent"]
    send_confirmation(make_subscriber("new@example.org", ["x"], confirmed_at=None))
    send_manage_link(ada)


@pytest.mark.django_db
def test_postmark_gets_each_kind_on_its_message_stream(settings) -> None:  # type: ignore[no-untyped-def]
    with FakeEspApi() as api:
        settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
        settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "t", "POSTMARK_API_URL": api.url("/")}
        settings.ESP_STREAMS = {
            **settings.ESP_STREAMS,
            "postmark": {"bulk": "broadcast", "transactional": "outbound"},
        }
        send_every_kind(settings)
    streams = {_kind(body): json.loads(body).get("MessageStream") for _, _, body in api.posts}
    assert streams == {
        "digest": "broadcast",
        "nothing": "broadcast",
        "confirm": "outbound",
        "manage-link": "outbound",
    }
    # Postmark takes one tag: the digest keeps its own.
    tags = {_kind(body): json.loads(body).get("Tag") for _, _, body in api.posts}
    assert tags["digest"] == tags["nothing"] == "digest"


def _kind(body: bytes) -> str:
    headers = {h["Name"]: h["Value"] for h in json.loads(body)["Headers"]}
    return headers["X-Email-Kind"]


@pytest.mark.django_db
def test_without_stream_settings_postmark_uses_its_default(settings) -> None:  # type: ignore[no-untyped-def]
    with FakeEspApi() as api:
        settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
        settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "t", "POSTMARK_API_URL": api.url("/")}
        make_email(
            "confirm", {"email": "a@x.org", "confirm_url": "https://x/c/", "days": 3}, "a@x.org"
        ).send()
    [(_, _, body)] = api.posts
    assert "MessageStream" not in json.loads(body)


@pytest.mark.django_db
def test_mailgun_gets_the_stream_as_a_tag(settings) -> None:  # type: ignore[no-untyped-def]
    with FakeEspApi() as api:
        settings.EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"
        settings.ANYMAIL = {
            "MAILGUN_API_KEY": "k",
            "MAILGUN_SENDER_DOMAIN": "mg.example.org",
            "MAILGUN_API_URL": api.url("/v3"),
        }
        send_every_kind(settings)
    tags = {}
    for path, _, body in api.posts:
        assert path == "/v3/mg.example.org/messages"
        form = parse_qs(body.decode())
        [kind] = form["h:X-Email-Kind"]
        tags[kind] = form["o:tag"]
    assert tags == {
        "digest": ["digest", "bulk"],
        "nothing": ["digest", "bulk"],
        "confirm": ["transactional"],
        "manage-link": ["transactional"],
    }


def test_ses_gets_the_configuration_set_of_the_stream(settings) -> None:  # type: ignore[no-untyped-def]
    # SES is reached through boto3, which the tests do not install: the message's
    # esp_extra is what anymail merges into the SendEmail call.
    settings.EMAIL_BACKEND = "anymail.backends.amazon_ses.EmailBackend"
    settings.ESP_STREAMS = {
        **settings.ESP_STREAMS,
        "amazon_ses": {"bulk": "digests", "transactional": "account-mail"},
    }
    ctx = {"email": "a@x.org", "confirm_url": "https://x/c/", "days": 3}
    assert make_email("confirm", ctx, "a@x.org").esp_extra == {
        "ConfigurationSetName": "account-mail"
    }  # type: ignore[attr-defined]
    digest = make_email("digest", {}, "a@x.org", parts=("s", "t", "<p>h</p>"))
    assert digest.esp_extra == {"ConfigurationSetName": "digests"}  # type: ignore[attr-defined]
