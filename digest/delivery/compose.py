"""Every email is three templates — ``emails/<kind>-subject.txt``, ``-body.txt`` and
``-body.html`` — rendered, the HTML's CSS inlined with premailer, and sent as
multipart/alternative through Django's mail API (so any django-anymail ESP works).

This module renders one email on its own. Digests, sent by the thousand, are composed
from pieces inlined once per batch by :mod:`digest.delivery.render`, which produces the same HTML.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, formatdate, make_msgid
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import RFC5322_EMAIL_LINE_LENGTH_LIMIT, forbid_multi_line_headers
from django.template.loader import render_to_string
from django.urls import reverse
from premailer import Premailer

__all__ = [
    "AlternativeEmail",
    "as_text",
    "LIST_KINDS",
    "base_context",
    "esp_stream",
    "feedback_id",
    "list_id",
    "inline_css",
    "make_email",
    "new_message_id",
    "message_id_domain",
    "render_parts",
]

_NEWLINE = re.compile(r"\r\n|\r|\n")  # what the email package splits lines on
_SOFT_LIMIT = 78  # RFC 5322 section 2.1.1: lines SHOULD be at most 78 characters
_PART_HEADERS = 'Content-Type: text/{subtype}; charset="utf-8"{nl}MIME-Version: 1.0{nl}'


_LINE_BREAKS_BUT_CRLF = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


class AlternativeEmail(EmailMultiAlternatives):
    """A text email with an HTML alternative that can also compose its own bytes.

    :meth:`to_bytes` returns the message Django's ``message().as_bytes()`` would: a
    multipart/alternative (RFC 2046 section 5.1.4) of the text body and the HTML, both
    UTF-8, ``7bit`` or ``8bit`` as they need, and the same headers, checked and
    encoded by Django's own ``forbid_multi_line_headers`` (RFC 2047 encoded-words for a
    non-ASCII Subject, IDNA for addresses, ``BadHeaderError`` for a newline). It writes
    them as one string instead of building the ``email`` package's object tree and
    running its generator, which cost ~1 ms of a digest's ~3 ms. Messages it does not
    cover — attachments, Cc or Reply-To, other alternatives, a non-UTF-8 encoding, a
    line over RFC 5322's 998 octets (which Django sends quoted-printable) — are
    serialised by Django. :class:`digest.mail.SmtpEmailBackend` sends these bytes.

    The characters other than CR and LF that Python's ``str.splitlines`` ends a line
    at (vertical tab, form feed, the information separators, NEL, U+2028, U+2029) are
    spaces in the Subject: the email package would write them as line breaks, cutting
    the header in two. CR and LF still raise ``BadHeaderError``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subject = _LINE_BREAKS_BUT_CRLF.sub(" ", str(self.subject))

    def to_bytes(self, linesep: str = "\n") -> bytes:
        """The whole message, headers and body, lines ending in ``linesep``.
        Raises ``django.core.mail.BadHeaderError`` as Django does."""
        parts = self._fast_parts(linesep)
        if parts is None:
            # Django's SafeMIME classes take ``linesep``; the stubs type the stdlib's.
            return self.message().as_bytes(linesep=linesep)  # type: ignore[call-arg]
        text, html = parts
        boundary = "=_" + secrets.token_hex(16)
        while boundary in text or boundary in html:  # 2^-128 a message, but never wrong
            boundary = "=_" + secrets.token_hex(16)
        nl = linesep
        head = [
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
            "MIME-Version: 1.0",
            *self._headers(nl),
        ]
        return "".join(
            (
                nl.join(head),
                f"{nl}{nl}--{boundary}{nl}",
                _PART_HEADERS.format(subtype="plain", nl=nl),
                f"Content-Transfer-Encoding: {_transfer_encoding(text)}{nl}{nl}",
                text,
                f"{nl}--{boundary}{nl}",
                _PART_HEADERS.format(subtype="html", nl=nl),
                f"Content-Transfer-Encoding: {_transfer_encoding(html)}{nl}{nl}",
                html,
                f"{nl}--{boundary}--{nl}",
            )
        ).encode("utf-8", "surrogateescape")

    def _fast_parts(self, linesep: str) -> tuple[str, str] | None:
        """The text and HTML bodies with ``linesep`` line ends, or None when this message
        is not one :meth:`to_bytes` composes itself."""
        encoding = self.encoding or settings.DEFAULT_CHARSET
        if (
            self.attachments
            or self.cc
            or self.reply_to
            or not self.body
            or str(encoding).lower() != "utf-8"
            or self.content_subtype != "plain"
            # Class attributes of Django's email classes that the stubs lack.
            or self.mixed_subtype != "mixed"  # type: ignore[attr-defined]
            or self.alternative_subtype != "alternative"  # type: ignore[attr-defined]
            or len(self.alternatives) != 1
            or self.alternatives[0][1] != "text/html"
            or any(
                name.lower() in {"from", "to", "cc", "reply-to", "content-type", "mime-version"}
                for name in self.extra_headers
            )
        ):
            return None
        text = _eight_bit(str(self.body), linesep)
        html = _eight_bit(str(self.alternatives[0][0]), linesep)
        if text is None or html is None:
            return None
        return text, html

    def _headers(self, linesep: str) -> list[str]:
        encoding = self.encoding or settings.DEFAULT_CHARSET
        values = [
            ("Subject", self.subject),
            ("From", self.from_email),
            ("To", ", ".join(str(address) for address in self.to)),
        ]
        names = {name.lower() for name in self.extra_headers}
        if "date" not in names:
            values.append(("Date", formatdate(localtime=settings.EMAIL_USE_LOCALTIME)))
        if "message-id" not in names:
            values.append(("Message-ID", make_msgid(domain=message_id_domain())))
        values.extend(self.extra_headers.items())
        lines = []
        for name, value in values:
            if name == "To" and not self.to:
                continue
            if name == "Subject":  # shared by many digests of an edition
                value = _encoded_subject(str(value), encoding)
            else:
                name, value = forbid_multi_line_headers(name, str(value), encoding)
            lines.append(_fold(f"{name}: {value}", linesep))
        return lines


@functools.lru_cache(maxsize=1024)
def _encoded_subject(subject: str, encoding: str) -> str:
    """Django's Subject header value (RFC 2047 encoded-words when not ASCII: ~0.15 ms
    each); raises ``BadHeaderError`` for a newline."""
    return str(forbid_multi_line_headers("Subject", subject, encoding)[1])


def _eight_bit(body: str, linesep: str) -> str | None:
    """``body`` with ``linesep`` line ends, or None when a line is longer than RFC
    5322's 998 octets (Django then encodes the part quoted-printable)."""
    lines = _NEWLINE.split(body) if "\r" in body else body.split("\n")
    # Four octets at most a character: only a long line needs encoding to measure.
    if max(map(len, lines)) * 4 > RFC5322_EMAIL_LINE_LENGTH_LIMIT and any(
        len(line.encode("utf-8", "surrogateescape")) > RFC5322_EMAIL_LINE_LENGTH_LIMIT
        for line in lines
    ):
        return None
    return linesep.join(lines)


def _transfer_encoding(body: str) -> str:
    """``7bit`` for ASCII, else ``8bit`` (RFC 2045 section 6.2), as the email package
    labels a UTF-8 part it does not encode."""
    return "7bit" if body.isascii() else "8bit"


def _fold(line: str, linesep: str) -> str:
    """A header line folded before words (RFC 5322 section 2.2.3) so that lines stay
    within 78 characters where the words allow (a longer word gets a line of its own);
    a header already folded by Django's encoding (a non-ASCII Subject) only gets
    ``linesep`` line ends."""
    if "\n" in line:
        return linesep.join(_NEWLINE.split(line))
    if len(line) <= _SOFT_LIMIT:
        return line
    first, *words = line.split(" ")  # first is "Name:"
    out = [first]
    for word in words:
        if word and len(out[-1]) + 1 + len(word) > _SOFT_LIMIT:
            out.append("")
        out[-1] += " " + word
    return linesep.join(out)


def as_text(value: str) -> str:
    """``value`` as a plain ``str``: never Django's ``SafeString``.

    The text parts are rendered with autoescaping off, so Django marks them safe; they
    hold subscribers' filters and papers' text unescaped, and a page that printed one
    marked safe would run that text as HTML. A plain ``str`` is escaped wherever a
    template shows it.
    """
    return str.__str__(value)


def message_id_domain() -> str:
    """The domain part of our Message-IDs: the host of ``SITE_URL``."""
    return urlsplit(settings.SITE_URL).hostname or "localhost"


def new_message_id(idstring: str | None = None) -> str:
    """A fresh RFC 5322 Message-ID, ``<…@host of SITE_URL>``."""
    return make_msgid(idstring=idstring, domain=message_id_domain())


def base_context() -> dict[str, Any]:
    """What every email template may use: ``site_name``, ``site_url`` and ``help_url``
    (the page on the filter language)."""
    return {
        "site_name": settings.SITE_NAME,
        "site_url": settings.SITE_URL,
        "help_url": settings.SITE_URL + reverse("filter_help"),
    }


def inline_css(html: str) -> str:
    """Move the ``<style>`` rules of ``html`` into ``style`` attributes (email clients
    drop ``<style>`` blocks). Network loading is off: only CSS in the document is used.
    The document is serialised as parsed, without re-indenting, so a fragment cut out of
    it is the same text wherever the fragment is placed. Rules that cannot be inlined
    (``@media``: the dark-mode colours) stay in a ``<style>`` block with their
    ``!important``, which they need to win over the inlined light colours."""
    return Premailer(
        html,
        base_url=settings.SITE_URL,
        strip_important=False,
        allow_network=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform(pretty_print=False)


def render_parts(kind: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(subject, text body, inlined HTML body)`` of an email of ``kind``."""
    ctx = {**base_context(), **context}
    subject = " ".join(render_to_string(f"emails/{kind}-subject.txt", ctx).split())
    text = as_text(render_to_string(f"emails/{kind}-body.txt", ctx))
    html = inline_css(render_to_string(f"emails/{kind}-body.html", ctx))
    return subject, text, html


LIST_KINDS = frozenset({"digest", "nothing"})
"""Kinds of email sent to the list of subscribers (the others answer one person's request)."""


def list_id() -> str:
    """The ``List-Id`` of our digests (RFC 2919): ``"<SITE_NAME> digests"
    <digests.<host of SITE_URL>>``, a dot-atom under a domain we own."""
    name = settings.SITE_NAME.replace("\\", "").replace('"', "")
    return f'"{name} digests" <digests.{message_id_domain()}>'


def feedback_id(kind: str) -> str:
    """The ``Feedback-ID`` of a kind of email, in the format of Gmail's Postmaster Tools
    (``a:b:c:SenderId``, up to four colon-separated fields, the last one the sender's
    constant id): ``<kind>:<host of SITE_URL>`` — so the feedback loop reports spam
    rates per kind."""
    return f"{kind}:{message_id_domain()}"


def esp_stream(kind: str) -> str:
    """``"bulk"`` for the list's mail (digests, "nothing matched" notes), else
    ``"transactional"`` (confirmations, settings links: one person's request)."""
    return "bulk" if kind in LIST_KINDS else "transactional"


def _route_to_stream(message: AlternativeEmail, kind: str) -> None:
    """Send ``message`` through the ESP's stream for its kind, where the ESP has one and
    the settings name it (django-anymail's ``esp_extra``, merged into the API call):
    Postmark's message stream (``MessageStream``: ``POSTMARK_BULK_STREAM``, e.g. its
    ``broadcast`` stream, or ``POSTMARK_TRANSACTIONAL_STREAM``); Amazon SES's
    configuration set (``ConfigurationSetName``: ``AMAZON_SES_BULK_CONFIGURATION_SET``
    or ``…_TRANSACTIONAL_…``); Mailgun, which has no streams, gets the stream as a tag.
    Other backends are left alone."""
    stream = esp_stream(kind)
    backend = settings.EMAIL_BACKEND
    if backend.startswith("anymail.backends.postmark."):
        name = settings.ESP_STREAMS["postmark"][stream]
        if name:
            message.esp_extra = {"MessageStream": name}  # type: ignore[attr-defined]
    elif backend.startswith("anymail.backends.amazon_ses."):
        name = settings.ESP_STREAMS["amazon_ses"][stream]
        if name:
            message.esp_extra = {"ConfigurationSetName": name}  # type: ignore[attr-defined]
    elif backend.startswith("anymail.backends.mailgun."):
        message.tags = [*getattr(message, "tags", []), stream]  # type: ignore[attr-defined]


def make_email(
    kind: str,
    context: Mapping[str, Any],
    to: str,
    *,
    headers: Mapping[str, str] | None = None,
    parts: tuple[str, str, str] | None = None,
) -> AlternativeEmail:
    """A multipart/alternative message of ``kind`` to one address, with a Message-ID
    (a fresh one unless ``headers`` carries it).

    ``parts`` passes an already rendered ``(subject, text, html)``. Every email carries
    ``Auto-Submitted: auto-generated`` (RFC 3834: an auto-responder answers none),
    ``X-Auto-Response-Suppress`` (the same for Exchange), a ``Feedback-ID``
    (:func:`feedback_id`), a ``Date`` in UTC written ``+0000`` (``-0000`` would say the
    zone is unknown, RFC 5322 section 3.3), and the digests a ``List-Id``
    (:func:`list_id`). ``headers`` may replace any of them. It goes through the ESP's
    bulk or transactional stream (:func:`esp_stream`) where the settings name one.
    """
    subject, text, html = parts or render_parts(kind, context)
    all_headers = {
        "Date": format_datetime(datetime.now(UTC).replace(microsecond=0)),
        "X-Email-Kind": kind,
        "Auto-Submitted": "auto-generated",
        "X-Auto-Response-Suppress": "All",
        "Feedback-ID": feedback_id(kind),
        **({"List-Id": list_id()} if kind in LIST_KINDS else {}),
        **(headers or {}),
    }
    all_headers.setdefault("Message-ID", new_message_id())
    message = AlternativeEmail(
        subject=as_text(subject), body=as_text(text), to=[to], headers=all_headers
    )
    message.attach_alternative(html, "text/html")
    _route_to_stream(message, kind)
    return message
