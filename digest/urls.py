from django.contrib import admin
from django.urls import include, path

from digest.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # The ESP's bounce, complaint and delivery webhooks: /esp/<esp>/tracking/
    # (ANYMAIL["WEBHOOK_SECRET"] basic auth; README "Delivery").
    path("esp/", include("anymail.urls")),
    path("", include("subscriptions.urls")),
]
