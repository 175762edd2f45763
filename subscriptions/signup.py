"""What a signup or an "email me my link" request does once it left the request: look
the address up, record the signup, send the mail its state calls for.

The pages hand both to a Celery task (:mod:`subscriptions.tasks`) whatever the address,
so a request does the same work, and takes the same time, for a known address and an
unknown one; nothing here runs in the request.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from digest.delivery.compose import make_email
from digest.models import Topic

from . import throttle
from .addresses import canonical_key
from .models import State, Subscriber
from .tokens import confirm_url, manage_url, offer_url

__all__ = ["email_link_for", "send_confirmation", "send_manage_link", "sign_up"]


def schedule_text(subscriber: Subscriber) -> str:
    """``"daily at 08:00 (Europe/Paris)"`` or ``"weekly, on Mondays at 08:00 (UTC)"``."""
    at = f"at {subscriber.hour:02d}:00 ({subscriber.timezone})"
    if subscriber.frequency == Subscriber.FREQUENCIES[1][0]:
        return f"weekly, on {Subscriber.WEEKDAYS[subscriber.weekday][1]}s {at}"
    return f"daily {at}"


def send_confirmation(subscriber: Subscriber) -> None:
    """The double opt-in email (``emails/confirm-*``), the only mail an unconfirmed
    address ever gets; it recaps what was signed up for (filters, topics, schedule)."""
    held = subscriber.pending_signup  # the choices confirming will apply, when held
    if held:
        filters = list(held["filters"])
        topics = list(
            Topic.objects.filter(pk__in=held["topics"])
            .order_by("name")
            .values_list("name", flat=True)
        )
        shown = Subscriber(
            frequency=held["frequency"],
            timezone=held["timezone"],
            hour=subscriber.hour,
            weekday=subscriber.weekday,
        )
    else:
        filters = list(subscriber.filters.order_by("pk").values_list("query", flat=True))
        topics = list(subscriber.topics.order_by("name").values_list("name", flat=True))
        shown = subscriber
    context = {
        "email": subscriber.email,
        "confirm_url": confirm_url(subscriber.uuid),
        "days": settings.CONFIRM_LINK_MAX_AGE // 86400,
        "filters": filters,
        "topics": topics,
        "schedule": schedule_text(shown),
    }
    make_email("confirm", context, subscriber.email).send()


def _current_choices(subscriber: Subscriber) -> dict[str, object]:
    return {
        "frequency": subscriber.frequency,
        "timezone": subscriber.timezone,
        "filters": list(subscriber.filters.order_by("pk").values_list("query", flat=True)),
        "topics": sorted(subscriber.topics.values_list("pk", flat=True)),
    }


def offer_context(subscriber: Subscriber) -> dict[str, object]:
    """What the settings-link email and the offer page show of the signup offered to
    ``subscriber``: its filters, topic names and schedule in words."""
    offer = subscriber.offered_signup or {}
    shown = Subscriber(
        frequency=offer.get("frequency", subscriber.frequency),
        timezone=offer.get("timezone", subscriber.timezone),
        hour=subscriber.hour,
        weekday=subscriber.weekday,
    )
    return {
        "offer_filters": list(offer.get("filters", [])),
        "offer_topics": list(
            Topic.objects.filter(pk__in=offer.get("topics", []))
            .order_by("name")
            .values_list("name", flat=True)
        ),
        "offer_schedule": schedule_text(shown),
    }


def send_manage_link(subscriber: Subscriber, *, offer: bool = False) -> None:
    """The "here is your link" email (``emails/manage-link-*``); with ``offer``, it also
    shows the signup offered to the subscriber and the button that applies it."""
    context: dict[str, object] = {
        "email": subscriber.email,
        "manage_url": manage_url(subscriber.uuid),
        "days": settings.MANAGE_LINK_MAX_AGE // 86400,
        "state": subscriber.state,
    }
    if offer and subscriber.offered_signup is not None:
        context.update(offer_context(subscriber), offer_url=offer_url(subscriber))
    make_email("manage-link", context, subscriber.email).send()


def sign_up(data: dict[str, Any]) -> str:
    """Record a signup and send what the address's state calls for; returns what was
    done (``confirm``, ``manage-link``, ``manage-link-offer``, ``nothing`` or ``throttled``).

    ``data`` is ``{"email", "frequency", "timezone", "filters": [query, …], "topics":
    [topic id, …]}``. A new or unconfirmed address takes the choices and gets the
    confirmation email. An unsubscribed address, or one suppressed after a bounce or a
    complaint, keeps its choices: the new ones are held (:meth:`Subscriber.hold_signup`)
    and replace them only when the confirmation link is used, which also lifts that
    suppression. A subscribed address gets its manage link (``manage-link``), and when
    the signup chose something else, the new choices offered in that email with a button
    that applies them (``manage-link-offer``; :meth:`Subscriber.offer_signup`: nothing
    changes until the owner presses it); one a moderator suspended, nothing. More than
    ``THROTTLES["signup-address"]`` signups of one address an hour
    send nothing more, so the form cannot be used to flood an inbox. Addresses are
    compared and counted by :func:`~subscriptions.addresses.canonical_key`.
    """
    email = data["email"]
    key = canonical_key(email)
    if not throttle.allow("signup-address", key):
        return "throttled"
    choices = {
        "frequency": data["frequency"],
        "timezone": data["timezone"],
        "filters": list(data["filters"]),
        "topics": [int(pk) for pk in data["topics"]],
    }
    with transaction.atomic():
        subscriber, created = Subscriber.objects.select_for_update().get_or_create(
            email_key=key, defaults={"email": email}
        )
        state = subscriber.state
        if created or state == State.UNCONFIRMED:
            subscriber.apply_signup(choices)
            outcome = "confirm"
        elif state == State.UNSUBSCRIBED or subscriber.is_suppressed_by_delivery:
            subscriber.hold_signup(choices)
            outcome = "confirm"
        elif state in (State.ACTIVE, State.PAUSED):
            outcome = "manage-link"
            if {**choices, "topics": sorted(choices["topics"])} != _current_choices(subscriber):
                subscriber.offer_signup(choices)
                outcome = "manage-link-offer"
        else:
            outcome = "nothing"
    if outcome == "confirm":
        send_confirmation(subscriber)
    elif outcome.startswith("manage-link"):
        send_manage_link(subscriber, offer=outcome == "manage-link-offer")
    return outcome


def email_link_for(email: str) -> str:
    """ "Email me my link": a subscribed, paused or unsubscribed address gets its manage
    link, an unconfirmed one the confirmation email again, anything else nothing
    (at most ``THROTTLES["link-address"]`` an hour). Returns what was sent
    (``manage-link``, ``confirm``, ``nothing`` or ``throttled``)."""
    if not throttle.allow("link-address", canonical_key(email)):
        return "throttled"
    subscriber = Subscriber.objects.with_address(email).first()
    state = subscriber.state if subscriber else None
    if subscriber and state in (State.ACTIVE, State.PAUSED, State.UNSUBSCRIBED):
        send_manage_link(subscriber)
        return "manage-link"
    if subscriber and state == State.UNCONFIRMED:
        send_confirmation(subscriber)
        return "confirm"
    return "nothing"
