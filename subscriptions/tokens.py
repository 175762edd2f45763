"""Signed links, each salted with its purpose so a token for one cannot serve another.

Tokens sign the subscriber's public ``uuid`` with Django's :class:`TimestampSigner`
(HMAC-SHA256 over ``SECRET_KEY``); reading one checks the signature and its age.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.urls import get_urlconf, reverse
from django.utils.encoding import force_bytes

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
    "FEEDBACK",
    "MANAGE",
    "UNSUBSCRIBE",
    "confirm_url",
    "digest_web_url",
    "feedback_links",
    "feedback_max_age",
    "feedback_url",
    "make_link_token",
    "make_token",
    "manage_url",
    "read_digest_token",
    "read_feedback_token",
    "read_link_token",
    "read_token",
    "unsubscribe_url",
]

UNSUBSCRIBE = "subscriptions.unsubscribe"
CONFIRM = "subscriptions.confirm"
MANAGE = "subscriptions.manage"
DIGEST_WEB = "subscriptions.digest-web"
OFFER = "subscriptions.offer"
FEEDBACK = "subscriptions.feedback"


def make_token(subscriber_uuid: uuid.UUID, purpose: str) -> str:
    """A URL-safe token for ``purpose`` (one of this module's salts)."""
    return _signer(purpose)(subscriber_uuid.hex)


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
    return _token_url("unsubscribe", make_token(subscriber_uuid, UNSUBSCRIBE))


def make_link_token(subscriber_uuid: uuid.UUID, counter: int, purpose: str) -> str:
    """A single-use token: the uuid and the subscriber's ``link_counter`` when it was made,
    ``"<uuid hex>.<counter>"``, signed for ``purpose``. Spending it bumps the counter
    (:meth:`subscriptions.models.Subscriber.use_link`), which voids it and every older one.
    """
    return _signer(purpose)(f"{subscriber_uuid.hex}.{counter}")


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
    return _token_url("manage_link", token)


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
    return _token_url("digest_web", _signer(DIGEST_WEB, stamp=False)(str(digest.pk)))


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


def feedback_url(subscriber_uuid: uuid.UUID, paper_id: int, vote: int) -> str:
    """The absolute "more like this" (``vote`` 1) or "less like this" (``vote`` -1) link
    of one paper for one subscriber: ``"<uuid hex>.<paper id>.<vote>"`` signed with a
    timestamp (``FEEDBACK`` salt), so a link names one subscriber, one paper and one
    vote and none can be changed. Opening it shows a button; only the POST votes.
    It works for :func:`feedback_max_age` seconds. About 120 ASCII characters."""
    return _token_url("feedback", _signer(FEEDBACK)(f"{subscriber_uuid.hex}.{paper_id}.{vote}"))


@lru_cache(maxsize=32)
def _url_around(site_url: str, urlconf: str | None, name: str) -> tuple[str, str]:
    """``(what comes before a token, after it)`` in the absolute URL of view ``name``
    (one token argument): ``reverse`` costs ~40 µs, more than signing, and every digest
    makes three such links and two per paper."""
    marker = "TOKEN"
    before, after = (site_url + reverse(name, args=[marker], urlconf=urlconf)).split(marker)
    if after != "/":
        raise ImproperlyConfigured(f"the {name} URL must end with its token and a slash: {after}")
    return before, after


def _token_url(name: str, token: str) -> str:
    before, after = _url_around(settings.SITE_URL, get_urlconf(), name)
    return f"{before}{token}{after}"


@lru_cache(maxsize=16)
def _pads(secret_key: str, salt: str) -> tuple[Any, Any]:
    """The HMAC that Django's ``Signer(salt=salt)`` computes for each signature,
    prepared: its key derived as :func:`django.utils.crypto.salted_hmac` does (the hash
    of the salt, ``"signer"`` and the secret), then the inner and outer hashes fed their
    padded keys (RFC 2104), to be copied per message."""
    hasher = getattr(hashlib, signing.Signer(key=secret_key, salt=salt).algorithm)
    key = hasher(force_bytes(salt + "signer") + force_bytes(secret_key)).digest()
    inner, outer = hasher(), hasher()
    key = key.ljust(inner.block_size, b"\0")  # a digest is shorter than a block
    inner.update(bytes(b ^ 0x36 for b in key))
    outer.update(bytes(b ^ 0x5C for b in key))
    return inner, outer


def _signer(salt: str, *, stamp: bool = True) -> Callable[[str], str]:
    """``value`` → what ``TimestampSigner(salt=salt).sign(value)`` returns this second
    (``Signer(salt=salt).sign(value)`` when not ``stamp``), for many values.

    Django's signer derives its HMAC key for each signature (~12 µs); here it is derived
    once, as :func:`django.utils.crypto.salted_hmac` does (``hash(salt + "signer" +
    SECRET_KEY)`` keying an HMAC of the signer's algorithm), and each signature costs
    two copies of the prepared hashes (~2 µs; :func:`hmac.digest` takes ~5 µs).
    ``tests/test_feedback.py`` and ``tests/test_tokens.py`` check that Django's signer
    makes the same tokens and reads them."""
    inner, outer = _pads(settings.SECRET_KEY, salt)
    sep = ":"  # django.core.signing.Signer's default separator
    # TimestampSigner.timestamp(), appended to the value before it is signed.
    suffix = f"{sep}{signing.b62_encode(int(time.time()))}" if stamp else ""

    def sign(value: str) -> str:
        value += suffix
        digest = inner.copy()
        digest.update(value.encode())
        mac = outer.copy()
        mac.update(digest.digest())
        return f"{value}{sep}{signing.b64_encode(mac.digest()).decode()}"

    return sign


def feedback_links(subscriber_uuid: uuid.UUID) -> Callable[[int], tuple[str, str]]:
    """One subscriber's links for many papers: paper id → ``(more like this URL, less
    like this URL)``, each exactly what :func:`feedback_url` makes in the same second,
    signed by one :func:`_signer` (delivery makes two links per paper of every digest).
    """
    sign = _signer(FEEDBACK)
    before, after = _url_around(settings.SITE_URL, get_urlconf(), "feedback")
    head = subscriber_uuid.hex

    def links(paper_id: int) -> tuple[str, str]:
        return (
            f"{before}{sign(f'{head}.{paper_id}.1')}{after}",
            f"{before}{sign(f'{head}.{paper_id}.-1')}{after}",
        )

    return links


def feedback_max_age() -> int:
    """Seconds a :func:`feedback_url` link works: ``FEEDBACK_LINK_MAX_AGE``, and never
    less than the archive keeps a digest (``DIGEST_ARCHIVE_DAYS``), so every link of a
    digest one can still open works."""
    return max(settings.FEEDBACK_LINK_MAX_AGE, settings.DIGEST_ARCHIVE_DAYS * 86400)


def read_feedback_token(token: str) -> tuple[uuid.UUID, int, int]:
    """``(subscriber uuid, paper id, vote)`` of a :func:`feedback_url` token, ``vote``
    1 or -1.

    Raises :class:`django.core.signing.SignatureExpired` when older than
    :func:`feedback_max_age` and :class:`django.core.signing.BadSignature` when tampered
    with, made for another purpose, or malformed.
    """
    value = signing.TimestampSigner(salt=FEEDBACK).unsign(token, max_age=feedback_max_age())
    parts = value.split(".")
    if len(parts) != 3 or parts[2] not in ("1", "-1") or not parts[1].isdigit():
        raise signing.BadSignature("malformed token")
    try:
        return uuid.UUID(hex=parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        raise signing.BadSignature("malformed token") from None
