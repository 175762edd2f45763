"""Bounces without an ESP webhook: VERP bounce addresses on the SMTP path, and delivery
status notifications from several MTAs (Postfix, Exim, Gmail, Office 365), complaints
and auto-replies read from the bounce mailbox or an MTA pipe."""

from __future__ import annotations

import io
import sys

import pytest
from django.core.management import call_command

from digest.delivery.bounces import parse_verp, verp_address
from digest.delivery.pipeline import deliver
from digest.models import DeliveryEvent, Digest, Paper
from digest.tasks import read_bounces
from subscriptions.models import Subscriber
from tests.support.pop3 import Pop3Mailbox
from tests.support.smtp import SmtpSink

from .conftest import make_subscriber
from .test_sources import FIXTURES

SAMPLES = FIXTURES / "bounces"
HARD = ["postfix-hard", "exim-hard", "gmail-hard", "office365-hard"]


@pytest.fixture
def bounces(settings) -> None:  # type: ignore[no-untyped-def]
    settings.BOUNCE_ADDRESS = "bounces@papers.example.org"


def sent_digest(email: str = "ada@example.org") -> Digest:
    Paper.objects.get_or_create(
        title="Diffusion Transformers at scale",
        defaults={"title_key": "diffusion transformers at scale", "abstract": "Diffusion."},
    )
    subscriber = make_subscriber(email, ["diffusion"])
    [result] = deliver([subscriber.pk])
    assert result.status == "sent"
    return Digest.objects.select_related("subscriber").get(pk=result.digest_id)


def sample(name: str, digest: Digest, *, verp: str | None = None) -> bytes:
    text = (SAMPLES / f"{name}.eml").read_text()
    values = {
        "{VERP}": verp if verp is not None else str(verp_address(digest.pk)),
        "{MESSAGE_ID}": digest.message_id,
        "{RCPT}": digest.subscriber.email,
        "{DIGEST_ID}": str(digest.pk),
    }
    for key, value in values.items():
        text = text.replace(key, value)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def pipe(raw: bytes, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    """``manage.py read_bounces - ARGS`` with ``raw`` on standard input, as an MTA pipes it."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    out = io.StringIO()
    call_command("read_bounces", "-", *args, stdout=out)
    return out.getvalue().strip()


def test_a_verp_address_names_its_digest_and_cannot_be_forged(bounces) -> None:  # type: ignore[no-untyped-def]
    address = verp_address(42)
    assert address is not None and address.startswith("bounces+d42-")
    assert address.endswith("@papers.example.org")
    assert parse_verp(address) == 42 and parse_verp(f"<{address.upper()}>") == 42
    assert parse_verp(address.replace("d42-", "d43-")) is None
    assert parse_verp("bounces@papers.example.org") is None


@pytest.mark.django_db
def test_a_digest_sent_by_smtp_carries_its_own_bounce_address(settings, bounces) -> None:  # type: ignore[no-untyped-def]
    with SmtpSink() as sink:
        settings.EMAIL_BACKEND = "digest.mail.SmtpEmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
        digest = sent_digest()
        from subscriptions.signup import send_manage_link

        send_manage_link(digest.subscriber)
    by_digest = {r.digest_id: r.mail_from for r in sink.received}
    assert by_digest[str(digest.pk)] == verp_address(digest.pk)
    assert by_digest[""] == "bounces@papers.example.org"  # other mail: the plain address


@pytest.mark.django_db
@pytest.mark.parametrize("name", HARD)
def test_a_hard_bounce_from_any_mta_suppresses_its_recipient(
    name: str, bounces, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = sent_digest()
    out = pipe(sample(name, digest), monkeypatch)
    assert out == f"bounce: bounced ada@example.org (digest {digest.pk})"
    ada = Subscriber.objects.get(pk=digest.subscriber_id)
    assert ada.suppressed_at is not None and "hard bounce" in ada.suppressed_reason
    [event] = DeliveryEvent.objects.all()
    assert (event.esp_name, event.event_type, event.digest_id) == ("smtp", "bounced", digest.pk)
    assert "5.1.1" in event.mta_response or "5.1.10" in event.mta_response
    # The same report again (the mailbox read twice) changes nothing.
    assert pipe(sample(name, digest), monkeypatch) == "bounce: seen before"
    assert DeliveryEvent.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("name", HARD)
def test_without_verp_the_quoted_message_id_names_the_digest(
    name: str, bounces, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = sent_digest()
    out = pipe(sample(name, digest, verp="bounces@papers.example.org"), monkeypatch)
    assert out.startswith("bounce: bounced ada@example.org")
    assert Subscriber.objects.get(pk=digest.subscriber_id).suppressed_at is not None


@pytest.mark.django_db
def test_a_forged_report_names_no_digest_and_suppresses_no_one(
    bounces, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = sent_digest()
    raw = sample("postfix-hard", digest, verp="bounces+d1-0123456789@papers.example.org")
    raw = raw.replace(digest.message_id.encode(), b"<guessed@papers.example.org>")
    assert pipe(raw, monkeypatch) == "ignored: names no digest of ours"
    assert Subscriber.objects.get(pk=digest.subscriber_id).suppressed_at is None
    assert not DeliveryEvent.objects.exists()


@pytest.mark.django_db
def test_a_delayed_delivery_is_a_soft_bounce(bounces, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = sent_digest()
    envelope = str(verp_address(digest.pk))
    # Piped by the MTA with the envelope recipient, the VERP address.
    raw = sample("postfix-delayed", digest, verp="bounces@papers.example.org")
    out = pipe(raw, monkeypatch, "--recipient", envelope)
    assert out == f"bounce: deferred ada@example.org (digest {digest.pk})"
    ada = Subscriber.objects.get(pk=digest.subscriber_id)
    assert ada.suppressed_at is None and ada.soft_bounces == 1


@pytest.mark.django_db
def test_an_out_of_office_reply_is_ignored(bounces, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = sent_digest()
    assert pipe(sample("autoreply", digest), monkeypatch) == "ignored: auto-reply"
    ada = Subscriber.objects.get(pk=digest.subscriber_id)
    assert ada.suppressed_at is None and ada.soft_bounces == 0
    assert not DeliveryEvent.objects.exists()


@pytest.mark.django_db
def test_a_spam_complaint_suppresses(bounces, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = sent_digest()
    out = pipe(sample("arf-complaint", digest), monkeypatch)
    assert out == f"complaint: complained ada@example.org (digest {digest.pk})"
    ada = Subscriber.objects.get(pk=digest.subscriber_id)
    assert ada.suppressed_at is not None and "spam complaint" in ada.suppressed_reason


@pytest.mark.django_db
def test_the_periodic_task_reads_the_pop3_mailbox_and_empties_it(settings, bounces) -> None:  # type: ignore[no-untyped-def]
    ada, grace, alan = (sent_digest(f"{n}@example.org") for n in ("ada", "grace", "alan"))
    messages = [
        sample("gmail-hard", ada),
        sample("autoreply", grace),
        sample("postfix-delayed", alan),
        b"not an email at all\r\n",
    ]
    with Pop3Mailbox(messages) as mailbox:
        settings.BOUNCE_MAILBOX_URL = f"pop3://bounces:pw@127.0.0.1:{mailbox.port}"
        assert read_bounces() == {"bounce": 2, "ignored": 2}
        assert mailbox.messages == [] and mailbox.logins == 1
        assert read_bounces() == {}  # nothing left
    suppressed = set(
        Subscriber.objects.filter(suppressed_at__isnull=False).values_list("email", flat=True)
    )
    assert suppressed == {"ada@example.org"}
    assert Subscriber.objects.get(email="alan@example.org").soft_bounces == 1


@pytest.mark.django_db
def test_the_command_says_what_is_wrong(settings, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from django.core.management.base import CommandError

    settings.BOUNCE_MAILBOX_URL = ""
    with pytest.raises(CommandError, match="BOUNCE_MAILBOX_URL"):
        call_command("read_bounces")
    with pytest.raises(CommandError, match="imap"):
        call_command("read_bounces", "--url", "ftp://x/")
    with pytest.raises(CommandError, match="no message"):
        pipe(b"", monkeypatch)
