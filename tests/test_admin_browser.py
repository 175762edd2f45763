"""The moderation admin in a real browser: Chromium through Playwright against the live
server, with the real example pages ingested and a month of history. Screenshots go to
``var/screenshots/admin-*.png``."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from digest.models import DeliveryEvent, Digest, Paper, Source, Topic
from subscriptions.models import Subscriber

from .conftest import ALL_PAGES, SCREENSHOTS, make_subscriber
from .test_admin_roles import PASSWORD, make_moderator

sync_api = pytest.importorskip("playwright.sync_api")


def _history() -> None:
    """A month of activity: papers first seen on different days, digests sent, bounces,
    complaints and unsubscribes."""
    now = timezone.now()
    for i, pk in enumerate(Paper.objects.order_by("pk").values_list("pk", flat=True)):
        Paper.objects.filter(pk=pk).update(first_seen_at=now - timedelta(days=(i * 7) % 29))
    interests = [
        ["vision transformer", "segmentation"],
        ["mamba", "state space"],
        ["diffusion", "video generation"],
        ["in-context learning", "survey"],
        ["mamba", "diffusion"],
        ["vision transformer", "mamba OR ssm"],
    ]
    subscribers = [
        make_subscriber(f"reader{i}@example.org", interests[i % len(interests)]) for i in range(18)
    ]
    for day in range(30):
        for k, subscriber in enumerate(subscribers[: 6 + (day * 5) % 12]):
            Digest.objects.create(
                subscriber=subscriber,
                period=f"day-{day}",
                status=Digest.SENT,
                sent_at=now - timedelta(days=day, minutes=k),
            )
    for n, (kind, day) in enumerate(
        [("bounced", 2), ("bounced", 2), ("bounced", 9), ("complained", 4), ("bounced", 20)]
    ):
        DeliveryEvent.objects.create(
            esp_name="Postmark",
            event_id=f"ev-{n}",
            event_type=kind,
            reject_reason="bounced" if kind == "bounced" else "spam",
            recipient=subscribers[n].email,
            timestamp=now - timedelta(days=day),
            subscriber=subscribers[n],
        )
    for n, day in enumerate([1, 6, 6, 13]):
        Subscriber.objects.filter(pk=subscribers[-1 - n].pk).update(
            unsubscribed_at=now - timedelta(days=day)
        )
    Source.objects.create(
        name="HF daily papers",
        url="https://huggingface.co/papers",
        last_status="ok",
        last_fetched_at=now - timedelta(minutes=12),
    )
    Source.objects.create(
        name="HF search: diffusion",
        url="https://huggingface.co/papers?q=diffusion",
        last_status="failed",
        last_fetched_at=now - timedelta(hours=2),
    )


@pytest.fixture
def site(live_server, outbox):  # type: ignore[no-untyped-def]
    cache.clear()
    call_command("ingest", *map(str, ALL_PAGES), stdout=io.StringIO())
    Topic.objects.create(name="State space models", slug="ssm", query='mamba OR "state space"')
    _history()
    make_moderator("mona")
    return live_server


def logged_in_page(browser, site):  # type: ignore[no-untyped-def]
    """A moderator's page, logged in through the admin login form; console errors (a
    Content-Security-Policy violation is one) are collected in ``page.errors``."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-GB")
    page = context.new_page()
    page.errors = []
    # The site has no favicon; the browser asking for one is not a page error.
    page.on(
        "console",
        lambda m: (
            page.errors.append(f"{m.text} {m.location.get('url')}")
            if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico")
            else None
        ),
    )
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(f"{site.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "mona")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{site.url}/admin/")
    return page


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_dashboard_draws_a_month_at_a_glance(browser, site) -> None:  # type: ignore[no-untyped-def]
    page = logged_in_page(browser, site)
    page.get_by_role("link", name="Open the dashboard").click()
    page.wait_for_url(f"{site.url}/admin/dashboard/")
    charts = page.get_by_role("img")
    names = [charts.nth(i).get_attribute("aria-labelledby") for i in range(charts.count())]
    assert (
        len([n for n in names if n and n.startswith("chart-")]) == 8
    )  # seven daily charts and the terms
    assert page.locator("#chart-papers rect.mod-chart__bar").count() == 30
    # Bars are drawn: the busiest day's bar has the full plot height.
    heights = [
        float(h)
        for h in page.locator("#chart-digests rect.mod-chart__bar").evaluate_all(
            "rects => rects.map(r => r.getAttribute('height'))"
        )
    ]
    assert max(heights) == 138 and min(heights) > 0
    box = page.locator("#chart-papers svg").bounding_box()
    assert box and box["width"] > 300 and box["height"] > 80
    assert page.get_by_text("HF search: diffusion").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "admin-dashboard.png"), full_page=True)
    assert page.errors == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_moderator_hides_a_paper_from_the_list(browser, site) -> None:  # type: ignore[no-untyped-def]
    page = logged_in_page(browser, site)
    page.goto(f"{site.url}/admin/digest/paper/?q=mamba")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() >= 2
    title = rows.first.locator("th a").inner_text()
    rows.first.locator("input.action-select").check()
    page.select_option("select[name=action]", "hide_papers")
    page.click("button[name=index]")
    page.fill("#id_reason", "Withdrawn by the authors")
    page.get_by_role("button", name=re.compile(r"^Hide 1 paper$")).click()
    page.wait_for_selector(".messagelist .success")
    assert "Withdrawn by the authors" in page.locator(".messagelist").inner_text()
    assert Paper.objects.get(title=title).hidden_reason == "Withdrawn by the authors"

    rows.nth(1).locator("input.action-select").check()
    page.select_option("select[name=action]", "pin_papers")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist .success")
    page.goto(f"{site.url}/admin/digest/paper/?q=mamba")
    assert page.locator("#result_list .mod-badge--hidden").count() == 1
    assert page.locator("#result_list .mod-badge--pinned").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "admin-papers.png"), full_page=False)
    assert page.errors == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_topic_preview_shows_counts_without_leaving_the_form(browser, site) -> None:  # type: ignore[no-untyped-def]
    page = logged_in_page(browser, site)
    topic = Topic.objects.get(slug="ssm")
    page.goto(f"{site.url}/admin/digest/topic/{topic.pk}/change/")
    page.fill("#id_query", "diffusion")
    page.click("#topic-preview-button")
    result = page.locator("#topic-preview-result")
    result.locator("[data-preview-papers]").wait_for()
    papers = int(result.locator("[data-preview-papers]").inner_text())
    assert papers > 0
    assert page.url.endswith(f"/admin/digest/topic/{topic.pk}/change/")
    assert page.input_value("#id_query") == "diffusion"
    page.screenshot(path=str(SCREENSHOTS / "admin-topic-preview.png"), full_page=True)
    topic.refresh_from_db()
    assert topic.query == 'mamba OR "state space"'
    assert page.errors == []
