from django.apps import AppConfig


class DigestConfig(AppConfig):
    name = "digest"
    verbose_name = "Papers and digests"

    def ready(self) -> None:
        # Connects the anymail ``tracking`` signal receiver (bounces, complaints).
        from . import webhooks  # noqa: F401
