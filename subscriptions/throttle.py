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

__all__ = ["allow", "client_ip"]


def client_ip(request: HttpRequest) -> str:
    """The client's address from ``settings.CLIENT_IP_META`` (``REMOTE_ADDR`` unless a
    trusted proxy sets another), an IPv6 address cut to its /64 network, since one
    subscriber line usually holds a whole /64. ``"unknown"`` when missing or malformed."""
    raw = str(request.META.get(settings.CLIENT_IP_META, "")).split(",")[0].strip()
    try:
        address = ipaddress.ip_address(raw)
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
