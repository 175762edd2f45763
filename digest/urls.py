from django.contrib import admin
from django.urls import include, path

from digest.delivery.tracking import webhook_urlpatterns
from digest.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # The ESP's bounce, complaint and delivery webhooks: /esp/<esp>/tracking/, served
    # only when authenticated (docs/delivery.md "Bounces").
    path("esp/", include((webhook_urlpatterns(), "anymail"))),
    path("", include("subscriptions.urls")),
]
