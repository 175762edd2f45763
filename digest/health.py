"""``/healthz``: can this process reach the database and the Celery broker?

Load balancers, the container's ``HEALTHCHECK`` and monitoring poll it. It needs no
login and changes nothing, and being public it says only *which* dependency fails and
the kind of error: the driver's message (host, port, user, broker address) goes to the
log, never into the answer.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection

log = logging.getLogger(__name__)

# Seconds to wait for the broker; a health check must answer before its own timeout.
BROKER_TIMEOUT = 3.0


def _failed(name: str, exc: Exception) -> str:
    """``"error: <exception type>"``, the whole message logged (it names hosts, ports
    and users, which the public answer must not)."""
    log.error("healthz_%s_failed error=%s: %s", name, type(exc).__name__, exc)
    return f"error: {type(exc).__name__}"


def database_state() -> str:
    """``"ok"`` when a ``SELECT 1`` on the default database succeeds, else
    ``"error: <exception type>"`` (the driver's message is logged)."""
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "down"; the log says why
        return _failed("database", exc)
    return "ok"


def broker_state() -> str:
    """``"ok"`` when a connection to ``CELERY_BROKER_URL`` opens within
    :data:`BROKER_TIMEOUT` seconds, ``"in-process"`` when no broker is configured (tasks
    run inside the web process, as in the demo), else ``"error: <exception type>"``
    (the message is logged)."""
    if not settings.CELERY_BROKER_URL:
        return "in-process"
    try:
        with Connection(
            settings.CELERY_BROKER_URL,
            connect_timeout=BROKER_TIMEOUT,
            transport_options={
                "socket_connect_timeout": BROKER_TIMEOUT,
                "socket_timeout": BROKER_TIMEOUT,
            },
        ) as broker:
            broker.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT)
    except Exception as exc:  # any failure means "down"; the log says why
        return _failed("broker", exc)
    return "ok"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """GET → ``{"status": "ok" | "failing", "database": state, "broker": state,
    "failing": [names]}``; 200 when every state is ``ok`` (or ``in-process``), else 503,
    ``failing`` naming what is down."""
    states = {"database": database_state(), "broker": broker_state()}
    failing = [name for name, state in states.items() if state.startswith("error")]
    return JsonResponse(
        {"status": "failing" if failing else "ok", **states, "failing": failing},
        status=503 if failing else 200,
    )
