"""A mail provider on loopback for throughput benchmarks: an SMTP server that answers
each message after a fixed latency and counts every message, cheaply.

Real providers take 50-200 ms to accept a message; a sender that waits on each one in
turn is throttled by that wait, not by its CPU. This server holds each message's final
``250`` for ``latency`` seconds (a timer, not a sleeping thread, so thousands can wait
at once) and costs little CPU: a bare :class:`asyncio.Protocol` that speaks just enough
SMTP (RFC 5321: ``EHLO``/``HELO``, ``MAIL``, ``RCPT``, ``DATA``, ``RSET``, ``NOOP``,
``QUIT``; ``PIPELINING`` and ``8BITMIME`` advertised), keeps no message bodies and reads
only two headers, ``Message-ID`` and ``X-Digest-ID``. Postfix's ``smtp-sink`` would cost
less still, but its ``-w`` delay is whole seconds.

Run it as its own process, so its CPU is measured apart from the senders'::

    python -m tests.support.mailsink --port 2525 --latency 0.05 --out result.json

Every ``--status-every`` seconds it writes ``<count> <time of the last accepted
message>`` (wall clock, seconds) to ``<out>.status``; on SIGTERM or SIGINT it writes
``<out>``: ``{"messages": n, "bytes": total size, "last_accepted": t, "cpu_seconds": s, "digests":
{X-Digest-ID: [Message-ID, ...]}}`` and exits. :class:`LatencySink` starts and stops it
from a benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support import ROOT
from tests.support.net import free_port

__all__ = ["LatencySink"]

_HEADER = re.compile(rb"^(message-id|x-digest-id):[ \t]*(.*?)\r?$", re.IGNORECASE | re.MULTILINE)


class _Stats:
    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.last_accepted = 0.0
        self.digests: dict[str, list[str]] = {}

    def record(self, message: bytes) -> None:
        self.bytes += len(message)
        end = message.find(b"\r\n\r\n")
        found = {
            name.lower(): value.strip().decode("ascii", "replace")
            for name, value in _HEADER.findall(message[: end if end >= 0 else len(message)])
        }
        self.digests.setdefault(found.get(b"x-digest-id", ""), []).append(
            found.get(b"message-id", "")
        )


class _Session(asyncio.Protocol):
    def __init__(self, stats: _Stats, latency: float) -> None:
        self.stats = stats
        self.latency = latency
        self.buffer = b""
        self.in_data = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return
                message, self.buffer = self.buffer[: end + 2], self.buffer[end + 5 :]
                self.in_data = False
                self.stats.record(message)
                loop = asyncio.get_running_loop()
                loop.call_later(self.latency, self._accepted)
                continue
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                return
            line, self.buffer = self.buffer[:line_end], self.buffer[line_end + 2 :]
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.transport.write(
                    b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
                )
            elif verb == b"DATA":
                self.in_data = True
                self.transport.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"QUIT":
                self.transport.write(b"221 Bye\r\n")
                self.transport.close()
                return
            else:  # HELO, MAIL, RCPT, RSET, NOOP: all fine
                self.transport.write(b"250 OK\r\n")

    def _accepted(self) -> None:
        self.stats.messages += 1
        self.stats.last_accepted = time.time()
        if not self.transport.is_closing():
            self.transport.write(b"250 OK queued\r\n")


async def _serve(port: int, latency: float, out: Path, status_every: float) -> None:
    stats = _Stats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Session(stats, latency), "127.0.0.1", port, backlog=1024, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    status = out.with_name(out.name + ".status")
    while not stop.is_set():
        status.write_text(f"{stats.messages} {stats.last_accepted}")
        try:
            await asyncio.wait_for(stop.wait(), status_every)
        except TimeoutError:
            pass
    server.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.write_text(
        json.dumps(
            {
                "messages": stats.messages,
                "bytes": stats.bytes,
                "last_accepted": stats.last_accepted,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "digests": stats.digests,
            }
        )
    )


class LatencySink:
    """This module's server as a subprocess on ``127.0.0.1:port``. :meth:`start` returns
    once it answers; :meth:`count` and :meth:`last_accepted` read its status file while
    it runs; :meth:`stop` ends it and returns its result (see the module docstring).
    Raises :class:`RuntimeError` when it does not answer within 10 s."""

    def __init__(self, workdir: Path, *, latency: float = 0.05, port: int | None = None):
        self.port = port or free_port()
        self.latency = latency
        self.out = workdir / f"sink-{self.port}.json"
        self.status = self.out.with_name(self.out.name + ".status")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LatencySink:
        command = [sys.executable, "-m", "tests.support.mailsink", "--port", str(self.port)]
        command += ["--latency", str(self.latency), "--out", str(self.out)]
        self._proc = subprocess.Popen(command, cwd=ROOT)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"220"):
                        sock.sendall(b"QUIT\r\n")
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline or self._proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"the mail sink did not answer on port {self.port}")
            time.sleep(0.05)

    def _status(self) -> tuple[int, float]:
        try:
            count, last = self.status.read_text().split()
        except (OSError, ValueError):
            return 0, 0.0
        return int(count), float(last)

    def count(self) -> int:
        """Messages accepted so far (as of the last status write)."""
        return self._status()[0]

    def stop(self) -> dict:
        """End the server; its result (empty when it never ran)."""
        if self._proc is None:
            return {}
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            self._proc.wait(timeout=30)
        self._proc = None
        try:
            return json.loads(self.out.read_text())
        except (OSError, ValueError):
            return {}

    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per message")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--status-every", type=float, default=0.25)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(_serve(args.port, args.latency, args.out, args.status_every))


if __name__ == "__main__":
    main()
