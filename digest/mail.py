"""The local mail backend: each message written to ``OUTBOX_DIR`` as a ``.eml`` file,
with its HTML alternative beside it as ``.html`` so a person can open it in a browser."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend

__all__ = ["OutboxEmailBackend", "outbox_name"]


def outbox_name(message: EmailMessage) -> str:
    """The file stem a message is written under: ``digest-<id>`` for digests (from the
    ``X-Digest-ID`` header), else a hash of the Message-ID."""
    digest_id = message.extra_headers.get("X-Digest-ID")
    if digest_id and re.fullmatch(r"\d+", str(digest_id)):
        return f"digest-{digest_id}"
    msgid = str(message.extra_headers.get("Message-ID", "")) or repr(message.to)
    kind = re.sub(r"[^a-z-]", "", str(message.extra_headers.get("X-Email-Kind", "mail")))
    return f"{kind or 'mail'}-{hashlib.sha1(msgid.encode()).hexdigest()[:12]}"


class OutboxEmailBackend(BaseEmailBackend):
    """Writes ``<OUTBOX_DIR>/<name>.eml`` and ``<name>.html``; never sends anything."""

    def __init__(self, *args: object, outbox_dir: str | Path | None = None, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.outbox_dir = Path(outbox_dir or settings.OUTBOX_DIR)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            stem = outbox_name(message)
            (self.outbox_dir / f"{stem}.eml").write_bytes(message.message().as_bytes())
            for content, mimetype in getattr(message, "alternatives", []):
                if mimetype == "text/html":
                    (self.outbox_dir / f"{stem}.html").write_text(content, encoding="utf-8")
        return len(email_messages)
