from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class DigestConfig(AppConfig):
    default = True  # of the two configs here, the one INSTALLED_APPS' "digest" means
    name = "digest"
    verbose_name = "Papers and digests"

    def ready(self) -> None:
        from django.db.models import Field, ForeignObject

        from digest.lookups import AnyOf

        Field.register_lookup(AnyOf)
        ForeignObject.register_lookup(AnyOf)  # it keeps lookups of its own
        # Connects the anymail ``tracking`` signal receiver (bounces, complaints).
        from digest.delivery import tracking  # noqa: F401

        # Rebuilds a subscriber's relevance profile when their feedback changes.
        from digest.relevance import signals  # noqa: F401


class ModerationAdminConfig(admin_apps.AdminConfig):
    """``django.contrib.admin`` with :class:`digest.admin_site.ModerationAdminSite` as
    ``admin.site``."""

    default = False
    default_site = "digest.admin_site.ModerationAdminSite"
