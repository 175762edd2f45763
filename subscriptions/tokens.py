"""Signed links, each salted with its purpose so a token for one cannot serve another.

Tokens sign the subscriber's public ``uuid`` with Django's :class:`TimestampSigner`
(HMAC-SHA256 over ``SECRET_KEY``); reading one checks the signature and its age.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core import signing
from django.urls import reverse

__all__ = ["UNSUBSCRIBE", "make_token", "read_token", "unsubscribe_url"]

UNSUBSCRIBE = "subscriptions.unsubscribe"


def make_token(subscriber_uuid: uuid.UUID, purpose: str) -> str:
    """A URL-safe token for ``purpose`` (one of this module's salts)."""
    return signing.TimestampSigner(salt=purpose).sign(subscriber_uuid.hex)


def read_token(token: str, purpose: str, max_age: int) -> uuid.UUID:
    """The subscriber uuid a token names.

    Raises :class:`django.core.signing.SignatureExpired` when older than ``max_age``
    seconds and :class:`django.core.signing.BadSignature` when tampered with, made for
    another purpose, or malformed.
    """
    value = signing.TimestampSigner(salt=purpose).unsign(token, max_age=max_age)
    try:
        return uuid.UUID(hex=value)
    except ValueError:
        raise signing.BadSignature("malformed token") from None


def unsubscribe_url(subscriber_uuid: uuid.UUID) -> str:
    """The absolute one-click unsubscribe URL (RFC 8058) for the ``List-Unsubscribe`` header
    and the visible link."""
    token = make_token(subscriber_uuid, UNSUBSCRIBE)
    return settings.SITE_URL + reverse("unsubscribe", args=[token])
