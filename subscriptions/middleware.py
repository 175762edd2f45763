"""The Content-Security-Policy header (CSP Level 3, https://www.w3.org/TR/CSP3/): the
site's policy (``settings.CONTENT_SECURITY_POLICY``) and the one for an email's HTML."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ContentSecurityPolicyMiddleware:
    """Adds ``settings.CONTENT_SECURITY_POLICY`` to every response that has no policy yet.

    A view that needs another policy sets the header itself and keeps it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response.headers:
            response.headers["Content-Security-Policy"] = policy
        return response


def email_html_policy(frame_ancestors: str = "'none'") -> str:
    """The policy of a page that is an email's HTML (the "view in browser" copy, the
    admin's preview frame): the email's inline styles, images, and nothing that runs,
    loads or submits. ``frame_ancestors`` is who may frame it (``'self'`` for the admin's
    preview frame)."""
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        f"frame-ancestors {frame_ancestors}; base-uri 'none'; form-action 'none'"
    )
