"""The admin dashboard: the last 30 days as server-drawn SVG charts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from digest.dashboard import DAYS, dashboard_data, top_filter_terms
from digest.models import DeliveryEvent, Digest, IngestRun, Paper, Source

from .conftest import make_subscriber
from .test_admin_roles import moderator_client


def noon(days_ago: int) -> datetime:
    return datetime.combine(timezone.localdate() - timedelta(days=days_ago), time(12), tzinfo=UTC)


def seed() -> None:
    for i, days_ago in enumerate([0, 3, 3, 40]):
        Paper.objects.create(
            title=f"Paper {i}", title_key=f"paper {i}", abstract="x", first_seen_at=noon(days_ago)
        )
    ada = make_subscriber("ada@example.org", ["mamba", "vision transformer"])
    grace = make_subscriber("grace@example.org", ["Mamba", "diffusion -medical"])
    make_subscriber("alan@example.org", ["mamba OR vision*"])
    make_subscriber("gone@example.org", ["mamba"], unsubscribed_at=noon(1))
    for who, period in ((ada, "a"), (grace, "b")):
        Digest.objects.create(subscriber=who, period=period, status=Digest.SENT, sent_at=noon(1))
    Digest.objects.create(subscriber=ada, period="c", status=Digest.FAILED)
    for kind, days_ago, n in (("bounced", 2, 3), ("complained", 5, 1), ("delivered", 2, 9)):
        for k in range(n):
            DeliveryEvent.objects.create(
                esp_name="Postmark",
                event_id=f"{kind}-{k}",
                event_type=kind,
                recipient="ada@example.org",
                timestamp=noon(days_ago),
            )
    source = Source.objects.create(name="HF daily", url="https://huggingface.co/papers")
    source.last_status = "failed"
    source.save()
    IngestRun.objects.create(
        source=source.url,
        from_source=source,
        status=IngestRun.FAILED,
        error="HTTP 503 from upstream",
    )


def by_slug(data: dict) -> dict[str, list[int]]:  # type: ignore[type-arg]
    return {chart.slug: [bar.value for bar in chart.bars] for chart in data["charts"]}


@pytest.mark.django_db
def test_the_numbers_are_counted_per_day_over_the_last_30_days() -> None:
    seed()
    data = dashboard_data()
    series = by_slug(data)
    assert all(len(values) == DAYS for values in series.values())

    def on(values: list[int], days_ago: int) -> int:
        return values[DAYS - 1 - days_ago]

    assert sum(series["papers"]) == 3  # the paper of 40 days ago is out of range
    assert (on(series["papers"], 0), on(series["papers"], 3)) == (1, 2)
    assert (sum(series["digests"]), on(series["digests"], 1)) == (2, 2)
    assert (sum(series["bounces"]), on(series["bounces"], 2)) == (3, 3)
    assert (sum(series["complaints"]), on(series["complaints"], 5)) == (1, 1)
    assert (sum(series["unsubscribes"]), on(series["unsubscribes"], 1)) == (1, 1)
    today = timezone.localdate()
    assert data["charts"][0].bars[-1].label == f"{today:%b} {today.day}"


@pytest.mark.django_db
def test_the_most_common_terms_count_each_filter_once_and_skip_exclusions() -> None:
    seed()
    terms = top_filter_terms()
    assert terms[0] == ("mamba", 3)  # the unsubscribed subscriber's filter is not counted
    assert dict(terms[1:]) == {"vision": 1, "transformer": 1, "diffusion": 1, "vision*": 1}
    assert top_filter_terms(limit=2)[0] == ("mamba", 3) and len(top_filter_terms(limit=2)) == 2


@pytest.mark.django_db
def test_the_dashboard_renders_accessible_svg_charts() -> None:
    seed()
    client = moderator_client()
    index = client.get(reverse("admin:index")).content.decode()
    assert f'href="{reverse("admin:dashboard")}"' in index

    page = client.get(reverse("admin:dashboard"))
    assert page.status_code == 200
    html = page.content.decode()
    slugs = ("papers", "digests", "signups", "confirmations", "bounces", "complaints")
    slugs += ("unsubscribes", "terms")
    assert len(re.findall(r'<svg class="mod-chart__svg"[^>]* role="img"', html)) == len(slugs)
    for slug in slugs:
        assert f'aria-labelledby="chart-{slug}-title chart-{slug}-desc"' in html
    assert "3 bounces in the last 30 days; the most, 3, on" in html
    assert "No complaints" not in html and "1 complaints in the last 30 days" in html
    peak = max(dashboard_data()["charts"][0].bars, key=lambda b: b.value)
    assert f"<title>{peak.tooltip}</title>" in html and peak.tooltip.endswith(": 2 new papers")
    # The bar of the busiest day fills the plot; an empty day has no height.
    assert f'height="{peak.height}"' in html and peak.height == 138
    assert "HTTP 503 from upstream" in html and "HF daily" in html
    assert 'mod-badge--failed">failed' in html
    # No script and no inline style: the pages' Content Security Policy allows neither.
    assert "<script>" not in html and " style=" not in html.split("<body", 1)[1]


@pytest.mark.django_db
def test_an_empty_service_still_draws_the_dashboard(admin_client: Client) -> None:
    page = admin_client.get(reverse("admin:dashboard"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "No new papers in the last 30 days." in html
    assert "No filters yet." in html


@pytest.mark.django_db
def test_the_dashboard_counts_subscribers_by_state_and_failed_digests(admin_client: Client) -> None:
    now = timezone.now()
    make_subscriber("active@example.org", ["diffusion"])
    make_subscriber("new@example.org", ["diffusion"], confirmed_at=None)
    gone = make_subscriber("gone@example.org", ["diffusion"], unsubscribed_at=now)
    Digest.objects.create(subscriber=gone, period="2026-11-29", status=Digest.FAILED)
    data = dashboard_data()
    assert data["subscribers"]["Active"] == 1
    assert data["subscribers"]["Unconfirmed"] == 1
    assert data["subscribers"]["Unsubscribed"] == 1
    assert data["failed_digests"] == 1
    assert by_slug(data)["signups"][-1] == 3
    page = admin_client.get(reverse("admin:dashboard")).content.decode()
    assert "?state=unconfirmed" in page and "?status__exact=failed" in page
