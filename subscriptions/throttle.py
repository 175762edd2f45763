"""Request throttles counted in Django's cache (Redis in production, so every web process
shares the counts).

A throttle allows ``limit`` requests per fixed window of ``period`` seconds per key. Keys
are hashed, so neither addresses nor IPs are stored in the cache in clear.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from ipware import get_client_ip

__all__ = ["allow", "client_ip"]


def client_ip(request: HttpRequest) -> str:
    """The client's address, an IPv6 address cut to its /64 network (one subscriber line
    usually holds a whole /64); ``"unknown"`` when missing or malformed.

    With ``settings.TRUSTED_PROXY_COUNT`` = 0 it is ``REMOTE_ADDR``. Behind N proxies
    that each append the address they were reached from to ``X-Forwarded-For``, it is
    the N-th entry from the right, read by django-ipware (``proxy_count`` = N - 1 in its
    terms: the proxies other than the last, whose entries the header holds); whatever a
    client wrote further left is ignored.
    """
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        raw, _ = get_client_ip(request, request_header_order=["REMOTE_ADDR"])
    else:
        raw, _ = get_client_ip(
            request,
            proxy_count=proxies - 1,
            request_header_order=["HTTP_X_FORWARDED_FOR"],
            strict=False,
        )
    try:
        address = ipaddress.ip_address(str(raw or ""))
    except ValueError:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def allow(scope: str, key: str) -> bool:
    """Count one request of ``key`` against ``settings.THROTTLES[scope]`` =
    ``(limit, period_seconds)``; True while the count in this window is within limit.

    Raises KeyError for an unknown scope.
    """
    limit, period = settings.THROTTLES[scope]
    window = int(time.time()) // period
    digest = hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()[:32]
    name = f"throttle:{scope}:{digest}:{window}"
    # add() only creates the counter when absent; incr() is atomic in Redis and LocMem.
    cache.add(name, 0, timeout=period + 1)
    try:
        count = cache.incr(name)
    except ValueError:  # expired between add() and incr()
        cache.add(name, 1, timeout=period + 1)
        count = 1
    return count <= limit
