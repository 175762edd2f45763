""" "Delete me": erase a subscriber and every trace of their address elsewhere.

:meth:`Subscriber.erase <subscriptions.models.Subscriber.erase>` deletes the subscriber
with their filters and digests (the database cascades), keeping only anonymous monthly
counts. What other apps keep about them is erased here, before it:

* the ESP's delivery events about them (by subscriber, digest, recipient, or the
  address anywhere in their text or raw payload) keep their type, reason, time and ESP
  for the dashboard's counts, and lose the recipient, the texts, the raw payload, the
  Message-ID and every link to the subscriber;
* the admin log's entries about the subscriber or their filters, or naming the address,
  are deleted;
* every browser session signed in as the subscriber is deleted: those noted in
  ``Subscriber.session_keys``, and with the database session store (the default)
  every unexpired session holding their uuid, signed in before sessions were noted.
"""

from __future__ import annotations

from datetime import datetime
from importlib import import_module

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from digest.models import DeliveryEvent

from .models import SESSION_KEY, Filter, Subscriber

__all__ = ["erase"]


def erase(subscriber: Subscriber, now: datetime | None = None) -> None:
    """Erase ``subscriber`` and what the delivery events, the admin log and the
    sessions hold about them (see the module docstring); all or nothing."""
    address = subscriber.email
    filter_ids = [str(pk) for pk in subscriber.filters.values_list("pk", flat=True)]
    with transaction.atomic():
        events = DeliveryEvent.objects.annotate(raw_text=Cast("raw", TextField())).filter(
            Q(subscriber=subscriber)
            | Q(digest__subscriber=subscriber)
            | Q(recipient__iexact=address)
            | Q(description__icontains=address)
            | Q(mta_response__icontains=address)
            | Q(raw_text__icontains=address)
        )
        DeliveryEvent.objects.filter(pk__in=list(events.values_list("pk", flat=True))).update(
            recipient="",
            description="",
            mta_response="",
            message_id="",
            raw={},
            subscriber=None,
            digest=None,
        )
        types = ContentType.objects.get_for_models(Subscriber, Filter)
        LogEntry.objects.filter(
            Q(content_type=types[Subscriber], object_id=str(subscriber.pk))
            | Q(content_type=types[Filter], object_id__in=filter_ids)
            | Q(object_repr__icontains=address)
            | Q(change_message__icontains=address)
        ).delete()
        store = import_module(settings.SESSION_ENGINE).SessionStore
        for key in subscriber.session_keys:
            store(session_key=key).delete()
        if settings.SESSION_ENGINE in _DB_SESSIONS:
            _delete_db_sessions(str(subscriber.uuid))
        subscriber.erase(now)


_DB_SESSIONS = {
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cached_db",
}


def _delete_db_sessions(subscriber_uuid: str) -> None:
    """Delete the unexpired database sessions signed in as ``subscriber_uuid``: each is
    decoded, so this reads every live session (a rare action: "delete me")."""
    from django.contrib.sessions.models import Session

    store = import_module(settings.SESSION_ENGINE).SessionStore
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if session.get_decoded().get(SESSION_KEY) == subscriber_uuid:
            store(session_key=session.session_key).delete()
