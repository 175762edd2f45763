"""The admin site: the moderation dashboard at ``dashboard/``, a throttled login, and
the models listed in the order moderators work through them.

Failed logins are counted per client address and username in Django's cache, and lock
that pair out for ``ADMIN_LOGIN_LOCKOUT_SECONDS`` after ``ADMIN_LOGIN_MAX_FAILURES``.
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


def _login_key(ip: str, username: str) -> str:
    digest = hashlib.sha256(f"{ip}\n{username.casefold()}".encode()).hexdigest()
    return f"admin-login-failures:{digest}"


def login_locked(ip: str, username: str) -> bool:
    """Whether ``username`` from ``ip`` has failed ``ADMIN_LOGIN_MAX_FAILURES`` times
    and is locked out (for ``ADMIN_LOGIN_LOCKOUT_SECONDS`` after the last failure)."""
    return cache.get(_login_key(ip, username), 0) >= settings.ADMIN_LOGIN_MAX_FAILURES


def record_login_failure(ip: str, username: str) -> int:
    """Count one failed login of ``username`` from ``ip``; returns the count so far.

    The count expires ``ADMIN_LOGIN_LOCKOUT_SECONDS`` after the latest failure.
    """
    key, timeout = _login_key(ip, username), settings.ADMIN_LOGIN_LOCKOUT_SECONDS
    cache.add(key, 0, timeout)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout)
        count = 1
    cache.touch(key, timeout)
    if count >= settings.ADMIN_LOGIN_MAX_FAILURES:
        log.warning("admin_login_locked ip=%s username=%r failures=%s", ip, username, count)
    return count


def clear_login_failures(ip: str, username: str) -> None:
    """Forget the failures of ``username`` from ``ip`` (after a successful login)."""
    cache.delete(_login_key(ip, username))


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
