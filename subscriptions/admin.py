"""Subscribers in the admin: who they are, what they asked for, what they were sent and
what the ESP said about it; suspend, resume, resend and preview.

Moderators only view subscribers; changing, deleting and exporting addresses are for
superusers (see :func:`digest.moderation.ensure_moderators_group`).
"""

from __future__ import annotations

import csv
import logging
from zoneinfo import ZoneInfo

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.clickjacking import xframe_options_sameorigin

from digest.admin import ReadOnlyInline
from digest.delivery.preview import preview_next_digest
from digest.delivery.send import resend_digest
from digest.matching.blocked import blocked_terms_in
from digest.models import DeliveryEvent, Digest

from . import erasure
from .forms import FilterAdminForm
from .middleware import email_html_policy
from .models import Filter, Subscriber

MODERATION_CSS = {"all": ["admin-dashboard/moderation.css"]}

log = logging.getLogger(__name__)


def _badge(state: str, text: str | None = None) -> str:
    return format_html('<span class="mod-badge mod-badge--{}">{}</span>', state, text or state)


class SubscriberStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(Subscriber.State.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> QuerySet:
        if self.value() in Subscriber.State.values:
            return queryset.in_state(self.value())
        return queryset


class FilterInline(admin.TabularInline):
    model = Filter
    form = FilterAdminForm
    extra = 0
    fields = ("query", "flagged_for_review", "created_at")
    readonly_fields = ("created_at",)


class DigestInline(ReadOnlyInline):
    model = Digest
    fields = ("period", "status", "papers", "sent_at", "attempts", "last_error")
    show_change_link = True
    ordering = ("-created_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Digest]:
        return super().get_queryset(request).annotate(n_items=Count("items"))

    @admin.display(description="papers")
    def papers(self, digest: Digest) -> int:
        return digest.n_items  # type: ignore[attr-defined]


class DeliveryEventInline(ReadOnlyInline):
    model = DeliveryEvent
    fk_name = "subscriber"
    fields = ("timestamp", "event_type", "reject_reason", "description", "digest")
    ordering = ("-timestamp",)


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = (
        "email",
        "state_badge",
        "frequency",
        "timezone",
        "filter_count",
        "next_digest_utc",
        "created_at",
    )
    list_filter = (SubscriberStateFilter, "frequency", "topics")
    search_fields = ("email",)
    ordering = ("-created_at",)
    inlines = [FilterInline, DigestInline, DeliveryEventInline]
    filter_horizontal = ("topics",)
    actions = [
        "suspend",
        "resume",
        "lift_suppression",
        "resend_latest_digest",
        "export_addresses",
    ]
    fieldsets = [
        (None, {"fields": ["email", "state_badge", "preview_link", "topics"]}),
        ("Schedule", {"fields": ["frequency", "weekday", "hour", "timezone", "next_digest"]}),
        (
            "History (UTC)",
            {
                "fields": [
                    "uuid",
                    "created_at",
                    "confirmed_at",
                    "paused_at",
                    "suppressed_at",
                    "suppressed_reason",
                    "unsubscribed_at",
                ]
            },
        ),
    ]
    readonly_fields = (
        "state_badge",
        "preview_link",
        "uuid",
        "created_at",
        "confirmed_at",
        "paused_at",
        "suppressed_at",
        "suppressed_reason",
        "unsubscribed_at",
        "next_digest",
    )

    class Media:
        css = MODERATION_CSS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscriber]:
        return super().get_queryset(request).annotate(n_filters=Count("filters"))

    @admin.display(description="next digest")
    def next_digest(self, subscriber: Subscriber) -> str:
        """The next send time in the subscriber's own timezone, and in UTC."""
        at = subscriber.next_digest_at
        if at is None:
            return "–"
        local = at.astimezone(ZoneInfo(subscriber.timezone))
        return f"{local:%a %d %b %Y, %H:%M} {subscriber.timezone} ({at:%H:%M} UTC)"

    @admin.display(description="next digest (UTC)", ordering="next_digest_at")
    def next_digest_utc(self, subscriber: Subscriber) -> str:
        at = subscriber.next_digest_at
        return f"{at:%Y-%m-%d %H:%M}" if at else "–"

    @admin.display(description="state")
    def state_badge(self, subscriber: Subscriber) -> str:
        return _badge(subscriber.state)

    @admin.display(description="filters", ordering="n_filters")
    def filter_count(self, subscriber: Subscriber) -> int:
        return subscriber.n_filters  # type: ignore[attr-defined]

    @admin.display(description="next digest")
    def preview_link(self, subscriber: Subscriber) -> str:
        if not subscriber.pk:
            return "–"
        url = reverse("admin:subscriptions_subscriber_preview", args=[subscriber.pk])
        return format_html('<a href="{}">Preview the next digest</a>', url)

    # --- Permissions ---------------------------------------------------------------

    def has_export_permission(self, request: HttpRequest) -> bool:
        """Only superusers may take addresses out of the service."""
        return request.user.is_superuser

    def has_lift_suppression_permission(self, request: HttpRequest) -> bool:
        """Superusers and moderators (``subscriptions.lift_suppression_subscriber``)."""
        return request.user.has_perm("subscriptions.lift_suppression_subscriber")

    # --- Deleting ------------------------------------------------------------------

    def delete_model(self, request: HttpRequest, obj: Subscriber) -> None:
        """Erase as "delete me" does (:func:`subscriptions.erasure.erase`): the admin log
        keeps no entry naming the address; the application log records who erased."""
        erasure.erase(obj)
        log.info("subscriber_erased_by_admin user=%s", request.user.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        for subscriber in queryset:
            self.delete_model(request, subscriber)

    # --- Actions -------------------------------------------------------------------

    @admin.action(description="Suspend: send nothing until resumed", permissions=["change"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        done = [s for s in queryset if s.suspend()]
        for subscriber in done:
            self.log_change(request, subscriber, "Suspended")
        self.message_user(request, f"Suspended {len(done)} subscriber(s).", messages.SUCCESS)
        if len(done) < queryset.count():
            self.message_user(
                request,
                f"{queryset.count() - len(done)} already suppressed or suspended.",
                messages.WARNING,
            )

    @admin.action(description="Resume after a suspension", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        done = [s for s in queryset if s.unsuspend()]
        for subscriber in done:
            self.log_change(request, subscriber, "Resumed")
        self.message_user(request, f"Resumed {len(done)} subscriber(s).", messages.SUCCESS)
        if len(done) < queryset.count():
            self.message_user(
                request,
                f"{queryset.count() - len(done)} were not suspended by a moderator "
                "(a bounce or complaint suppression stays).",
                messages.WARNING,
            )

    @admin.action(
        description="Lift a bounce or complaint suppression", permissions=["lift_suppression"]
    )
    def lift_suppression(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        """Lift the suppressions the ESP caused (hard bounces, rejections, complaints,
        soft-bounce runs), each logged in the subscriber's history with the reason it
        replaces; a moderator's suspension is lifted with *Resume* instead."""
        lifted = 0
        for subscriber in queryset:
            reason = subscriber.suppressed_reason
            if subscriber.lift_suppression():
                lifted += 1
                self.log_change(request, subscriber, f"Lifted the suppression ({reason})")
        self.message_user(request, f"Lifted {lifted} suppression(s).", messages.SUCCESS)
        if lifted < queryset.count():
            self.message_user(
                request,
                f"{queryset.count() - lifted} had no bounce or complaint suppression "
                "(a moderator's suspension is lifted with Resume).",
                messages.WARNING,
            )

    @admin.action(description="Resend the latest digest", permissions=["change"])
    def resend_latest_digest(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        sent, skipped = 0, []
        for subscriber in queryset:
            digest = (
                Digest.objects.filter(subscriber=subscriber, status=Digest.SENT)
                .order_by("-sent_at", "-pk")
                .first()
            )
            try:
                ok = digest is not None and resend_digest(digest)
            except Exception as exc:  # the send error is recorded on the digest too
                self.message_user(request, f"{subscriber}: sending failed ({exc})", messages.ERROR)
                continue
            if ok:
                sent += 1
                self.log_change(request, subscriber, f"Resent digest {digest.period}")
            else:
                skipped.append(subscriber.email)
        self.message_user(request, f"Resent {sent} digest(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                "Not resent (no sent digest, or not active): " + ", ".join(skipped),
                messages.WARNING,
            )

    @admin.action(description="Export addresses as CSV", permissions=["export"])
    def export_addresses(
        self, request: HttpRequest, queryset: QuerySet[Subscriber]
    ) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="subscribers-{stamp}.csv"'
        writer = csv.writer(response)
        writer.writerow(["email", "state", "frequency", "timezone", "created_at"])
        for subscriber in queryset.order_by("pk"):
            writer.writerow(
                [
                    subscriber.email,
                    subscriber.state,
                    subscriber.frequency,
                    subscriber.timezone,
                    subscriber.created_at.isoformat(),
                ]
            )
        log.info("addresses_exported user=%s count=%s", request.user.pk, queryset.count())
        return response

    # --- The next digest -------------------------------------------------------------

    def get_urls(self):  # type: ignore[no-untyped-def]
        view = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/preview/",
                view(self.preview_view),
                name="subscriptions_subscriber_preview",
            ),
            path(
                "<int:pk>/preview/html/",
                view(xframe_options_sameorigin(self.preview_html_view)),
                name="subscriptions_subscriber_preview_html",
            ),
            *super().get_urls(),
        ]

    def _subscriber(self, request: HttpRequest, pk: int) -> Subscriber:
        subscriber = get_object_or_404(Subscriber, pk=pk)
        if not self.has_view_permission(request, subscriber):
            raise PermissionDenied
        return subscriber

    def preview_view(self, request: HttpRequest, pk: int) -> TemplateResponse:
        """The subscriber's next digest as delivery would plan it; nothing is claimed or
        sent (:func:`digest.moderation.preview_next_digest`)."""
        subscriber = self._subscriber(request, pk)
        return TemplateResponse(
            request,
            "admin/subscriptions/subscriber/preview.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Next digest of {subscriber.email}",
                "opts": self.opts,
                "original": subscriber,
                "subscriber": subscriber,
                "preview": preview_next_digest(subscriber),
            },
        )

    def preview_html_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The HTML part of the previewed digest alone, for the preview page's frame."""
        preview = preview_next_digest(self._subscriber(request, pk))
        if not preview.html:
            raise Http404("nothing to send in the next digest")
        response = HttpResponse(preview.html)
        # The digest's HTML is shown in a sandboxed frame of the preview page.
        response["Content-Security-Policy"] = email_html_policy(frame_ancestors="'self'")
        return response


@admin.register(Filter)
class FilterAdmin(admin.ModelAdmin):
    """Filters, mostly to review those flagged when a term was blocked."""

    list_display = ("query", "subscriber", "flagged_for_review", "blocked_terms", "created_at")
    list_filter = ("flagged_for_review",)
    search_fields = ("query", "subscriber__email")
    list_select_related = ("subscriber",)
    raw_id_fields = ("subscriber",)
    actions = ["keep_filters"]
    form = FilterAdminForm

    def get_readonly_fields(self, request: HttpRequest, obj: Filter | None = None) -> list[str]:
        """A filter never moves to another subscriber: the subscriber is chosen once."""
        return [*super().get_readonly_fields(request, obj), *(["subscriber"] if obj else [])]

    @admin.display(description="blocked terms")
    def blocked_terms(self, obj: Filter) -> str:
        return ", ".join(blocked_terms_in(obj.query)) or "–"

    @admin.action(description="Keep: clear the review flag", permissions=["change"])
    def keep_filters(self, request: HttpRequest, queryset: QuerySet[Filter]) -> None:
        kept = queryset.filter(flagged_for_review=True).update(flagged_for_review=False)
        self.message_user(request, f"Kept {kept} filter(s).", messages.SUCCESS)
