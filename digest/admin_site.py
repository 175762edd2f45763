"""The admin site: the moderation dashboard at ``dashboard/``, a throttled login, and
the models listed in the order moderators work through them.

Failed logins are counted in Django's cache three ways — per client address and
username, per username from any address, per address for any username — and each count
locks out for ``ADMIN_LOGIN_LOCKOUT_SECONDS`` after the latest failure once it reaches
its limit (``ADMIN_LOGIN_MAX_FAILURES``, ``…_PER_USERNAME``, ``…_PER_ADDRESS``): so
guesses spread over many addresses, or over many usernames, are stopped too.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path

from digest.dashboard import DAYS, dashboard_data
from subscriptions.throttle import client_ip

log = logging.getLogger(__name__)

__all__ = [
    "ModerationAdminSite",
    "ThrottledAdminLoginForm",
    "clear_login_failures",
    "login_locked",
    "record_login_failure",
]

# Where each model appears in its app on the index; the others follow by name.
MODEL_ORDER = {
    "digest": ["paper", "topic", "blockedterm", "source", "ingestrun", "digest", "deliveryevent"],
    "subscriptions": ["subscriber", "filter"],
}
APP_ORDER = ["digest", "subscriptions"]


def _login_keys(ip: str, username: str) -> dict[str, tuple[str, int]]:
    """Scope → (cache key, failures that lock it)."""
    name = username.casefold()
    scopes = {
        "pair": (f"{ip}\n{name}", settings.ADMIN_LOGIN_MAX_FAILURES),
        "username": (f"user\n{name}", settings.ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME),
        "address": (f"ip\n{ip}", settings.ADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS),
    }
    return {
        scope: (f"admin-login-failures:{hashlib.sha256(text.encode()).hexdigest()}", limit)
        for scope, (text, limit) in scopes.items()
    }


def login_locked(ip: str, username: str) -> bool:
    """Whether ``username`` from ``ip`` is locked out: the pair, the username (from any
    address) or the address (for any username) has reached its failure limit, within
    ``ADMIN_LOGIN_LOCKOUT_SECONDS`` of its latest failure."""
    keys = _login_keys(ip, username)
    counts = cache.get_many([key for key, _ in keys.values()])
    return any(counts.get(key, 0) >= limit for key, limit in keys.values())


def record_login_failure(ip: str, username: str) -> int:
    """Count one failed login of ``username`` from ``ip`` in each scope; returns the
    pair's count so far. Each count expires ``ADMIN_LOGIN_LOCKOUT_SECONDS`` after the
    latest failure it counted."""
    timeout = settings.ADMIN_LOGIN_LOCKOUT_SECONDS
    counts = {}
    for scope, (key, limit) in _login_keys(ip, username).items():
        cache.add(key, 0, timeout)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout)
            count = 1
        cache.touch(key, timeout)
        counts[scope] = count
        if count == limit:
            log.warning(
                "admin_login_locked scope=%s ip=%s username=%r failures=%s",
                scope,
                ip,
                username,
                count,
            )
    return counts["pair"]


def clear_login_failures(ip: str, username: str) -> None:
    """Forget the failures of ``username`` from ``ip`` (after a successful login); the
    per-username and per-address counts stay until they expire."""
    cache.delete(_login_keys(ip, username)["pair"][0])


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    """The admin login form, refusing a client address and username pair for
    ``ADMIN_LOGIN_LOCKOUT_SECONDS`` after ``ADMIN_LOGIN_MAX_FAILURES`` failed attempts
    (wrong password, or an account that may not use the admin). While locked out even
    the right password is refused, without being checked."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "locked": "Too many failed logins. Try again in %(minutes)s minutes.",
    }

    def clean(self) -> dict[str, Any]:
        ip = client_ip(self.request) if self.request else "unknown"
        username = self.cleaned_data.get("username") or ""
        if login_locked(ip, username):
            raise ValidationError(
                self.error_messages["locked"],
                code="locked",
                params={"minutes": max(1, settings.ADMIN_LOGIN_LOCKOUT_SECONDS // 60)},
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            record_login_failure(ip, username)
            raise
        clear_login_failures(ip, username)
        return cleaned


class ModerationAdminSite(admin.AdminSite):
    """The default admin site with the dashboard at ``dashboard/`` (URL name
    ``admin:dashboard``), login attempts throttled
    (:class:`ThrottledAdminLoginForm`) and moderation models first."""

    site_header = "Trending papers: moderation"
    site_title = "Trending papers admin"
    index_title = "Moderation"

    login_form = ThrottledAdminLoginForm

    def get_urls(self):  # type: ignore[no-untyped-def]
        return [
            path("dashboard/", self.admin_view(self.dashboard_view), name="dashboard"),
            *super().get_urls(),
        ]

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[Any]:
        app_list = super().get_app_list(request, app_label)
        app_list.sort(
            key=lambda a: (
                APP_ORDER.index(a["app_label"]) if a["app_label"] in APP_ORDER else 99,
                a["name"],
            )
        )
        for app in app_list:
            order = MODEL_ORDER.get(app["app_label"], [])
            app["models"].sort(
                key=lambda m: (
                    order.index(m["object_name"].lower())
                    if m["object_name"].lower() in order
                    else 99,
                    m["name"],
                )
            )
        return app_list

    def dashboard_view(self, request: HttpRequest) -> TemplateResponse:
        """The dashboard page; any staff member may see it (counts only, no addresses)."""
        context = {
            **self.each_context(request),
            "title": f"The last {DAYS} days",
            **dashboard_data(),
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/dashboard.html", context)
