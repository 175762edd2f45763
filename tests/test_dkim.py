"""Digests sent over SMTP are DKIM-signed, with both one-click unsubscribe headers
signed (RFC 8058 section 4), and verify against the published key."""

from __future__ import annotations

import base64
import re
import subprocess

import dkim
import pytest

from digest.delivery.pipeline import deliver
from digest.models import Paper
from tests.support.smtp import SmtpSink

from .conftest import make_subscriber


def keypair() -> tuple[str, bytes]:
    """An RSA key of 2,048 bits: its PEM, and the TXT record publishing it (RFC 6376
    section 3.6.1)."""
    pem = subprocess.run(
        ["openssl", "genrsa", "-traditional", "2048"], capture_output=True, check=True
    ).stdout
    public = subprocess.run(
        ["openssl", "rsa", "-pubout", "-outform", "DER"], input=pem, capture_output=True, check=True
    ).stdout
    return pem.decode(), b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def signed_tags(message: bytes) -> dict[str, str]:
    header = re.search(rb"^DKIM-Signature:(.*?)\r\n(?! )(?!\t)", message, re.S | re.M)
    assert header is not None
    value = re.sub(rb"\s+", b"", header.group(1)).decode()
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)


@pytest.mark.django_db
def test_a_digest_sent_by_smtp_is_signed_and_verifies(settings) -> None:  # type: ignore[no-untyped-def]
    pem, record = keypair()
    settings.DKIM_PRIVATE_KEY, settings.DKIM_SELECTOR = pem, "digest2026"
    settings.DKIM_DOMAIN = "papers.example.org"
    settings.DEFAULT_FROM_EMAIL = "Trending papers <digest@papers.example.org>"
    Paper.objects.create(
        title="Diffusion ünïcode <b>title</b>",
        title_key="diffusion unicode b title b",
        abstract="Diffusion " * 80,
        upvotes=3,
    )
    ada = make_subscriber("ada@example.org", ["diffusion"])
    with SmtpSink(keep_contents=True) as sink:
        settings.EMAIL_BACKEND = "digest.mail.SmtpEmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
        [result] = deliver([ada.pk])
    assert result.status == "sent"
    [message] = sink.contents
    asked = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        asked.append(name)
        return record if name == b"digest2026._domainkey.papers.example.org." else b""

    assert dkim.verify(message, dnsfunc=dns)
    assert asked == [b"digest2026._domainkey.papers.example.org."]
    tags = signed_tags(message)
    assert tags["d"] == "papers.example.org" and tags["s"] == "digest2026"
    signed = tags["h"].lower().split(":")
    for name in ("from", "subject", "list-unsubscribe", "list-unsubscribe-post", "list-id"):
        assert name in signed
    # A changed unsubscribe header no longer verifies.
    forged = re.sub(
        rb"List-Unsubscribe:\s*<[^>]*>", b"List-Unsubscribe: <https://evil.example/>", message
    )
    assert forged != message and not dkim.verify(forged, dnsfunc=dns)


@pytest.mark.django_db
def test_without_dkim_settings_nothing_is_signed(settings) -> None:  # type: ignore[no-untyped-def]
    Paper.objects.create(title="Diffusion", title_key="diffusion", abstract="Diffusion.")
    ada = make_subscriber("ada@example.org", ["diffusion"])
    with SmtpSink(keep_contents=True) as sink:
        settings.EMAIL_BACKEND = "digest.mail.SmtpEmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
        [result] = deliver([ada.pk])
    assert result.status == "sent" and b"DKIM-Signature" not in sink.contents[0]
