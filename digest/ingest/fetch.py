"""Fetch a papers page or API response over HTTP, politely and within limits.

One function, :func:`fetch`: a conditional GET (RFC 9110 section 13) with retries for
the failures that pass — connection errors, 5xx, and 429/503 with their ``Retry-After``
(RFC 9110 section 10.2.3; RFC 6585 section 4) — and a cap on the body size, read as a
stream so an oversized or endless response is cut off rather than held in memory.

A source URL is chosen by an admin user, and the fetch runs inside our network, so
unless the caller allows it (``allow_private``) it refuses hosts that resolve to a
loopback, private, link-local, shared, reserved, multicast or unspecified address —
checked after DNS resolution, on every redirect, and again on the address actually
connected to — and every fetch has a total ``deadline``: a server that trickles its
answer is cut off when the deadline passes, whatever the per-read timeout.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_PROJECT_URL",
    "DEFAULT_TIMEOUT",
    "FetchError",
    "FetchResult",
    "fetch",
    "retry_after_seconds",
    "user_agent",
]

DEFAULT_PROJECT_URL = "https://github.com/trending-papers/trending-papers"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
"""Seconds: 10 to connect, 30 for each read, write or wait for a pooled connection."""

DEFAULT_DEADLINE = 300.0
"""Seconds one fetch may take in all, every attempt, wait and read (the app passes its
``FETCH_DEADLINE`` setting)."""
MAX_REDIRECTS = 10

MAX_BYTES = 20 * 1024 * 1024
MAX_RETRY_AFTER = 120.0
"""Longest wait, in seconds, that a server's ``Retry-After`` may impose on one retry."""
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0

_RETRY_AFTER_STATUSES = frozenset({429, 503})


class FetchError(Exception):
    """A URL could not be fetched, for good: retries ran out or the failure cannot pass.

    ``url`` is the URL asked for, ``reason`` says what went wrong, ``status`` is the last
    HTTP status (``None`` when no response came), ``attempts`` how many requests were
    made. ``str(error)`` reads ``"<url>: <reason>"``.
    """

    def __init__(self, url: str, reason: str, *, status: int | None = None, attempts: int = 1):
        self.url = url
        self.reason = reason
        self.status = status
        self.attempts = attempts
        super().__init__(f"{url}: {reason}")


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of a fetch that succeeded.

    ``content`` holds the body (decompressed) of a 2xx response and is ``None`` when
    ``not_modified`` (a 304 answer to a conditional request). ``etag`` and
    ``last_modified`` are the validators to send next time, header values as the server
    wrote them: the response's, or on a 304 without them the ones sent. ``url`` is the
    final URL after redirects; ``attempts`` counts requests, retries included.
    """

    status: int
    content: bytes | None
    etag: str | None
    last_modified: str | None
    not_modified: bool
    url: str
    attempts: int


def user_agent(project_url: str = DEFAULT_PROJECT_URL) -> str:
    """The User-Agent we send: product, version and where to read about it, so site
    operators can see who is calling (RFC 9110 section 10.1.5)."""
    return f"trending-papers/0.1 (+{project_url})"


def fetch(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    client: httpx.Client | None = None,
    max_bytes: int = MAX_BYTES,
    max_attempts: int = 4,
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    project_url: str = DEFAULT_PROJECT_URL,
    max_retry_after: float = MAX_RETRY_AFTER,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
    allow_private: bool = False,
    deadline: float = DEFAULT_DEADLINE,
) -> FetchResult:
    """GET ``url`` and return its body, or tell that it has not changed.

    ``etag`` and ``last_modified`` are the validators of the copy already held (header
    values from an earlier :class:`FetchResult`); they are sent as ``If-None-Match`` and
    ``If-Modified-Since`` and a 304 answer gives ``not_modified=True``. Redirects are
    followed. ``client`` lets callers share connections (it is not closed); without it a
    client is made for this call. ``timeout`` is in seconds or an ``httpx.Timeout``.

    Retries, up to ``max_attempts`` requests in all: on 429 and 503 after the server's
    ``Retry-After`` (seconds or an HTTP-date, at most ``max_retry_after`` seconds), on
    other 5xx, timeouts and connection errors after an exponential backoff
    (1, 2, 4... seconds, at most 60, each scaled by 0.5-1.0 at random so that workers
    that failed together do not retry together). ``sleep(seconds)`` does the waiting
    and ``jitter()`` returns the random fraction in [0, 1); tests replace both.

    Without ``allow_private``, a URL (or a redirect) whose host resolves to an address
    that is not globally routable is refused (see the module docstring). The whole
    fetch, retries and waits included, ends after ``deadline`` seconds.

    Raises :class:`ValueError` when ``max_attempts`` is below 1, and
    :class:`FetchError` when retries run out, on any other 4xx or 3xx status, on
    a body larger than ``max_bytes`` (declared or streamed), on a non-public address,
    when the deadline passes, and on errors no retry can fix (a malformed URL, an
    unsupported scheme, a body that fails to decompress, too many redirects).
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
    headers = {"User-Agent": user_agent(project_url)}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified

    own_client = client is None
    http = client if client is not None else httpx.Client(timeout=timeout)
    limits = _Limits(time.monotonic() + deadline, allow_private)
    try:
        for attempt in range(1, max_attempts + 1):
            last = attempt == max_attempts
            try:
                outcome = _attempt(http, url, headers, timeout, max_bytes, attempt, limits)
            except _Retry as retry:
                if last:
                    raise FetchError(
                        url,
                        f"{retry.reason}; gave up after {attempt} attempts",
                        status=retry.status,
                        attempts=attempt,
                    ) from retry.__cause__
                delay = retry.delay
                if delay is None:
                    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
                    delay *= 0.5 + jitter() / 2
                delay = min(delay, max_retry_after)
                if time.monotonic() + delay >= limits.deadline:
                    raise FetchError(
                        url,
                        f"{retry.reason}; the {deadline:g}-second deadline leaves no time "
                        "for another attempt",
                        status=retry.status,
                        attempts=attempt,
                    ) from retry.__cause__
                sleep(delay)
                continue
            status, content, response_headers, final_url = outcome
            not_modified = status == 304
            return FetchResult(
                status=status,
                content=None if not_modified else content,
                etag=response_headers.get("ETag") or (etag if not_modified else None),
                last_modified=response_headers.get("Last-Modified")
                or (last_modified if not_modified else None),
                not_modified=not_modified,
                url=final_url,
                attempts=attempt,
            )
        raise AssertionError("unreachable: the last attempt returns or raises")
    finally:
        if own_client:
            http.close()


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value (RFC 9110 section 10.2.3):
    either delay-seconds (``"120"``) or an HTTP-date (``"Wed, 21 Oct 2025 07:28:00
    GMT"``), counted from ``now`` (an aware datetime). A date in the past gives ``0.0``;
    a missing or unreadable value gives ``None``."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 HTTP-dates are always GMT; email.utils marks "-0000" as naive.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class _Retry(Exception):
    """This attempt failed in a way that may pass; ``delay`` is the server's wish."""

    def __init__(self, reason: str, *, status: int | None = None, delay: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.delay = delay


@dataclass(frozen=True, slots=True)
class _Limits:
    deadline: float  # time.monotonic() by which the fetch ends
    allow_private: bool


def _refuse_private(url: str, limits: _Limits, attempt: int) -> None:
    """Raise :class:`FetchError` unless every address ``url``'s host resolves to is
    globally routable (or ``limits.allow_private``)."""
    if limits.allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return  # httpx refuses it with its own error
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:
        raise _Retry(f"cannot resolve {host}: {exc}") from exc
    for info in infos:
        _refuse_address(url, str(info[4][0]), attempt)


def _refuse_address(url: str, address: str, attempt: int) -> None:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if not ip.is_global or ip.is_multicast:
        raise FetchError(
            url,
            f"refused: {urlsplit(url).hostname} resolves to {ip}, which is not a public "
            "address (FETCH_ALLOW_PRIVATE_ADDRESSES allows it)",
            attempts=attempt,
        )


def _remaining(limits: _Limits, url: str, attempt: int) -> float:
    left = limits.deadline - time.monotonic()
    if left <= 0:
        raise FetchError(url, "the fetch deadline passed", attempts=attempt)
    return left


def _attempt(
    http: httpx.Client,
    url: str,
    headers: dict[str, str],
    timeout: httpx.Timeout | float,
    max_bytes: int,
    attempt: int,
    limits: _Limits,
) -> tuple[int, bytes, httpx.Headers, str]:
    """One request, its redirects followed by hand so that each hop's address is
    checked: ``(status, body, headers, final url)`` for a 2xx or 304, else
    :class:`_Retry` or :class:`FetchError`."""
    current = url
    try:
        for _hop in range(MAX_REDIRECTS + 1):
            _refuse_private(current, limits, attempt)
            left = _remaining(limits, url, attempt)
            hop_timeout = httpx.Timeout(timeout)
            hop_timeout = httpx.Timeout(
                connect=min(hop_timeout.connect or left, left),
                read=min(hop_timeout.read or left, left),
                write=min(hop_timeout.write or left, left),
                pool=min(hop_timeout.pool or left, left),
            )
            with http.stream(
                "GET", current, headers=headers, timeout=hop_timeout, follow_redirects=False
            ) as response:
                if not limits.allow_private:
                    _refuse_connected(response, url, attempt)
                status = response.status_code
                location = response.headers.get("Location")
                if response.is_redirect and location:
                    current = urljoin(current, location)
                    continue
                if status == 304 or 200 <= status < 300:
                    body = _read_capped(response, url, max_bytes, attempt, limits)
                    return status, body, response.headers, str(response.url)
                if status in _RETRY_AFTER_STATUSES:
                    raise _Retry(
                        f"HTTP {status}",
                        status=status,
                        delay=retry_after_seconds(
                            response.headers.get("Retry-After"), now=_server_now(response)
                        ),
                    )
                if status >= 500:
                    raise _Retry(f"HTTP {status}", status=status)
                raise FetchError(
                    url,
                    f"HTTP {status} {response.reason_phrase}".strip(),
                    status=status,
                    attempts=attempt,
                )
        raise FetchError(url, f"more than {MAX_REDIRECTS} redirects", attempts=attempt)
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise _Retry(f"{type(exc).__name__}: {exc}") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        # Unsupported scheme, a body that fails to decompress...
        raise FetchError(url, f"{type(exc).__name__}: {exc}", attempts=attempt) from exc


def _refuse_connected(response: httpx.Response, url: str, attempt: int) -> None:
    """Check the address the connection reached (DNS may answer differently the second
    time it is asked)."""
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if peer:
        _refuse_address(url, str(peer[0]), attempt)


def _read_capped(
    response: httpx.Response, url: str, max_bytes: int, attempt: int, limits: _Limits
) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(
            url,
            f"response of {int(declared):,} bytes is over the {max_bytes:,}-byte limit",
            status=response.status_code,
            attempts=attempt,
        )
    chunks = []
    size = 0
    # Counted after decompression, so a small gzip body cannot expand past the cap.
    for chunk in response.iter_bytes():
        if time.monotonic() > limits.deadline:
            raise FetchError(
                url,
                "the fetch deadline passed while the body was still arriving; stopped reading",
                status=response.status_code,
                attempts=attempt,
            )
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(
                url,
                f"response body passed the {max_bytes:,}-byte limit; stopped reading",
                status=response.status_code,
                attempts=attempt,
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _server_now(response: httpx.Response) -> datetime:
    """The server's clock from its ``Date`` header, so that an HTTP-date ``Retry-After``
    is measured on the clock that wrote it; ours when the header is missing or bad."""
    date_header = response.headers.get("Date")
    if date_header:
        try:
            server = parsedate_to_datetime(date_header)
            return server if server.tzinfo else server.replace(tzinfo=UTC)
        except (TypeError, ValueError, IndexError):
            pass
    return datetime.now(UTC)
