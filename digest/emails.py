"""Every email is three templates — ``emails/<kind>-subject.txt``, ``-body.txt`` and
``-body.html`` — rendered, the HTML's CSS inlined with premailer, and sent as
multipart/alternative through Django's mail API (so any django-anymail ESP works).

This module renders one email on its own. Digests, sent by the thousand, are composed
from pieces inlined once per batch by :mod:`digest.render`, which produces the same HTML.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from email.utils import make_msgid
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from premailer import Premailer

__all__ = [
    "base_context",
    "inline_css",
    "make_email",
    "new_message_id",
    "message_id_domain",
    "render_parts",
]


def message_id_domain() -> str:
    """The domain part of our Message-IDs: the host of ``SITE_URL``."""
    return urlsplit(settings.SITE_URL).hostname or "localhost"


def new_message_id(idstring: str | None = None) -> str:
    """A fresh RFC 5322 Message-ID, ``<…@host of SITE_URL>``."""
    return make_msgid(idstring=idstring, domain=message_id_domain())


def base_context() -> dict[str, Any]:
    """What every email template may use: ``site_name`` and ``site_url``."""
    return {"site_name": settings.SITE_NAME, "site_url": settings.SITE_URL}


def inline_css(html: str) -> str:
    """Move the ``<style>`` rules of ``html`` into ``style`` attributes (email clients
    drop ``<style>`` blocks). Network loading is off: only CSS in the document is used.
    The document is serialised as parsed, without re-indenting, so a fragment cut out of
    it is the same text wherever the fragment is placed."""
    return Premailer(
        html,
        base_url=settings.SITE_URL,
        allow_network=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform(pretty_print=False)


def render_parts(kind: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(subject, text body, inlined HTML body)`` of an email of ``kind``."""
    ctx = {**base_context(), **context}
    subject = " ".join(render_to_string(f"emails/{kind}-subject.txt", ctx).split())
    text = render_to_string(f"emails/{kind}-body.txt", ctx)
    html = inline_css(render_to_string(f"emails/{kind}-body.html", ctx))
    return subject, text, html


def make_email(
    kind: str,
    context: Mapping[str, Any],
    to: str,
    *,
    headers: Mapping[str, str] | None = None,
    parts: tuple[str, str, str] | None = None,
) -> EmailMultiAlternatives:
    """A multipart/alternative message of ``kind`` to one address, with a Message-ID
    (a fresh one unless ``headers`` carries it).

    ``parts`` passes an already rendered ``(subject, text, html)``.
    """
    subject, text, html = parts or render_parts(kind, context)
    all_headers = {"X-Email-Kind": kind, **(headers or {})}
    all_headers.setdefault("Message-ID", new_message_id())
    message = EmailMultiAlternatives(subject=subject, body=text, to=[to], headers=all_headers)
    message.attach_alternative(html, "text/html")
    return message
