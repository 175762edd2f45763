"""``manage.py read_bounces``: bounces and complaints of the SMTP path, from the bounce
mailbox or piped by the MTA (see :mod:`digest.delivery.bounces`)."""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from digest.delivery.bounces import Outcome, handle, read_mailbox


def describe(outcome: Outcome) -> str:
    """One line: ``bounce: bounced ada@example.org (digest 42)`` per event, or
    ``ignored: auto-reply``."""
    if not outcome.events:
        return f"{outcome.kind}: {outcome.why or 'seen before'}"
    return "; ".join(
        f"{outcome.kind}: {e.event_type} {e.recipient} (digest {e.digest_id})"
        for e in outcome.events
    )


class Command(BaseCommand):
    help = (
        "Handle delivery status notifications and complaints: read the mailbox of "
        "BOUNCE_MAILBOX_URL (or --url), or one message from standard input with '-' "
        "(for an MTA pipe: read_bounces - --recipient ${recipient})."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", nargs="?", help="'-' to read one message from stdin")
        parser.add_argument("--url", help="imaps://user:password@host/INBOX or pop3s://…")
        parser.add_argument("--recipient", help="the envelope recipient (the VERP address)")
        parser.add_argument("--keep", action="store_true", help="leave messages in the mailbox")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["source"] == "-":
            raw = sys.stdin.buffer.read()
            if not raw.strip():
                raise CommandError("no message on standard input")
            self.stdout.write(describe(handle(raw, envelope_to=options["recipient"])))
            return
        if options["source"]:
            raise CommandError(f"unknown source {options['source']!r}: use '-' or --url")
        url = options["url"] or settings.BOUNCE_MAILBOX_URL
        if not url:
            raise CommandError("set BOUNCE_MAILBOX_URL, pass --url, or pipe a message with '-'")
        try:
            for _, outcome in read_mailbox(url, delete=not options["keep"]):
                self.stdout.write(describe(outcome))
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc
