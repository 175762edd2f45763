"""Bounces, complaints and deliveries reported by the ESP.

The ESP posts its events to django-anymail's tracking webhooks (``/esp/<esp>/tracking/``,
mounted in :mod:`digest.urls` by :func:`webhook_urlpatterns`: only the ESPs of
``settings.ESP_WEBHOOKS``, and only while ``ANYMAIL["WEBHOOK_SECRET"]`` basic auth and,
for an ESP that signs its posts, the signing key are configured; anymail checks both).
Anymail normalises them and sends its ``tracking`` signal;
:func:`record_tracking_event` stores each event once as a :class:`DeliveryEvent` and acts
on the subscriber (event types and reject reasons are anymail's:
https://anymail.dev/en/stable/sending/tracking/#normalized-tracking-event):

* a hard bounce (``bounced`` with reject reason ``bounced`` or ``invalid``), a
  ``rejected`` address or a ``complained`` spam complaint suppresses the address at once;
* a soft bounce (``deferred``, or ``bounced`` for another reason such as ``timed_out``)
  of a digest we sent counts once per digest; ``SOFT_BOUNCE_LIMIT`` in a row suppress
  it, and a ``delivered`` event ends the run. A soft bounce naming no digest of ours is
  stored but not counted: it cannot be told from the ESP's retries of one message;
* ``unsubscribed`` (the ESP's own unsubscribe or suppression list) unsubscribes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from anymail.signals import AnymailTrackingEvent, tracking
from django.conf import settings
from django.db import IntegrityError, transaction
from django.dispatch import receiver
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.urls import URLPattern, path

from digest.models import DeliveryEvent, Digest
from subscriptions.models import Subscriber

log = logging.getLogger(__name__)

__all__ = ["record_event", "record_tracking_event", "webhook_urlpatterns", "webhook_refusal"]

HARD_REASONS = {"bounced", "invalid"}
SOFT_TYPES = {"deferred", "bounced"}
# Postmark reports a soft bounce as Type "SoftBounce", which anymail maps to a bounce
# with reason "bounced" like a hard one (https://postmarkapp.com/developer/api/bounce-api
# #bounce-types): tell them apart by the ESP's own field.
_SOFT_ESP_TYPES = {"SoftBounce", "Transient", "DnsError"}


def webhook_refusal(esp: str) -> str | None:
    """Why ``esp``'s tracking webhook is not served now, or None when it is: it must be
    listed in ``settings.ESP_WEBHOOKS``, ``ANYMAIL["WEBHOOK_SECRET"]`` must hold basic
    auth credentials, and an ESP that signs its posts needs its key
    (``settings.ESP_WEBHOOK_SIGNING_KEYS``). Without them anymail would accept a forged
    post from anyone (it only warns), and a post can suppress any address."""
    if esp not in settings.ESP_WEBHOOKS:
        return "not served"
    anymail = getattr(settings, "ANYMAIL", {})
    if not anymail.get("WEBHOOK_SECRET"):
        return "ANYMAIL WEBHOOK_SECRET is not set"
    key = settings.ESP_WEBHOOK_SIGNING_KEYS.get(esp)
    if key and not anymail.get(key):
        return f"ANYMAIL {key} is not set"
    return None


def _guarded(esp: str, view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)  # keeps anymail's csrf_exempt
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refusal = webhook_refusal(esp)
        if refusal == "not served":
            raise Http404("no such webhook")
        if refusal:
            log.warning("webhook_refused esp=%s reason=%s", esp, refusal)
            return HttpResponseForbidden("webhook not configured")
        return view(request, *args, **kwargs)

    return guarded


def webhook_urlpatterns() -> list[URLPattern]:
    """anymail's tracking webhooks, ``<esp>/tracking/`` (named as anymail names them),
    each refused unless :func:`webhook_refusal` lets it through (404 for an ESP not
    served, 403 while its credentials are missing). Inbound-mail webhooks are not
    mounted: the service reads no mail."""
    from anymail import urls as anymail_urls

    suffix = "_tracking_webhook"
    patterns = []
    for pattern in anymail_urls.urlpatterns:
        name = getattr(pattern, "name", None) or ""
        if isinstance(pattern, URLPattern) and name.endswith(suffix):
            esp = name.removesuffix(suffix)
            route = str(pattern.pattern)
            patterns.append(path(route, _guarded(esp, pattern.callback), name=name))
    return patterns


@receiver(tracking, dispatch_uid="digest.delivery.tracking.record_tracking_event")
def record_tracking_event(
    sender: object, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any
) -> None:
    """The receiver of anymail's ``tracking`` signal: :func:`record_event`."""
    record_event(event, esp_name)


def record_event(event: AnymailTrackingEvent, esp_name: str) -> DeliveryEvent | None:
    """Store ``event`` and act on its subscriber; returns None when the ESP sent the same
    event (same ``event_id``) before, which changes nothing.

    The digest is found by the ``digest_id`` metadata every digest carries, else by its
    Message-ID; the subscriber is the digest's, else the one with the recipient address.
    """
    digest = _find_digest(event)
    subscriber = digest.subscriber if digest else _find_subscriber(event.recipient)
    try:
        with transaction.atomic():
            stored = DeliveryEvent.objects.create(
                esp_name=esp_name,
                event_id=event.event_id or "",
                event_type=event.event_type or "unknown",
                reject_reason=event.reject_reason or "",
                description=event.description or "",
                mta_response=event.mta_response or "",
                recipient=(event.recipient or "")[:254],
                message_id=(event.message_id or "")[:255],
                timestamp=event.timestamp,
                digest=digest,
                subscriber=subscriber,
                raw=_json_safe(event.esp_event),
            )
            if subscriber is not None:
                _act(stored, subscriber, event)
    except IntegrityError:
        log.info("delivery_event_duplicate esp=%s event_id=%s", esp_name, event.event_id)
        return None
    log.info(
        "delivery_event esp=%s type=%s reason=%s digest_id=%s subscriber_id=%s",
        esp_name,
        stored.event_type,
        stored.reject_reason,
        digest.pk if digest else None,
        subscriber.pk if subscriber else None,
    )
    return stored


def _act(stored: DeliveryEvent, subscriber: Subscriber, event: AnymailTrackingEvent) -> None:
    kind, reason = stored.event_type, stored.reject_reason
    detail = stored.description or stored.mta_response or reason or kind
    if kind == "complained":
        subscriber.suppress(f"spam complaint ({stored.esp_name})")
    elif kind == "rejected":
        subscriber.suppress(f"rejected by {stored.esp_name}: {detail}")
    elif kind == "bounced" and reason in HARD_REASONS and not _esp_says_soft(event):
        subscriber.suppress(f"hard bounce: {detail}")
    elif kind in SOFT_TYPES:
        if stored.digest_id is not None and not _soft_bounce_counted(stored):
            subscriber.record_soft_bounce(detail)
    elif kind == "delivered":
        subscriber.record_delivery()
    elif kind == "unsubscribed":
        subscriber.unsubscribe()


def _esp_says_soft(event: AnymailTrackingEvent) -> bool:
    raw = event.esp_event
    return isinstance(raw, dict) and raw.get("Type") in _SOFT_ESP_TYPES


def _soft_bounce_counted(stored: DeliveryEvent) -> bool:
    """Whether an earlier soft bounce of the same digest was counted: an ESP reports
    every retry of one message, and one message is one bounce."""
    assert stored.digest_id is not None
    return (
        DeliveryEvent.objects.filter(digest_id=stored.digest_id, event_type__in=SOFT_TYPES)
        .exclude(pk=stored.pk)
        .exists()
    )


def _find_digest(event: AnymailTrackingEvent) -> Digest | None:
    digests = Digest.objects.select_related("subscriber")
    digest_id = str((event.metadata or {}).get("digest_id", ""))
    if digest_id.isdigit():
        found = digests.filter(pk=int(digest_id)).first()
        if found is not None:
            return found
    if event.message_id:
        bare = event.message_id.strip().strip("<>")
        return digests.filter(message_id=f"<{bare}>").first()
    return None


def _find_subscriber(address: str | None) -> Subscriber | None:
    if not address:
        return None
    return Subscriber.objects.with_address(address).first()


def _json_safe(value: object) -> dict[str, Any]:
    """The ESP's payload as a JSON object (anymail gives a dict, or for some ESPs'
    form posts a QueryDict)."""
    if hasattr(value, "lists"):
        value = dict(value.lists())  # type: ignore[attr-defined]
    try:
        data = json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        data = str(value)
    return data if isinstance(data, dict) else {"payload": data}
