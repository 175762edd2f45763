"""Fetching pages over HTTP (digest.ingest.fetch), against a scripted server on 127.0.0.1."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from digest.ingest import fetch as fetch_module
from digest.ingest.fetch import FetchError, retry_after_seconds, user_agent

SERVER_DATE = "Wed, 12 Mar 2025 10:00:00 GMT"


def fetch(url: str, **options: object) -> fetch_module.FetchResult:
    """:func:`digest.ingest.fetch.fetch`, opted in to private addresses: the scripted
    server is on 127.0.0.1 (the refusal itself is tested at the end)."""
    return fetch_module.fetch(url, allow_private=True, **options)  # type: ignore[arg-type]


@dataclass
class Reply:
    """One scripted response. ``length=False`` sends the body without Content-Length,
    ending it by closing the connection; ``delay`` waits (seconds) before answering."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    length: bool = True
    delay: float = 0.0
    trickle: float = 0.0  # seconds between the body's bytes


class Server:
    """Serves queued :class:`Reply` values in order and records each request's headers."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[dict[str, str]] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def url(self, path: str = "/papers/date/2025-03-11") -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                server.requests.append({k.lower(): v for k, v in self.headers.items()})
                reply = server.replies.popleft() if server.replies else Reply(status=500)
                time.sleep(reply.delay)
                # send_response_only: the Date header is ours, so tests know the clock.
                self.send_response_only(reply.status)
                self.send_header("Date", SERVER_DATE)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.length:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    if reply.trickle:
                        for byte in reply.body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(reply.trickle)
                    else:
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading, as it should past its size cap

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


class Sleeps(list[float]):
    """A sleep function that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def test_it_returns_the_body_and_validators_of_a_200(server: Server, sleeps: Sleeps) -> None:
    server.queue(
        Reply(
            body=b"<!doctype html><p>papers</p>",
            headers={"ETag": '"v1"', "Last-Modified": "Tue, 11 Mar 2025 06:00:00 GMT"},
        )
    )

    result = fetch(server.url(), sleep=sleeps)

    assert result.status == 200
    assert result.content == b"<!doctype html><p>papers</p>"
    assert (result.etag, result.last_modified) == ('"v1"', "Tue, 11 Mar 2025 06:00:00 GMT")
    assert (result.not_modified, result.attempts, result.url) == (False, 1, server.url())
    assert sleeps == []


def test_it_names_the_project_in_its_user_agent(server: Server) -> None:
    server.queue(Reply(body=b"[]"), Reply(body=b"[]"))

    fetch(server.url(), project_url="https://papers.example.org/about")
    fetch(server.url())

    assert server.requests[0]["user-agent"] == (
        "trending-papers/0.1 (+https://papers.example.org/about)"
    )
    assert server.requests[1]["user-agent"] == user_agent()
    assert user_agent().startswith("trending-papers/0.1 (+https://")


def test_a_first_fetch_sends_no_validators(server: Server) -> None:
    server.queue(Reply(body=b"[]"))

    fetch(server.url())

    assert "if-none-match" not in server.requests[0]
    assert "if-modified-since" not in server.requests[0]


def test_a_304_answer_to_a_conditional_get_is_not_modified(server: Server) -> None:
    server.queue(Reply(status=304, headers={"ETag": '"v2"'}))

    result = fetch(server.url(), etag='"v1"', last_modified="Tue, 11 Mar 2025 06:00:00 GMT")

    assert server.requests[0]["if-none-match"] == '"v1"'
    assert server.requests[0]["if-modified-since"] == "Tue, 11 Mar 2025 06:00:00 GMT"
    assert (result.status, result.not_modified, result.content) == (304, True, None)
    assert result.etag == '"v2"'
    # Without a new Last-Modified the one held stays valid.
    assert result.last_modified == "Tue, 11 Mar 2025 06:00:00 GMT"


def test_a_429_is_retried_after_the_seconds_the_server_asks(server: Server, sleeps: Sleeps) -> None:
    server.queue(Reply(status=429, headers={"Retry-After": "7"}), Reply(body=b"[]"))

    result = fetch(server.url(), sleep=sleeps)

    assert (result.status, result.content, result.attempts) == (200, b"[]", 2)
    assert sleeps == [7.0]


def test_a_503_retry_after_date_is_read_on_the_servers_clock(
    server: Server, sleeps: Sleeps
) -> None:
    # The server's Date is in 2025, long before this test runs: measuring the wait on
    # our own clock would give zero.
    server.queue(
        Reply(status=503, headers={"Retry-After": "Wed, 12 Mar 2025 10:00:45 GMT"}),
        Reply(body=b"ok"),
    )

    result = fetch(server.url(), sleep=sleeps)

    assert result.content == b"ok"
    assert sleeps == [45.0]


def test_a_long_retry_after_is_capped(server: Server, sleeps: Sleeps) -> None:
    server.queue(Reply(status=429, headers={"Retry-After": "86400"}), Reply(body=b"ok"))

    fetch(server.url(), sleep=sleeps, max_retry_after=120)

    assert sleeps == [120.0]


def test_server_errors_back_off_exponentially_with_jitter(server: Server, sleeps: Sleeps) -> None:
    server.queue(Reply(status=503), Reply(status=500), Reply(status=502), Reply(body=b"ok"))

    result = fetch(server.url(), sleep=sleeps, jitter=lambda: 0.5)

    assert (result.content, result.attempts) == (b"ok", 4)
    # 1, 2, 4 seconds, each scaled by 0.5 + 0.5 / 2.
    assert sleeps == [0.75, 1.5, 3.0]


def test_backoff_waits_between_half_and_all_of_each_step(server: Server) -> None:
    low, high = Sleeps(), Sleeps()
    server.queue(Reply(status=500), Reply(body=b"ok"), Reply(status=500), Reply(body=b"ok"))

    fetch(server.url(), sleep=low, jitter=lambda: 0.0)
    fetch(server.url(), sleep=high, jitter=lambda: 0.999)

    assert low == [0.5]
    assert high == [pytest.approx(0.9995)]


def test_it_gives_up_when_the_attempts_run_out(server: Server, sleeps: Sleeps) -> None:
    server.queue(*[Reply(status=503, headers={"Retry-After": "1"})] * 3)

    with pytest.raises(FetchError) as raised:
        fetch(server.url(), sleep=sleeps, max_attempts=3)

    assert (raised.value.status, raised.value.attempts) == (503, 3)
    assert raised.value.url == server.url()
    assert raised.value.reason == "HTTP 503; gave up after 3 attempts"
    assert sleeps == [1.0, 1.0]
    assert len(server.requests) == 3


def test_a_client_error_fails_at_once(server: Server, sleeps: Sleeps) -> None:
    server.queue(Reply(status=404, body=b"not found"))

    with pytest.raises(FetchError) as raised:
        fetch(server.url(), sleep=sleeps)

    assert (raised.value.status, raised.value.attempts) == (404, 1)
    assert raised.value.reason == "HTTP 404 Not Found"
    assert str(raised.value) == f"{server.url()}: HTTP 404 Not Found"
    assert sleeps == []


def test_redirects_are_followed(server: Server) -> None:
    server.queue(
        Reply(status=301, headers={"Location": "/papers/date/2025-03-12"}),
        Reply(body=b"moved"),
    )

    result = fetch(server.url())

    assert result.content == b"moved"
    assert result.url == server.url("/papers/date/2025-03-12")


def test_a_declared_oversized_body_is_refused_unread(server: Server, sleeps: Sleeps) -> None:
    server.queue(Reply(body=b"x" * 5000))

    with pytest.raises(FetchError) as raised:
        fetch(server.url(), max_bytes=4096, sleep=sleeps)

    assert raised.value.reason == "response of 5,000 bytes is over the 4,096-byte limit"
    assert sleeps == []


def test_a_streamed_oversized_body_is_cut_off(server: Server) -> None:
    server.queue(Reply(body=b"x" * 300_000, length=False))

    with pytest.raises(FetchError, match="passed the 65,536-byte limit; stopped reading"):
        fetch(server.url(), max_bytes=65_536)


def test_the_cap_counts_decompressed_bytes(server: Server) -> None:
    bomb = gzip.compress(b"\0" * 1_000_000)
    server.queue(Reply(body=bomb, headers={"Content-Encoding": "gzip"}))

    with pytest.raises(FetchError, match="passed the 100,000-byte limit"):
        fetch(server.url(), max_bytes=100_000)


def test_a_body_of_exactly_the_limit_is_accepted(server: Server) -> None:
    server.queue(Reply(body=b"x" * 4096, length=False))

    assert fetch(server.url(), max_bytes=4096).content == b"x" * 4096


def test_a_read_timeout_is_retried(server: Server, sleeps: Sleeps) -> None:
    server.queue(Reply(body=b"late", delay=1.0), Reply(body=b"on time"))

    result = fetch(server.url(), timeout=0.2, sleep=sleeps, jitter=lambda: 0.0)

    assert (result.content, result.attempts) == (b"on time", 2)
    assert sleeps == [0.5]


def test_connection_refused_is_retried_then_fails(sleeps: Sleeps) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/papers"

    with pytest.raises(FetchError) as raised:
        fetch(url, max_attempts=3, sleep=sleeps, jitter=lambda: 0.0)

    assert raised.value.status is None
    assert raised.value.attempts == 3
    assert raised.value.reason.startswith("ConnectError")
    assert raised.value.reason.endswith("gave up after 3 attempts")
    assert sleeps == [0.5, 1.0]


def test_an_unsupported_url_fails_without_retrying(sleeps: Sleeps) -> None:
    with pytest.raises(FetchError) as raised:
        fetch("ftp://example.org/papers", sleep=sleeps)

    assert raised.value.attempts == 1
    assert sleeps == []


def test_a_shared_client_is_used_and_left_open(server: Server) -> None:
    server.queue(Reply(body=b"one"), Reply(body=b"two"))

    with httpx.Client() as client:
        first = fetch(server.url(), client=client)
        second = fetch(server.url(), client=client)
        assert not client.is_closed

    assert (first.content, second.content) == (b"one", b"two")


def test_max_attempts_below_one_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        fetch("http://127.0.0.1:9/", max_attempts=0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Wed, 12 Mar 2025 10:02:00 GMT", 120.0),
        ("Wednesday, 12-Mar-25 10:00:30 GMT", 30.0),
        ("Wed, 12 Mar 2025 09:00:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    value: str | None, expected: float | None
) -> None:
    now = datetime(2025, 3, 12, 10, 0, 0, tzinfo=UTC)

    assert retry_after_seconds(value, now=now) == expected


# --- Non-public addresses and the deadline ------------------------------------------------


def test_loopback_and_private_addresses_are_refused_unless_allowed(server: Server) -> None:
    server.queue(Reply(body=b"internal"))
    for url in (
        server.url(),
        "http://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
    ):
        with pytest.raises(FetchError, match="not a public address"):
            fetch_module.fetch(url, max_attempts=1)
    assert server.requests == []  # refused before any request
    assert fetch_module.fetch(server.url(), allow_private=True).content == b"internal"


def test_a_redirect_to_a_private_address_is_refused(server: Server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The first hop passes as if public (its checks are stood in for); the redirect to
    # localhost is checked on its own.
    real = fetch_module._refuse_private
    hops = []

    def first_hop_public(url, limits, attempt):  # type: ignore[no-untyped-def]
        hops.append(url)
        if len(hops) > 1:
            real(url, limits, attempt)

    monkeypatch.setattr(fetch_module, "_refuse_private", first_hop_public)
    monkeypatch.setattr(fetch_module, "_refuse_connected", lambda *args: None)
    port = server.httpd.server_address[1]
    server.queue(Reply(status=302, headers={"Location": f"http://localhost:{port}/secret"}))
    with pytest.raises(FetchError, match="localhost resolves to .*not a public address"):
        fetch_module.fetch(server.url(), max_attempts=1)
    assert len(server.requests) == 1  # the redirect's target was never asked
    assert hops == [server.url(), f"http://localhost:{port}/secret"]


def test_the_address_connected_to_is_checked_too(server: Server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # DNS that answers a public address to the check and then a private one (rebinding).
    real = socket.getaddrinfo
    public = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80))]
    calls = []

    def rebinding(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(host)
        return public if len(calls) == 1 else real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    server.queue(Reply(body=b"internal"))
    with pytest.raises(FetchError, match="127.0.0.1, which is not a public address"):
        fetch_module.fetch(server.url().replace("127.0.0.1", "localhost"), max_attempts=1)


def test_a_slow_trickle_stops_at_the_deadline(server: Server) -> None:
    server.queue(Reply(body=b"x" * 100, trickle=0.05))  # 5 s in all, each byte on time
    started = time.monotonic()
    with pytest.raises(FetchError, match="deadline passed"):
        fetch(server.url(), timeout=2.0, deadline=1.0, max_attempts=1)
    assert time.monotonic() - started < 2.0
