"""Bounces and complaints without an ESP webhook: the SMTP path's bounce mailbox.

Digests sent by :class:`digest.mail.SmtpEmailBackend` carry a bounce address of the
operator's, one per digest (VERP: ``bounces+d42-1a2b3c4d5e@papers.example.org`` for
``BOUNCE_ADDRESS=bounces@papers.example.org``; the suffix is an HMAC of the digest id,
so a forged report cannot name someone else's digest). Receiving servers send their
delivery status notifications (DSNs, RFC 3464) and complaints (ARF, RFC 5965) there.
:func:`read_mailbox` reads that mailbox — IMAP or POP3 through the standard library,
or one message piped by the MTA (``manage.py read_bounces -``) — and :func:`handle`
classifies each message:

* a DSN: flufl.bounce (GNU Mailman's detectors: RFC 3464 DSNs and the formats of
  Postfix, Exim, qmail, Exchange, Yahoo…) gives the permanently and temporarily failed
  addresses;
* a feedback report (``multipart/report; report-type=feedback-report``): a complaint;
* anything else — an out-of-office or other auto-reply, a person's answer — is
  ignored.

Each failure becomes the tracking event an ESP would have posted (``bounced`` /
``invalid`` for a permanent failure, ``deferred`` for a temporary one, ``complained``)
and goes through :func:`digest.delivery.tracking.record_event`: the same hard bounce,
soft bounce and complaint handling as the ESP webhooks, stored once per report.
"""

from __future__ import annotations

import email
import hashlib
import imaplib
import logging
import poplib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.utils import parseaddr
from urllib.parse import unquote, urlsplit

from anymail.signals import AnymailTrackingEvent
from django.conf import settings
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from flufl.bounce import all_failures

from digest.delivery.tracking import record_event
from digest.models import DeliveryEvent, Digest

log = logging.getLogger(__name__)

__all__ = ["Outcome", "handle", "parse_verp", "read_mailbox", "verp_address"]

ESP_NAME = "smtp"
_VERP_RE = re.compile(r"^(?P<local>[^+@]+)\+d(?P<id>\d+)-(?P<sig>[0-9a-f]{10})@(?P<domain>.+)$")


def _signature(digest_id: int) -> str:
    return salted_hmac("digest.delivery.bounces", str(digest_id)).hexdigest()[:10]


def verp_address(digest_id: int) -> str | None:
    """The envelope sender of digest ``digest_id``: ``BOUNCE_ADDRESS`` with ``+d<id>-<hmac>``
    added to its local part, or None when ``BOUNCE_ADDRESS`` is not set."""
    local, _, domain = settings.BOUNCE_ADDRESS.rpartition("@")
    if not local or not domain:
        return None
    return f"{local}+d{digest_id}-{_signature(digest_id)}@{domain}"


def parse_verp(address: str) -> int | None:
    """The digest id in a bounce address made by :func:`verp_address`, or None when the
    address is not one or its HMAC is wrong."""
    match = _VERP_RE.match(parseaddr(address)[1].lower())
    if not match:
        return None
    digest_id = int(match["id"])
    return digest_id if constant_time_compare(match["sig"], _signature(digest_id)) else None


@dataclass(frozen=True)
class Outcome:
    """What :func:`handle` made of one message: ``kind`` is ``bounce``, ``complaint``
    or ``ignored``; ``events`` the delivery events stored (none for a report seen
    before); ``why`` a short reason for ``ignored``."""

    kind: str
    events: tuple[DeliveryEvent, ...] = ()
    why: str = ""


_AUTO_REPLY_SUBJECT = re.compile(
    r"^(auto(matic)?[ -]?(reply|response)|out of (the )?office|abwesenheit|r[ée]ponse automatique)",
    re.I,
)


def _is_auto_reply(message: Message) -> bool:
    """An out-of-office or other auto-reply (RFC 3834 ``Auto-Submitted: auto-replied``,
    Exchange's ``X-Auto-Response-Suppress``/``X-Autoreply``, ``Precedence: auto_reply``,
    or a subject that says so) — that is not a delivery report."""
    auto = str(message.get("Auto-Submitted", "")).lower().startswith("auto-replied")
    return (
        auto
        or bool(message.get("X-Autoreply") or message.get("X-Autorespond"))
        or str(message.get("Precedence", "")).lower() == "auto_reply"
        or bool(_AUTO_REPLY_SUBJECT.match(str(message.get("Subject", "")).strip()))
    )


def _report_type(message: Message) -> str:
    if message.get_content_type() != "multipart/report":
        return ""
    return str(message.get_param("report-type", "")).lower()


def _original_headers(message: Message) -> Message | None:
    """The headers of the message that bounced, from a ``message/rfc822`` or
    ``text/rfc822-headers`` part (RFC 3462), or None."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif kind == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                return email.message_from_bytes(raw)
    return None


def _digest_id(message: Message, envelope_to: str | None) -> int | None:
    """The digest a report is about: by the VERP address it was sent to (the MTA's
    envelope recipient, else ``Delivered-To``, ``X-Original-To`` or ``To``), else by
    the Message-ID of the original message it quotes, which only the digest's
    recipient and its servers have seen. None when neither names a digest of ours: a
    report anyone could have written about anyone is not acted on."""
    addresses = [
        envelope_to,
        *message.get_all("Delivered-To", []),
        *message.get_all("X-Original-To", []),
        message.get("To"),
    ]
    for address in addresses:
        if address and (found := parse_verp(str(address))) is not None:
            return found
    quoted = _quoted_message_id(message)
    if quoted:
        bare = quoted.strip("<>")
        return Digest.objects.filter(message_id=f"<{bare}>").values_list("pk", flat=True).first()
    return None


def _quoted_message_id(message: Message) -> str:
    original = _original_headers(message)
    return str(original.get("Message-ID", "")).strip() if original is not None else ""


def _event(
    message: Message,
    *,
    event_type: str,
    reason: str,
    recipient: str,
    digest_id: int | None,
    index: int,
) -> AnymailTrackingEvent:
    report_id = (
        str(message.get("Message-ID", "")).strip()
        or f"<sha256-{hashlib.sha256(message.as_bytes()).hexdigest()}>"
    )
    return AnymailTrackingEvent(
        event_type=event_type,
        timestamp=timezone.now(),
        event_id=f"{report_id[:240]}#{index}",  # one report may name several recipients
        recipient=recipient,
        reject_reason=reason,
        description=str(message.get("Subject", ""))[:500],
        mta_response=_diagnostic(message),
        message_id=_quoted_message_id(message),
        metadata={"digest_id": str(digest_id)} if digest_id is not None else {},
        esp_event={
            "from": str(message.get("From", "")),
            "subject": str(message.get("Subject", "")),
            "message_id": report_id,
        },
    )


def _diagnostic(message: Message) -> str:
    """The first ``Diagnostic-Code`` of a DSN (RFC 3464 section 2.3.6), or ``""``."""
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in part.get_payload() or []:
                if isinstance(block, Message) and block.get("Diagnostic-Code"):
                    return " ".join(str(block["Diagnostic-Code"]).split())[:1000]
    return ""


def _text(address: bytes | str) -> str:
    return address.decode("utf-8", "replace") if isinstance(address, bytes) else address


def _statuses(message: Message) -> dict[str, str]:
    """Recipient address (lower case) → the ``Status`` its DSN block reports."""
    out = {}
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in part.get_payload() or []:
            if not isinstance(block, Message):
                continue
            recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
            address = recipient.partition(";")[2].strip().strip("<>").lower()
            if address:
                out[address] = str(block.get("Status", "")).strip()
    return out


def _feedback_recipient(message: Message) -> str:
    """The complaining address of a feedback report: its original message's ``To``."""
    original = _original_headers(message)
    return parseaddr(str(original.get("To", "")))[1] if original is not None else ""


def handle(raw: bytes, *, envelope_to: str | None = None) -> Outcome:
    """Classify one message of the bounce mailbox and act on it (see the module
    docstring). ``envelope_to`` is the envelope recipient when the MTA pipes it (the
    VERP address). Never raises for a malformed message: it is ignored."""
    message = email.message_from_bytes(raw)
    digest_id = _digest_id(message, envelope_to)
    report = _report_type(message)
    if report == "feedback-report":
        if digest_id is None:
            return Outcome("ignored", why="names no digest of ours")
        recipient = _feedback_recipient(message)
        event = _event(
            message,
            event_type="complained",
            reason="spam",
            recipient=recipient,
            digest_id=digest_id,
            index=0,
        )
        stored = record_event(event, ESP_NAME)
        return Outcome("complaint", (stored,) if stored else ())
    try:
        temporary, permanent = all_failures(message)
    except Exception as exc:  # a detector choking on a malformed message
        log.warning("bounce_unreadable error=%r", exc)
        return Outcome("ignored", why="unreadable")
    if not temporary and not permanent:
        why = "auto-reply" if _is_auto_reply(message) else "not a delivery report"
        return Outcome("ignored", why=why)
    if digest_id is None:
        return Outcome("ignored", why="names no digest of ours")
    events = []
    # A "failed" report whose status is persistent-transient (RFC 3463 class 4, or a
    # full mailbox, 5.2.2) is a soft bounce: the address exists.
    statuses = _statuses(message)
    soft = {a for a in permanent if statuses.get(_text(a).lower(), "").startswith(("4.", "5.2.2"))}
    failures = [(a, "bounced", "bounced") for a in sorted(permanent - soft)] + [
        (a, "deferred", "other") for a in sorted((temporary | soft) - (permanent - soft))
    ]
    for index, (address, event_type, reason) in enumerate(failures):
        recipient = _text(address)
        stored = record_event(
            _event(
                message,
                event_type=event_type,
                reason=reason,
                recipient=recipient,
                digest_id=digest_id,
                index=index,
            ),
            ESP_NAME,
        )
        if stored is not None:
            events.append(stored)
    return Outcome("bounce", tuple(events))


# --- Mailboxes ----------------------------------------------------------------------------


def read_mailbox(url: str, *, delete: bool = True) -> Iterator[tuple[bytes, Outcome]]:
    """Each message of the mailbox at ``url`` with what :func:`handle` made of it,
    deleted once handled unless ``delete`` is False. ``url`` is
    ``imaps://user:password@host[:port]/FOLDER`` (or ``imap://``, folder ``INBOX`` when
    omitted) or ``pop3s://user:password@host[:port]`` (or ``pop3://``); user and
    password percent-encoded. Raises ValueError for another scheme, and the library's
    ``imaplib.IMAP4.error``, ``poplib.error_proto`` or ``OSError`` when the server
    fails; a message already handled stays handled."""
    parts = urlsplit(url)
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    host = parts.hostname or "localhost"
    if parts.scheme in {"imap", "imaps"}:
        yield from _read_imap(parts.scheme, host, parts.port, user, password, parts.path, delete)
    elif parts.scheme in {"pop3", "pop3s"}:
        yield from _read_pop3(parts.scheme, host, parts.port, user, password, delete)
    else:
        raise ValueError(
            f"BOUNCE_MAILBOX_URL must be imap(s):// or pop3(s)://, not {parts.scheme!r}"
        )


def _read_imap(
    scheme: str, host: str, port: int | None, user: str, password: str, path: str, delete: bool
) -> Iterator[tuple[bytes, Outcome]]:
    client = (
        imaplib.IMAP4_SSL(host, port or 993)
        if scheme == "imaps"
        else imaplib.IMAP4(host, port or 143)
    )
    try:
        client.login(user, password)
        client.select(unquote(path.strip("/")) or "INBOX")
        _, data = client.uid("SEARCH", "ALL")  # type: ignore[arg-type]
        for uid in (data[0] or b"").split():
            _, fetched = client.uid("FETCH", uid, "(RFC822)")  # type: ignore[arg-type]
            raw = next(item[1] for item in fetched if isinstance(item, tuple))
            yield raw, handle(raw)
            if delete:
                client.uid("STORE", uid, "+FLAGS", r"(\Deleted)")  # type: ignore[arg-type]
        if delete:
            client.expunge()
    finally:
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def _read_pop3(
    scheme: str, host: str, port: int | None, user: str, password: str, delete: bool
) -> Iterator[tuple[bytes, Outcome]]:
    client = (
        poplib.POP3_SSL(host, port or 995) if scheme == "pop3s" else poplib.POP3(host, port or 110)
    )
    try:
        client.user(user)
        client.pass_(password)
        count, _ = client.stat()
        for number in range(1, count + 1):
            _, lines, _ = client.retr(number)
            raw = b"\r\n".join(lines) + b"\r\n"
            yield raw, handle(raw)
            if delete:
                client.dele(number)
    finally:
        client.quit()  # deletions take effect here (RFC 1939 UPDATE state)
