"""Recording SMTP servers on loopback, for the delivery tests and benchmarks.

:class:`SmtpSink` is an aiosmtpd server on 127.0.0.1 that accepts every message and
records its Message-ID, ``X-Digest-ID`` and recipients, so a run can check that every
digest arrived exactly once. It can be stopped and started again on the same port, to
play an outage.

:class:`PostfixSmtpSink` records the same, with Postfix's ``smtp-sink`` (a C program)
as the server: aiosmtpd runs in the measuring process and costs ~1.6 ms of CPU per 30 KB
message, smtp-sink ~0.25 ms, so a throughput bench uses it to keep the server's work off
the cores under test. It needs Debian's ``postfix`` package (``make bench`` installs it).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.net import free_port

__all__ = ["PostfixSmtpSink", "Received", "SmtpSink", "free_port"]


@dataclass(frozen=True)
class Received:
    """One message the sink accepted."""

    message_id: str
    digest_id: str
    to: tuple[str, ...]
    mail_from: str = ""


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
        if self.sink.keep_contents:
            self.sink.contents.append(envelope.content)
        self.sink._record(
            Received(
                message_id=str(headers.get("Message-ID", "")).strip(),
                digest_id=str(headers.get("X-Digest-ID", "")).strip(),
                to=tuple(envelope.rcpt_tos),
                mail_from=str(envelope.mail_from or ""),
            )
        )
        return "250 Message accepted for delivery"


class _Messages:
    """What both sinks answer about the messages in :attr:`received`."""

    received: list[Received]

    def _snapshot(self) -> list[Received]:
        return list(self.received)

    def __len__(self) -> int:
        return len(self.received)

    def copies_by_digest(self) -> Counter[str]:
        """How many messages arrived for each ``X-Digest-ID``."""
        return Counter(m.digest_id for m in self._snapshot())

    def message_ids_by_recipient(self) -> dict[str, list[str]]:
        """Recipient address → the Message-IDs it received, in order of arrival."""
        out: dict[str, list[str]] = {}
        for message in self._snapshot():
            for address in message.to:
                out.setdefault(address, []).append(message.message_id)
        return out


class SmtpSink(_Messages):
    """An SMTP server on ``127.0.0.1:port`` recording every message it accepts.

    ``delay`` is seconds spent on each message before it is accepted; addresses in
    ``refuse`` get a permanent 550 to RCPT TO (RFC 5321 section 4.2.2). With
    ``keep_contents``, :attr:`contents` holds each message's bytes as received, in
    order. Use as a context manager, or :meth:`start` and :meth:`stop` (then
    :meth:`start` again on the same port: connections are refused in between).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        delay: float = 0.0,
        refuse: tuple[str, ...] = (),
        keep_contents: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.delay = delay
        self.refuse = {address.lower() for address in refuse}
        self.keep_contents = keep_contents
        self.received: list[Received] = []
        self.contents: list[bytes] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    def _record(self, message: Received) -> None:
        with self._lock:
            self.received.append(message)

    def _snapshot(self) -> list[Received]:
        with self._lock:  # the server thread appends meanwhile
            return list(self.received)

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


SMTP_SINK = Path("/usr/sbin/smtp-sink")
# A line break followed by white space continues the header line (RFC 5322 section 2.2.3).
_FOLD = re.compile(rb"\r?\n(?=[ \t])")


def _parse_dump(path: Path) -> Received:
    """The :class:`Received` record of one smtp-sink(1) dump file (``-d``).

    Its header block, up to the first empty line, is smtp-sink's own records
    (``X-Client-Addr``, ``X-Client-Proto``, ``X-Helo-Args``, ``X-Mail-Args``, one
    ``X-Rcpt-Args: <address> [parameters]`` per RCPT TO, then a three-line ``Received``
    header) followed by the message's headers as received; see "DUMP FILE FORMAT" in
    smtp-sink(1). The body is not read. ``to`` is the RCPT addresses without ``<>``;
    ``message_id`` and ``digest_id`` are the first ``Message-ID`` and ``X-Digest-ID`` of
    the message ("" when absent), as :class:`SmtpSink` records them.
    """
    lines: list[bytes] = []
    with path.open("rb") as dump:
        for line in dump:
            if not line.strip(b"\r\n"):
                break
            lines.append(line)
    rcpts: list[str] = []
    fields: dict[str, str] = {}
    in_message = False  # past smtp-sink's Received header, in the message's own
    for line in _FOLD.sub(b"", b"".join(lines)).splitlines():
        name, _, value = line.decode("utf-8", "replace").partition(":")
        name, value = name.strip().lower(), value.strip()
        if not in_message:
            if name == "x-rcpt-args" and value:
                rcpts.append(value.split()[0].strip("<>"))
            elif name == "received":
                in_message = True
        elif name in ("message-id", "x-digest-id"):
            fields.setdefault(name, value)
    return Received(
        message_id=fields.get("message-id", ""),
        digest_id=fields.get("x-digest-id", ""),
        to=tuple(rcpts),
    )


class PostfixSmtpSink(_Messages):
    """Postfix's smtp-sink(1) on ``127.0.0.1:port``, each message it accepts recorded.

    smtp-sink runs as a subprocess and dumps each mail transaction to its own file
    (``-d``) in a temporary directory, on tmpfs (``/dev/shm``) when there is one so the
    disk is not part of the run either. :meth:`stop` ends it and reads every file into
    :attr:`received` (one :class:`Received` per message, oldest first by the file's
    modification time) and deletes the directory, so read :attr:`received`,
    :meth:`copies_by_digest` and :meth:`message_ids_by_recipient` after :meth:`stop` (or
    the ``with`` block); they are empty before. A file is complete once smtp-sink has
    replied 250 to the message's final ``.``, and smtp-sink deletes the file of a
    transaction its client abandons: stop the clients (and give in-flight messages a
    moment) before stopping the sink. Every message is accepted: there is no
    ``delay`` or ``refuse`` as in :class:`SmtpSink`.

    ``backlog`` is the listen(2) queue length; ``max_connections`` the connections served
    at once (``-m``; the rest wait in that queue). Raises :class:`FileNotFoundError` when
    ``/usr/sbin/smtp-sink`` is missing and :class:`RuntimeError` when it exits or does not
    answer within ``ready_timeout`` seconds (it greets as ``smtp-sink-<random>``, ``-h``).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        backlog: int = 256,
        max_connections: int = 256,
        ready_timeout: float = 10.0,
    ) -> None:
        self.port = port or free_port()
        self.backlog = backlog
        self.max_connections = max_connections
        self.ready_timeout = ready_timeout
        self.received: list[Received] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._name = "smtp-sink"

    def start(self) -> PostfixSmtpSink:
        """Start smtp-sink and return once it answers with its 220 greeting on :attr:`port`."""
        if not os.access(SMTP_SINK, os.X_OK):
            raise FileNotFoundError(
                f"{SMTP_SINK} not found: it is in Debian's postfix package; install Debian's "
                "postfix (`make bench` does, without configuring a mail server)"
            )
        shm = Path("/dev/shm")
        self._workdir = Path(
            tempfile.mkdtemp(prefix="smtp-sink-", dir=shm if shm.is_dir() else None)
        )
        dumps = self._workdir / "dumps"
        dumps.mkdir()
        command = [str(SMTP_SINK)]
        if os.geteuid() == 0:
            # As root smtp-sink needs a user to switch to, and that user writes the dumps.
            self._workdir.chmod(0o711)
            dumps.chmod(0o777)
            command += ["-u", "nobody"]
        template = str(dumps).replace("%", "%%") + "/msg."  # strftime(3); + random hex
        # A greeting name of its own tells this smtp-sink from anything else on the port.
        self._name = f"smtp-sink-{self._workdir.name.rpartition('-')[2]}"
        command += [
            "-h", self._name,
            "-m", str(self.max_connections),
            "-d", template,
            f"inet:127.0.0.1:{self.port}", str(self.backlog),
        ]  # fmt: skip
        log = self._workdir / "smtp-sink.log"
        with log.open("wb") as out:
            self._proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self._proc.poll() is not None:
                output = log.read_text(errors="replace").strip()
                self._discard()
                raise RuntimeError(f"smtp-sink exited ({self._proc.returncode}): {output}")
            if self._greets():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"smtp-sink not answering on 127.0.0.1:{self.port} after {self.ready_timeout} s"
                )
            time.sleep(0.02)

    def _greets(self) -> bool:
        """Whether this smtp-sink answers on the port with its 220 greeting."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                greeting = sock.recv(512)
                sock.sendall(b"QUIT\r\n")
        except OSError:
            return False
        return greeting.startswith(b"220 " + self._name.encode())

    def stop(self) -> None:
        """End smtp-sink, add the messages it dumped to :attr:`received`, delete the dumps."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        if self._workdir is not None:
            self.received.extend(self._read_dumps(self._workdir / "dumps"))
            self._discard()

    def _discard(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    @staticmethod
    def _read_dumps(directory: Path) -> list[Received]:
        dated = [
            (entry.stat().st_mtime_ns, entry.name, Path(entry.path))
            for entry in os.scandir(directory)
        ]
        return [_parse_dump(path) for _, _, path in sorted(dated)]

    def __enter__(self) -> PostfixSmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
