"""Signed links, each salted with its purpose so a token for one cannot serve another.

Tokens sign the subscriber's public ``uuid`` with Django's :class:`TimestampSigner`
(HMAC-SHA256 over ``SECRET_KEY``); reading one checks the signature and its age.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.core import signing
from django.urls import reverse

from subscriptions.models import Subscriber

if TYPE_CHECKING:  # digest.models imports nothing of this app; keep it that way at run time
    from digest.models import Digest

__all__ = [
    "CONFIRM",
    "OFFER",
    "offer_fingerprint",
    "offer_url",
    "read_offer_token",
    "DIGEST_WEB",
    "MANAGE",
    "UNSUBSCRIBE",
    "confirm_url",
    "digest_web_url",
    "make_link_token",
    "make_token",
    "manage_url",
    "read_digest_token",
    "read_link_token",
    "read_token",
    "unsubscribe_url",
]

UNSUBSCRIBE = "subscriptions.unsubscribe"
CONFIRM = "subscriptions.confirm"
MANAGE = "subscriptions.manage"
DIGEST_WEB = "subscriptions.digest-web"
OFFER = "subscriptions.offer"


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


def make_link_token(subscriber_uuid: uuid.UUID, counter: int, purpose: str) -> str:
    """A single-use token: the uuid and the subscriber's ``link_counter`` when it was made,
    ``"<uuid hex>.<counter>"``, signed for ``purpose``. Spending it bumps the counter
    (:meth:`subscriptions.models.Subscriber.use_link`), which voids it and every older one.
    """
    return signing.TimestampSigner(salt=purpose).sign(f"{subscriber_uuid.hex}.{counter}")


def read_link_token(token: str, purpose: str, max_age: int) -> tuple[uuid.UUID, int]:
    """``(subscriber uuid, counter)`` of a :func:`make_link_token` token.

    Raises :class:`django.core.signing.SignatureExpired` when older than ``max_age``
    seconds and :class:`django.core.signing.BadSignature` when tampered with, made for
    another purpose, or malformed. Whether the counter is still current is the caller's
    check.
    """
    value = signing.TimestampSigner(salt=purpose).unsign(token, max_age=max_age)
    hex_part, _, counter = value.partition(".")
    try:
        return uuid.UUID(hex=hex_part), int(counter)
    except ValueError:
        raise signing.BadSignature("malformed token") from None


def _link_url(name: str, subscriber_uuid: uuid.UUID, purpose: str) -> str:
    counter = Subscriber.objects.values_list("link_counter", flat=True).get(uuid=subscriber_uuid)
    return settings.SITE_URL + reverse(
        name, args=[make_link_token(subscriber_uuid, counter, purpose)]
    )


def manage_url_for(subscriber: Subscriber) -> str:
    """:func:`manage_url` for a loaded :class:`~subscriptions.models.Subscriber`, without
    reading its ``link_counter`` again (delivery makes one per digest)."""
    token = make_link_token(subscriber.uuid, subscriber.link_counter, MANAGE)
    return settings.SITE_URL + reverse("manage_link", args=[token])


def confirm_url(subscriber_uuid: uuid.UUID) -> str:
    """The absolute double opt-in link; it works once, for ``CONFIRM_LINK_MAX_AGE``
    seconds. Raises ``Subscriber.DoesNotExist`` for an unknown uuid."""
    return _link_url("confirm", subscriber_uuid, CONFIRM)


def manage_url(subscriber_uuid: uuid.UUID) -> str:
    """The absolute magic link to the subscriber's settings page, as put in every digest
    and in the "email me my link" email. It works once (using it starts a browser
    session), for ``MANAGE_LINK_MAX_AGE`` seconds; a link made later voids none made
    before, using any one voids all made before it. Raises ``Subscriber.DoesNotExist``
    for an unknown uuid."""
    return _link_url("manage_link", subscriber_uuid, MANAGE)


def digest_web_url(digest: Digest) -> str:
    """The absolute "view in browser" URL of a :class:`digest.models.Digest`: its id,
    signed (``DIGEST_WEB`` salt); it does not expire."""
    token = signing.Signer(salt=DIGEST_WEB).sign(str(digest.pk))
    return settings.SITE_URL + reverse("digest_web", args=[token])


def read_digest_token(token: str) -> int:
    """The digest id of a :func:`digest_web_url` token; raises
    :class:`django.core.signing.BadSignature` when tampered with or malformed."""
    value = signing.Signer(salt=DIGEST_WEB).unsign(token)
    if not value.isdigit():
        raise signing.BadSignature("malformed token")
    return int(value)


def offer_fingerprint(choices: object) -> str:
    """16 hex digits of SHA-256 over a signup's choices (canonical JSON): which offer a
    link was made for."""
    text = json.dumps(choices, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def offer_url(subscriber: Subscriber) -> str:
    """The absolute link that applies the signup offered to ``subscriber``
    (:meth:`~subscriptions.models.Subscriber.offer_signup`), sent in the settings-link
    email. It names the subscriber, their ``link_counter`` ("sign out of every browser"
    voids it) and the offer's :func:`offer_fingerprint` (a newer signup voids it); it
    lasts ``MANAGE_LINK_MAX_AGE`` seconds."""
    fingerprint = offer_fingerprint(subscriber.offered_signup)
    value = f"{subscriber.uuid.hex}.{subscriber.link_counter}.{fingerprint}"
    token = signing.TimestampSigner(salt=OFFER).sign(value)
    return settings.SITE_URL + reverse("accept_offer", args=[token])


def read_offer_token(token: str, max_age: int) -> tuple[uuid.UUID, int, str]:
    """``(subscriber uuid, counter, offer fingerprint)`` of an :func:`offer_url` token.
    Raises :class:`django.core.signing.SignatureExpired` when older than ``max_age``
    seconds and :class:`django.core.signing.BadSignature` when tampered with, made for
    another purpose, or malformed."""
    value = signing.TimestampSigner(salt=OFFER).unsign(token, max_age=max_age)
    parts = value.split(".")
    try:
        hex_part, counter, fingerprint = parts
        return uuid.UUID(hex=hex_part), int(counter), fingerprint
    except ValueError:
        raise signing.BadSignature("malformed token") from None
