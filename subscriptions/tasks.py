"""Celery tasks of the public pages. They take plain values and are safe to run twice
(a second run sends one more of the same email, within the per-address throttle)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import signup


@shared_task
def sign_up(data: dict[str, Any]) -> str:
    """:func:`subscriptions.signup.sign_up` off the request."""
    return signup.sign_up(data)


@shared_task
def email_link(email: str) -> str:
    """:func:`subscriptions.signup.email_link_for` off the request."""
    return signup.email_link_for(email)
