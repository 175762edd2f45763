"""Pages a subscriber reaches from an email."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .models import Subscriber
from .tokens import UNSUBSCRIBE, read_token


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """The ``List-Unsubscribe`` URL.

    GET shows a page with a button (mail scanners open links, so a GET changes
    nothing). POST unsubscribes at once — the RFC 8058 one-click POST with body
    ``List-Unsubscribe=One-Click`` as well as the button — with no cookie, login, CSRF
    token or redirect. A tampered, foreign or expired token gets a 400 page.
    """
    try:
        subscriber_uuid = read_token(token, UNSUBSCRIBE, settings.UNSUBSCRIBE_LINK_MAX_AGE)
        subscriber = Subscriber.objects.get(uuid=subscriber_uuid)
    except (signing.BadSignature, Subscriber.DoesNotExist):
        return render(request, "subscriptions/bad_link.html", status=400)
    if request.method == "POST":
        subscriber.unsubscribe()
        return render(request, "subscriptions/unsubscribed.html", {"subscriber": subscriber})
    return render(request, "subscriptions/unsubscribe.html", {"subscriber": subscriber})
