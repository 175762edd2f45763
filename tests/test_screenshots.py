"""The home, settings, "view in browser" digest and dashboard pages at a phone's width and
a laptop's, in Chromium: nothing overflows sideways, no console error, and a screenshot
of each. ``make screenshots`` runs this with ``SCREENSHOTS_DIR=docs/screenshots``, the
pictures the README shows; otherwise they go to ``var/screenshots/``."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command

from digest.delivery.pipeline import deliver
from digest.models import Digest, Topic
from subscriptions.tokens import digest_web_url, manage_url_for

from .conftest import ALL_PAGES, SCREENSHOTS, make_subscriber
from .test_browser import new_page

sync_api = pytest.importorskip("playwright.sync_api")

WIDTHS = {"phone": 375, "laptop": 1280}
PASSWORD = "correct horse battery staple"


@pytest.fixture
def shots_dir() -> Path:
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def site(live_server, settings, outbox: Path):  # type: ignore[no-untyped-def]
    settings.SITE_URL = live_server.url
    cache.clear()
    call_command("ingest", *map(str, ALL_PAGES), stdout=io.StringIO())
    Topic.objects.create(name="State space models", slug="ssm", query='mamba OR "state space"')
    get_user_model().objects.create_superuser("root", "root@example.org", PASSWORD)
    return live_server


def overflow(page) -> int:  # type: ignore[no-untyped-def]
    """How many CSS pixels the page is wider than its viewport (0: no sideways scroll)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("device", WIDTHS)
def test_the_main_pages_fit_a_phone_and_a_laptop(
    browser, site, shots_dir: Path, device: str
) -> None:  # type: ignore[no-untyped-def]
    ada = make_subscriber("ada@example.org", ['mamba OR "state space"', "diffusion video"])
    ada.topics.set(Topic.objects.all())
    [result] = deliver([ada.pk], force=True)
    assert result.status == "sent"
    digest = Digest.objects.get(pk=result.digest_id)
    page = new_page(browser, viewport={"width": WIDTHS[device], "height": 900})

    page.goto(site.url + "/")
    page.screenshot(path=str(shots_dir / f"home-{device}.png"), full_page=True)
    assert overflow(page) <= 0, "home"

    page.goto(manage_url_for(ada))
    page.get_by_role("button", name="Open my settings").click()
    page.wait_for_url(f"{site.url}/manage/")
    page.screenshot(path=str(shots_dir / f"settings-{device}.png"), full_page=True)
    assert overflow(page) <= 0, "settings"

    page.goto(digest_web_url(digest))
    page.screenshot(path=str(shots_dir / f"digest-{device}.png"), full_page=True)
    assert overflow(page) <= 0, "digest"
    assert page.errors == []  # type: ignore[attr-defined]

    page.goto(f"{site.url}/admin/login/?next=/admin/dashboard/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{site.url}/admin/dashboard/")
    page.screenshot(path=str(shots_dir / f"dashboard-{device}.png"), full_page=True)
    assert page.get_by_role("img").count() >= 6  # the charts drew


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_weekday_shows_only_for_weekly_digests(browser, site) -> None:  # type: ignore[no-untyped-def]
    ada = make_subscriber("ada@example.org", ["diffusion"])
    page = new_page(browser, viewport={"width": 1280, "height": 900})
    page.goto(manage_url_for(ada))
    page.get_by_role("button", name="Open my settings").click()
    weekday = page.get_by_label("Day (weekly digests)")
    sync_api.expect(weekday).to_be_hidden()
    page.get_by_role("radio", name="Weekly").check()
    sync_api.expect(weekday).to_be_visible()
    page.get_by_role("radio", name="Daily").check()
    sync_api.expect(weekday).to_be_hidden()
