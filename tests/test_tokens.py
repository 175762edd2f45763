"""Signed links made with prepared HMACs (subscriptions.tokens._signer) are exactly what
Django's signer makes, and read back by it."""

from __future__ import annotations

import uuid

import pytest
import time_machine
from django.core import signing
from django.test import override_settings
from django.urls import reverse

from subscriptions import tokens


@pytest.mark.parametrize(
    "salt", [tokens.UNSUBSCRIBE, tokens.MANAGE, tokens.CONFIRM, tokens.FEEDBACK]
)
@pytest.mark.parametrize("value", ["", "abc", "0f" * 16 + ".7", "é ünïcode ✓", "x:y.z"])
def test_timestamped_tokens_are_djangos(salt: str, value: str) -> None:
    with time_machine.travel("2026-11-30 12:00:00", tick=False):
        assert tokens._signer(salt)(value) == signing.TimestampSigner(salt=salt).sign(value)
        assert signing.TimestampSigner(salt=salt).unsign(tokens._signer(salt)(value)) == value


def test_untimed_tokens_are_djangos() -> None:
    token = tokens._signer(tokens.DIGEST_WEB, stamp=False)("12345")
    assert token == signing.Signer(salt=tokens.DIGEST_WEB).sign("12345")
    assert tokens.read_digest_token(token) == 12345


def test_a_new_secret_key_signs_differently_and_old_tokens_fail() -> None:
    who = uuid.uuid4()
    before = tokens.make_token(who, tokens.UNSUBSCRIBE)
    with override_settings(SECRET_KEY="another secret key, long enough to be a real one " * 2):
        after = tokens.make_token(who, tokens.UNSUBSCRIBE)
        assert after != before
        assert tokens.read_token(after, tokens.UNSUBSCRIBE, 60) == who
        with pytest.raises(signing.BadSignature):
            tokens.read_token(before, tokens.UNSUBSCRIBE, 60)


def test_link_urls_are_what_reverse_makes() -> None:
    who = uuid.uuid4()
    url = tokens.unsubscribe_url(who)
    token = url.rstrip("/").rsplit("/", 1)[1]
    assert url.endswith(reverse("unsubscribe", args=[token]))
    assert tokens.read_token(token, tokens.UNSUBSCRIBE, 60) == who
    # Another purpose's salt does not read it.
    with pytest.raises(signing.BadSignature):
        tokens.read_token(token, tokens.MANAGE, 60)
    with override_settings(SITE_URL="https://papers.example.org/base"):
        assert tokens.unsubscribe_url(who).startswith("https://papers.example.org/base/")
