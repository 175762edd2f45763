"""The moderation dashboard's numbers and charts.

``/admin/dashboard/`` shows the last :data:`DAYS` days at a glance: papers ingested,
digests sent, bounces, complaints and unsubscribes per day, the most common filter terms
and the state of the sources. Charts are inline SVG drawn by a template
(``admin/dashboard.html``); this module only computes the numbers and the bar geometry.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from digest.matching.query import QueryError, iter_leaves, parse_query
from digest.models import DeliveryEvent, Digest, IngestRun, Paper, Source
from subscriptions.models import Filter, Subscriber

__all__ = [
    "DAYS",
    "BarChart",
    "dashboard_data",
    "daily_counts",
    "top_filter_terms",
]

DAYS = 30
"""Days the dashboard looks back, today included."""


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

    Terms are counted in canonical form (:func:`digest.matching.query.parse_query`), so
    ``Transformers`` and ``transformer`` are one, and shown as the first filter wrote
    them (folded: ``caches``, never the internal key ``cach``); excluded terms
    (``-medical``) and filters that do not parse are not counted.
    """
    counts: Counter[str] = Counter()
    labels: dict[str, str] = {}
    queries = Filter.objects.filter(subscriber__unsubscribed_at__isnull=True).values_list(
        "query", flat=True
    )
    for text in queries.iterator(chunk_size=5000):
        try:
            query = parse_query(text)
        except QueryError:
            continue
        leaves = {leaf.display: leaf for leaf, positive in iter_leaves(query.root) if positive}
        counts.update(leaves.keys())
        for display, leaf in leaves.items():
            labels.setdefault(display, leaf.label)
    ranked = sorted(counts.items(), key=lambda tc: (-tc[1], labels[tc[0]]))[:limit]
    return [(labels[term], n) for term, n in ranked]


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
    runs), ``flagged_filters``, ``hidden_papers``, ``pinned_papers`` and ``failed_digests``
    (in the last :data:`DAYS` days) counts, ``subscribers`` (count by state label), and
    ``days``."""
    today = today or timezone.localdate()
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]

    def events(kind: str) -> list[int]:
        return daily_counts(DeliveryEvent.objects.filter(event_type=kind), "timestamp", days)

    charts = [
        daily_chart(
            "papers",
            "Papers ingested",
            "new papers",
            "papers",
            days,
            daily_counts(Paper.objects.all(), "first_seen_at", days),
        ),
        daily_chart(
            "digests",
            "Digests sent",
            "digests",
            "digests",
            days,
            daily_counts(Digest.objects.filter(status=Digest.SENT), "sent_at", days),
        ),
        daily_chart(
            "signups",
            "New subscribers",
            "sign-ups",
            "signups",
            days,
            daily_counts(Subscriber.objects.all(), "created_at", days),
        ),
        daily_chart(
            "confirmations",
            "Confirmed subscriptions",
            "confirmations",
            "confirmations",
            days,
            daily_counts(Subscriber.objects.all(), "confirmed_at", days),
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
            daily_counts(Subscriber.objects.all(), "unsubscribed_at", days),
        ),
    ]
    sources = list(Source.objects.order_by("name")[:20])
    return {
        "days": DAYS,
        "charts": charts,
        "terms": ranking_chart(
            "terms", "Most common filter terms", "filters", "terms", top_filter_terms()
        ),
        "sources": sources,
        "failed_runs": list(
            IngestRun.objects.filter(status=IngestRun.FAILED).order_by("-started_at")[:5]
        ),
        "flagged_filters": Filter.objects.filter(flagged_for_review=True).count(),
        # Digests that could not be planned, rendered or sent in the charts' days.
        "failed_digests": Digest.objects.filter(
            status=Digest.FAILED, created_at__gte=timezone.now() - timedelta(days=DAYS)
        ).count(),
        "hidden_papers": Paper.objects.filter(hidden_at__isnull=False).count(),
        "pinned_papers": Paper.objects.pinned().count(),
        "subscribers": {
            state.label: Subscriber.objects.in_state(state).count() for state in Subscriber.State
        },
    }
