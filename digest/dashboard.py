"""The admin site of the service: a moderation dashboard, a throttled login, and the
models listed in the order moderators work through them.

``/admin/dashboard/`` shows the last :data:`DAYS` days at a glance: papers ingested,
digests sent, bounces, complaints and unsubscribes per day, the most common filter terms
and the state of the sources. Charts are inline SVG drawn by a template
(``admin/dashboard.html``); this module only computes the numbers and the bar geometry.

This module is named in ``INSTALLED_APPS`` (:class:`ModerationAdminConfig`), which
Django imports before any model exists: models are looked up through the app registry
inside the functions that use them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

__all__ = [
    "DAYS",
    "BarChart",
    "ModerationAdminConfig",
    "ModerationAdminSite",
    "dashboard_data",
    "daily_counts",
    "top_filter_terms",
]

DAYS = 30
"""Days the dashboard looks back, today included."""

# Where each model appears in its app on the index; the others follow by name.
MODEL_ORDER = {
    "digest": ["paper", "topic", "blockedterm", "source", "ingestrun", "digest", "deliveryevent"],
    "subscriptions": ["subscriber", "filter"],
}
APP_ORDER = ["digest", "subscriptions"]


class ModerationAdminSite(admin.AdminSite):
    """The default admin site with the dashboard at ``dashboard/`` (URL name
    ``admin:dashboard``), login attempts throttled
    (:class:`digest.moderation.ThrottledAdminLoginForm`) and moderation models first."""

    site_header = "Trending papers: moderation"
    site_title = "Trending papers admin"
    index_title = "Moderation"

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)
        # Imported here: the form needs the auth models, which this module cannot
        # import when INSTALLED_APPS is read.
        from .moderation import ThrottledAdminLoginForm

        self.login_form = ThrottledAdminLoginForm

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


class ModerationAdminConfig(AdminConfig):
    """``django.contrib.admin`` with :class:`ModerationAdminSite` as ``admin.site``."""

    default_site = "digest.dashboard.ModerationAdminSite"


# ---------------------------------------------------------------------------------------
# Numbers


def daily_counts(queryset: Any, field_name: str, days: list[date]) -> list[int]:
    """How many rows of ``queryset`` have ``field_name`` (a datetime) on each of
    ``days`` (UTC dates), in order."""
    tz = timezone.get_current_timezone()
    start = datetime.combine(days[0], datetime.min.time(), tzinfo=tz)
    end = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    rows = (
        queryset.filter(**{f"{field_name}__gte": start, f"{field_name}__lt": end})
        .annotate(day=TruncDate(field_name, tzinfo=tz))
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    by_day = dict(rows)
    return [by_day.get(d, 0) for d in days]


def top_filter_terms(limit: int = 12) -> list[tuple[str, int]]:
    """The words, phrases and prefixes most used in the filters of subscribers who
    have not unsubscribed, most used first (ties by name), as ``(term, filters using it)``.

    Terms are counted in canonical form (:func:`digest.query.parse_query`), so
    ``Transformers`` and ``transformer`` are one; excluded terms (``-medical``) and
    filters that do not parse are not counted.
    """
    from .query import QueryError, iter_leaves, parse_query

    filter_model = apps.get_model("subscriptions", "Filter")
    counts: Counter[str] = Counter()
    queries = filter_model.objects.filter(subscriber__unsubscribed_at__isnull=True).values_list(
        "query", flat=True
    )
    for text in queries.iterator(chunk_size=5000):
        try:
            query = parse_query(text)
        except QueryError:
            continue
        counts.update({leaf.display for leaf, positive in iter_leaves(query.root) if positive})
    return sorted(counts.items(), key=lambda tc: (-tc[1], tc[0]))[:limit]


@dataclass
class Bar:
    """One bar: its rectangle, and where a ranking chart writes its label (right-aligned
    at ``label_x``) and its value (at ``value_x``), on the baseline ``text_y``."""

    label: str
    value: int
    x: float
    y: float
    width: float
    height: float
    tooltip: str
    label_x: float = 0
    value_x: float = 0
    text_y: float = 0


@dataclass
class BarChart:
    """One chart's numbers and geometry, in SVG user units (``width`` × ``height``).

    ``kind`` names the colour class in the dashboard stylesheet; ``bars`` are vertical
    for a daily chart and horizontal for a ranking (``horizontal``); ``ticks`` are the
    x-axis labels of a daily chart as ``(x, text, SVG text-anchor)``.
    """

    slug: str
    title: str
    unit: str
    kind: str
    bars: list[Bar] = field(default_factory=list)
    total: int = 0
    peak: int = 0
    peak_label: str = ""
    horizontal: bool = False
    width: int = 620
    height: int = 180
    ticks: list[tuple[float, str, str]] = field(default_factory=list)
    plot_top: int = 14
    plot_bottom: int = 152
    plot_left: int = 36

    @property
    def tick_x(self) -> int:
        """Where the y-axis labels end (right-aligned), left of the plot."""
        return self.plot_left - 6

    @property
    def peak_y(self) -> int:
        return self.plot_top + 4

    @property
    def date_y(self) -> int:
        """Baseline of the date labels under a daily chart."""
        return self.plot_bottom + 18

    @property
    def summary(self) -> str:
        """A sentence for screen readers (the SVG's ``<desc>``)."""
        if self.horizontal:
            top = ", ".join(f"{b.label} ({b.value})" for b in self.bars[:5])
            return f"{self.title}: {top}." if top else f"{self.title}: none yet."
        if not self.total:
            return f"No {self.unit} in the last {len(self.bars)} days."
        return (
            f"{self.total} {self.unit} in the last {len(self.bars)} days; "
            f"the most, {self.peak}, on {self.peak_label}."
        )


def daily_chart(
    slug: str, title: str, unit: str, kind: str, days: list[date], values: list[int]
) -> BarChart:
    """A bar per day, scaled so the highest bar fills the plot."""
    chart = BarChart(slug=slug, title=title, unit=unit, kind=kind)
    chart.total, chart.peak = sum(values), max(values, default=0)
    span = chart.plot_bottom - chart.plot_top
    step = (chart.width - chart.plot_left - 4) / len(days)
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        height = span * value / chart.peak if chart.peak else 0
        if value and height < 2:
            height = 2  # a day with a few rows stays visible next to a busy one
        label = f"{day:%b} {day.day}"
        chart.bars.append(
            Bar(
                label=label,
                value=value,
                x=round(chart.plot_left + i * step + step * 0.12, 2),
                y=round(chart.plot_bottom - height, 2),
                width=round(step * 0.76, 2),
                height=round(height, 2),
                tooltip=f"{day:%a} {label}: {value} {unit}",
            )
        )
        if value == chart.peak and value and not chart.peak_label:
            chart.peak_label = label
        # A date every week, and the last day, when it does not crowd the one before.
        if (i % 7 == 0 and i < len(days) - 4) or i == len(days) - 1:
            if i == len(days) - 1:  # right-aligned so it stays inside the chart
                chart.ticks.append((chart.width, label, "end"))
            else:
                chart.ticks.append(
                    (round(chart.plot_left + i * step + step / 2, 2), label, "middle")
                )
    return chart


def ranking_chart(
    slug: str, title: str, unit: str, kind: str, rows: list[tuple[str, int]]
) -> BarChart:
    """A horizontal bar per ``(label, value)`` row, longest first."""
    chart = BarChart(slug=slug, title=title, unit=unit, kind=kind, horizontal=True)
    chart.width, chart.height = 460, max(60, 22 * len(rows) + 8)
    chart.plot_left = 170
    chart.peak = max((v for _, v in rows), default=0)
    chart.total = sum(v for _, v in rows)
    span = chart.width - chart.plot_left - 40
    for i, (label, value) in enumerate(rows):
        width = span * value / chart.peak if chart.peak else 0
        chart.bars.append(
            Bar(
                label=label,
                value=value,
                x=chart.plot_left,
                y=4 + i * 22,
                width=round(max(width, 2), 2),
                height=16,
                tooltip=f"{label}: {value} {unit}",
                label_x=chart.plot_left - 8,
                value_x=round(chart.plot_left + max(width, 2) + 6, 2),
                text_y=4 + i * 22 + 12,
            )
        )
    return chart


def dashboard_data(today: date | None = None) -> dict[str, Any]:
    """Everything the dashboard template shows: ``charts`` (daily :class:`BarChart` s),
    ``terms`` (a ranking chart), ``sources`` and ``failed_runs`` (latest failed ingest
    runs), ``flagged_filters`` and ``hidden_papers`` counts, and ``days``."""
    today = today or timezone.localdate()
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    paper = apps.get_model("digest", "Paper")
    digest = apps.get_model("digest", "Digest")
    subscriber = apps.get_model("subscriptions", "Subscriber")
    filter_model = apps.get_model("subscriptions", "Filter")
    ingest_run = apps.get_model("digest", "IngestRun")
    event = apps.get_model("digest", "DeliveryEvent")
    source = apps.get_model("digest", "Source")

    def events(kind: str) -> list[int]:
        return daily_counts(event.objects.filter(event_type=kind), "timestamp", days)

    charts = [
        daily_chart(
            "papers",
            "Papers ingested",
            "new papers",
            "papers",
            days,
            daily_counts(paper.objects.all(), "first_seen_at", days),
        ),
        daily_chart(
            "digests",
            "Digests sent",
            "digests",
            "digests",
            days,
            daily_counts(digest.objects.filter(status="sent"), "sent_at", days),
        ),
        daily_chart("bounces", "Bounces", "bounces", "bounces", days, events("bounced")),
        daily_chart(
            "complaints", "Complaints", "complaints", "complaints", days, events("complained")
        ),
        daily_chart(
            "unsubscribes",
            "Unsubscribes",
            "unsubscribes",
            "unsubscribes",
            days,
            daily_counts(subscriber.objects.all(), "unsubscribed_at", days),
        ),
    ]
    sources = list(source.objects.order_by("name")[:20])
    return {
        "days": DAYS,
        "charts": charts,
        "terms": ranking_chart(
            "terms", "Most common filter terms", "filters", "terms", top_filter_terms()
        ),
        "sources": sources,
        "failed_runs": list(ingest_run.objects.filter(status="failed").order_by("-started_at")[:5]),
        "flagged_filters": filter_model.objects.filter(flagged_for_review=True).count(),
        "hidden_papers": paper.objects.filter(hidden_at__isnull=False).count(),
        "pinned_papers": paper.objects.pinned().count(),
    }
