"""What the delivery benches and tests share: a recording SMTP server on loopback.

:class:`SmtpSink` is an aiosmtpd server on 127.0.0.1 that accepts every message and
records its Message-ID, ``X-Digest-ID`` and recipients, so a run can check that every
digest arrived exactly once. It can be stopped and started again on the same port, to
play an outage.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller

__all__ = ["Received", "SmtpSink", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Received:
    """One message the sink accepted."""

    message_id: str
    digest_id: str
    to: tuple[str, ...]


class _Recorder:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.sink.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.delay:
            # A server that takes its time to accept, as real ones do.
            await asyncio.sleep(self.sink.delay)
        headers = BytesHeaderParser(policy=default_policy).parsebytes(envelope.content)
        self.sink._record(
            Received(
                message_id=str(headers.get("Message-ID", "")).strip(),
                digest_id=str(headers.get("X-Digest-ID", "")).strip(),
                to=tuple(envelope.rcpt_tos),
            )
        )
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on ``127.0.0.1:port`` recording every message it accepts.

    ``delay`` is seconds spent on each message before it is accepted; addresses in
    ``refuse`` get a permanent 550 to RCPT TO (RFC 5321 section 4.2.2). Use as a context
    manager, or :meth:`start` and :meth:`stop` (then :meth:`start` again on the same
    port: connections are refused in between).
    """

    def __init__(
        self, port: int | None = None, *, delay: float = 0.0, refuse: tuple[str, ...] = ()
    ) -> None:
        self.port = port or free_port()
        self.delay = delay
        self.refuse = {address.lower() for address in refuse}
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    def _record(self, message: Received) -> None:
        with self._lock:
            self.received.append(message)

    def __len__(self) -> int:
        return len(self.received)

    def start(self) -> SmtpSink:
        """Listen (again). Raises OSError when the port is taken."""
        self._controller = Controller(
            _Recorder(self),
            hostname="127.0.0.1",
            port=self.port,
            data_size_limit=10_000_000,
            ready_timeout=10,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening; connecting clients are refused until :meth:`start`."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def copies_by_digest(self) -> Counter[str]:
        """How many messages arrived for each ``X-Digest-ID``."""
        with self._lock:
            return Counter(m.digest_id for m in self.received)

    def message_ids_by_recipient(self) -> dict[str, list[str]]:
        """Recipient address → the Message-IDs it received, in order of arrival."""
        out: dict[str, list[str]] = {}
        with self._lock:
            for message in self.received:
                for address in message.to:
                    out.setdefault(address, []).append(message.message_id)
        return out
