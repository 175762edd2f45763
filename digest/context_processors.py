from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict[str, str]:
    """Expose ``SITE_NAME`` and ``SITE_URL`` to every template."""
    return {"site_name": settings.SITE_NAME, "site_url": settings.SITE_URL}
