"""The ESP's tracking webhooks: bounces and complaints suppress, deliveries reset.

Payloads follow the ESPs' documented shapes: Postmark's bounce, spam-complaint and
delivery webhooks (https://postmarkapp.com/developer/webhooks/bounce-webhook), Mailgun's
signed v3 webhooks with ``event-data``
(https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from itertools import count

import pytest
from django.test import Client
from django.utils import timezone

from digest.models import DeliveryEvent, Digest
from subscriptions.models import Subscriber

from .conftest import make_subscriber

SECRET = "esp-hooks:s3cret-passw0rd"
SIGNING_KEY = "key-mailgun-signing-0123456789"
_ids = count(1000)


@pytest.fixture(autouse=True)
def _webhook_settings(settings) -> None:  # type: ignore[no-untyped-def]
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
    settings.ESP_WEBHOOKS = ["postmark", "mailgun"]


def auth(secret: str = SECRET) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(secret.encode()).decode()}


def sent_digest(subscriber: Subscriber, period: str = "2026-03-08") -> Digest:
    return Digest.objects.create(
        subscriber=subscriber,
        period=period,
        status=Digest.SENT,
        attempts=1,
        planned_at=timezone.now(),
        sent_at=timezone.now(),
        message_id=f"<{uuid.uuid4().hex}@papers.example.org>",
    )


# --- Postmark ---------------------------------------------------------------------------


def postmark_bounce(digest: Digest, type_: str, type_code: int, **extra: object) -> dict:
    return {
        "RecordType": "Bounce",
        "ID": next(_ids),
        "Type": type_,
        "TypeCode": type_code,
        "Name": type_,
        "Tag": "digest",
        "MessageID": str(uuid.uuid4()),
        "Metadata": {"digest_id": str(digest.pk), "subscriber_id": str(digest.subscriber_id)},
        "ServerID": 23,
        "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": digest.subscriber.email,
        "From": "digest@papers.example.org",
        "BouncedAt": "2026-03-08T08:01:02Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "10 new papers for you",
        **extra,
    }


def postmark_delivery(digest: Digest) -> dict:
    return {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": str(uuid.uuid4()),
        "Recipient": digest.subscriber.email,
        "Tag": "digest",
        "DeliveredAt": "2026-03-08T08:01:05Z",
        "Details": "Test delivery webhook details",
        "Metadata": {"digest_id": str(digest.pk)},
    }


def post_postmark(client: Client, payload: dict, **headers: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/esp/postmark/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        **headers,
    )


@pytest.mark.django_db
def test_a_postmark_hard_bounce_suppresses_at_once_and_is_stored(client: Client) -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    digest = sent_digest(ada)
    payload = postmark_bounce(digest, "HardBounce", 1)
    response = post_postmark(client, payload, **auth())
    assert response.status_code == 200
    ada.refresh_from_db()
    assert ada.state == "suppressed"
    assert ada.suppressed_reason.startswith("hard bounce: The server was unable to deliver")
    event = DeliveryEvent.objects.get()
    assert (event.esp_name, event.event_type, event.reject_reason) == (
        "Postmark",
        "bounced",
        "bounced",
    )
    assert (event.digest, event.subscriber, event.recipient) == (digest, ada, "ada@example.org")
    assert event.event_id == str(payload["ID"])
    assert event.raw["TypeCode"] == 1 and event.timestamp is not None


@pytest.mark.django_db
def test_the_same_postmark_event_twice_is_stored_once(client: Client) -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    payload = postmark_bounce(sent_digest(ada), "SoftBounce", 4096)
    for _ in range(2):
        assert post_postmark(client, payload, **auth()).status_code == 200
    assert DeliveryEvent.objects.count() == 1
    assert Subscriber.objects.get(pk=ada.pk).soft_bounces == 1


@pytest.mark.django_db
def test_a_spam_complaint_suppresses(client: Client) -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    payload = postmark_bounce(sent_digest(ada), "SpamComplaint", 512, RecordType="SpamComplaint")
    assert post_postmark(client, payload, **auth()).status_code == 200
    ada.refresh_from_db()
    assert ada.state == "suppressed" and "spam complaint" in ada.suppressed_reason


@pytest.mark.django_db
def test_three_soft_bounces_in_a_row_suppress_and_a_delivery_resets_the_run(
    client: Client,
) -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    days = iter(f"2026-03-{d:02d}" for d in range(1, 20))
    for _ in range(2):
        post_postmark(
            client, postmark_bounce(sent_digest(ada, next(days)), "SoftBounce", 4096), **auth()
        )
    assert Subscriber.objects.get(pk=ada.pk).soft_bounces == 2
    post_postmark(client, postmark_delivery(sent_digest(ada, next(days))), **auth())
    assert Subscriber.objects.get(pk=ada.pk).soft_bounces == 0
    for n in range(3):
        assert Subscriber.objects.get(pk=ada.pk).state == "active", n
        post_postmark(
            client, postmark_bounce(sent_digest(ada, next(days)), "Transient", 2), **auth()
        )
    ada.refresh_from_db()
    assert ada.state == "suppressed"
    assert ada.suppressed_reason.startswith("3 soft bounces in a row")


@pytest.mark.django_db
def test_retries_of_one_message_count_as_one_soft_bounce(client: Client) -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    digest = sent_digest(ada)
    for _ in range(4):
        post_postmark(client, postmark_bounce(digest, "Transient", 2), **auth())
    assert DeliveryEvent.objects.count() == 4
    ada.refresh_from_db()
    assert (ada.soft_bounces, ada.state) == (1, "active")


# --- Forged posts ------------------------------------------------------------------------


def forged_complaint(address: str) -> dict:
    """What anyone on the web can post: no credentials, no id, no digest."""
    return {"RecordType": "SpamComplaint", "Type": "SpamComplaint", "Email": address}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "anymail",
    [{}, {"MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}],
    ids=["smtp setup: no anymail settings", "no webhook secret"],
)
def test_a_forged_complaint_suppresses_nobody_without_a_webhook_secret(
    client: Client, settings, anymail: dict
) -> None:  # type: ignore[no-untyped-def]
    settings.ANYMAIL = anymail
    ada = make_subscriber("ada@example.org", ["mamba"])
    response = post_postmark(client, forged_complaint("ada@example.org"))
    assert response.status_code == 403
    assert not DeliveryEvent.objects.exists()
    assert Subscriber.objects.get(pk=ada.pk).state == "active"


@pytest.mark.django_db
def test_webhooks_of_esps_not_configured_are_not_served(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.ESP_WEBHOOKS = []
    ada = make_subscriber("ada@example.org", ["mamba"])
    response = post_postmark(client, forged_complaint("ada@example.org"), **auth())
    assert response.status_code == 404
    settings.ESP_WEBHOOKS = ["postmark"]
    assert (
        client.post(
            "/esp/postmark/inbound/", data="{}", content_type="application/json"
        ).status_code
        == 404
    )
    assert Subscriber.objects.get(pk=ada.pk).state == "active"


@pytest.mark.django_db
def test_a_signing_esp_without_its_key_is_refused(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    ada = make_subscriber("ada@example.org", ["mamba"])
    payload = mailgun(mailgun_event(sent_digest(ada), "failed", **PERMANENT_FAILURE))
    assert post_mailgun(client, payload, **auth()).status_code == 403
    assert Subscriber.objects.get(pk=ada.pk).state == "active"


@pytest.mark.django_db
def test_soft_bounces_without_an_id_or_a_digest_suppress_nobody(client: Client) -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    bounce = {
        "RecordType": "Bounce",
        "Type": "SoftBounce",
        "TypeCode": 4096,
        "Email": "ada@example.org",
        "Description": "mailbox full",
    }
    for _ in range(5):
        assert post_postmark(client, bounce, **auth()).status_code == 200
    ada.refresh_from_db()
    assert (ada.state, ada.soft_bounces) == ("active", 0)
    assert DeliveryEvent.objects.filter(subscriber=ada).count() == 5


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [{}, auth("esp-hooks:wrong"), {"HTTP_AUTHORIZATION": "Bearer " + SECRET}],
    ids=["no credentials", "wrong password", "not basic auth"],
)
def test_postmark_events_without_the_right_credentials_are_refused(
    client: Client, headers: dict[str, str]
) -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    response = post_postmark(client, postmark_bounce(sent_digest(ada), "HardBounce", 1), **headers)
    assert response.status_code == 400  # anymail: AnymailWebhookValidationFailure
    assert not DeliveryEvent.objects.exists()
    assert Subscriber.objects.get(pk=ada.pk).state == "active"


# --- Mailgun ----------------------------------------------------------------------------


def mailgun(event_data: dict, *, key: str = SIGNING_KEY) -> dict:
    timestamp, token = str(int(time.time())), uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    }


def mailgun_event(digest: Digest, event: str, *, metadata: bool = True, **extra: object) -> dict:
    data: dict[str, object] = {
        "id": uuid.uuid4().hex[:22],
        "timestamp": time.time(),
        "log-level": "error" if event == "failed" else "info",
        "event": event,
        "recipient": digest.subscriber.email,
        "recipient-domain": "example.org",
        "tags": ["digest"],
        "envelope": {
            "sender": "digest@mg.papers.example.org",
            "targets": digest.subscriber.email,
            "transport": "smtp",
        },
        "message": {
            "headers": {
                "to": digest.subscriber.email,
                # Mailgun reports the Message-ID without its angle brackets.
                "message-id": digest.message_id.strip("<>"),
                "from": "Trending papers <digest@mg.papers.example.org>",
                "subject": "10 new papers for you",
            },
            "size": 24018,
        },
        "user-variables": {"digest_id": str(digest.pk)} if metadata else {},
        "flags": {"is-authenticated": True, "is-test-mode": False},
    }
    data.update(extra)
    return data


def post_mailgun(client: Client, payload: dict, **headers: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/esp/mailgun/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        **headers,
    )


PERMANENT_FAILURE = {
    "severity": "permanent",
    "reason": "bounce",
    "delivery-status": {
        "code": 550,
        "attempt-no": 1,
        "message": "5.1.1 The email account that you tried to reach does not exist.",
        "description": "Mailbox does not exist",
        "session-seconds": 0.4,
    },
}
TEMPORARY_FAILURE = {
    "severity": "temporary",
    "reason": "generic",
    "delivery-status": {
        "code": 452,
        "attempt-no": 1,
        "message": "4.2.2 The email account that you tried to reach is over quota.",
        "description": "",
        "retry-seconds": 600,
    },
}


@pytest.mark.django_db
def test_a_signed_mailgun_permanent_failure_suppresses(client: Client) -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    digest = sent_digest(ada)
    payload = mailgun(mailgun_event(digest, "failed", **PERMANENT_FAILURE))
    response = post_mailgun(client, payload, **auth())
    assert response.status_code == 200
    ada.refresh_from_db()
    assert ada.state == "suppressed"
    assert ada.suppressed_reason == "hard bounce: Mailbox does not exist"
    event = DeliveryEvent.objects.get()
    assert (event.esp_name, event.event_type, event.reject_reason) == (
        "Mailgun",
        "bounced",
        "bounced",
    )
    assert event.digest == digest and event.event_id == payload["signature"]["token"]


@pytest.mark.django_db
def test_a_mailgun_event_is_matched_to_its_digest_by_message_id(client: Client) -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    digest = sent_digest(ada)
    payload = mailgun(mailgun_event(digest, "delivered", metadata=False))
    assert post_mailgun(client, payload, **auth()).status_code == 200
    event = DeliveryEvent.objects.get()
    assert (event.event_type, event.digest, event.subscriber) == ("delivered", digest, ada)


@pytest.mark.django_db
def test_mailgun_temporary_failures_are_soft_bounces(client: Client) -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    for day in ("2026-03-01", "2026-03-02", "2026-03-03"):
        payload = mailgun(mailgun_event(sent_digest(ada, day), "failed", **TEMPORARY_FAILURE))
        assert post_mailgun(client, payload, **auth()).status_code == 200
    assert set(DeliveryEvent.objects.values_list("event_type", flat=True)) == {"deferred"}
    ada.refresh_from_db()
    assert ada.state == "suppressed" and ada.soft_bounces == 3


@pytest.mark.django_db
def test_mailgun_complaints_and_unsubscribes(client: Client) -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    grace = make_subscriber("grace@example.org", ["mamba"])
    post_mailgun(client, mailgun(mailgun_event(sent_digest(ada), "complained")), **auth())
    post_mailgun(client, mailgun(mailgun_event(sent_digest(grace), "unsubscribed")), **auth())
    ada.refresh_from_db()
    grace.refresh_from_db()
    assert ada.state == "suppressed" and "spam complaint" in ada.suppressed_reason
    assert grace.state == "unsubscribed"


@pytest.mark.django_db
def test_a_mailgun_rejection_suppresses(client: Client) -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    event = mailgun_event(
        sent_digest(ada), "rejected", reject={"reason": "Recipient is on the bounce list"}
    )
    assert post_mailgun(client, mailgun(event), **auth()).status_code == 200
    ada.refresh_from_db()
    assert ada.state == "suppressed"
    assert ada.suppressed_reason == "rejected by Mailgun: Recipient is on the bounce list"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "headers"),
    [("key-not-the-right-one", auth()), (SIGNING_KEY, {}), (SIGNING_KEY, auth("x:y"))],
    ids=["bad signature", "no credentials", "wrong credentials"],
)
def test_mailgun_events_without_signature_and_credentials_are_refused(
    client: Client, key: str, headers: dict[str, str]
) -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    payload = mailgun(mailgun_event(sent_digest(ada), "failed", **PERMANENT_FAILURE), key=key)
    response = post_mailgun(client, payload, **headers)
    assert response.status_code == 400  # anymail: AnymailWebhookValidationFailure
    assert not DeliveryEvent.objects.exists()
    assert Subscriber.objects.get(pk=ada.pk).state == "active"
