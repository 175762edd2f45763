"""The signup and settings pages in a real browser: Chromium through Playwright, against
the live server, with the real example pages ingested. Each page is saved as a
screenshot under ``var/screenshots/``."""

from __future__ import annotations

import io
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.models import Digest, Topic
from subscriptions.models import Subscriber
from subscriptions.tokens import digest_web_url

from .conftest import ALL_PAGES, SCREENSHOTS, make_subscriber
from .test_signup import sent

sync_api = pytest.importorskip("playwright.sync_api")

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def site(live_server, settings, outbox: Path):  # type: ignore[no-untyped-def]
    """The live server with links in emails pointing at it, and real papers stored."""
    settings.SITE_URL = live_server.url
    cache.clear()
    call_command("ingest", *map(str, ALL_PAGES), stdout=io.StringIO())
    Topic.objects.create(
        name="Vision-language models",
        slug="vlm",
        query='"vision language" OR vlm OR lvlm',
        description="Models that read images and text",
    )
    return live_server


def new_page(browser, **options):  # type: ignore[no-untyped-def]
    """A page in a fresh context in Paris time that records console errors (a
    Content-Security-Policy violation is one); the 400 answers to invalid forms and
    used links are expected and not recorded."""
    context = browser.new_context(timezone_id="Europe/Paris", locale="en-GB", **options)
    page = context.new_page()
    errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            errors.append(m.text) if m.type == "error" and "status of 400" not in m.text else None
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def link_from(outbox: Path, kind: str, path_prefix: str) -> str:
    [message] = sent(outbox, kind)[-1:]
    text = message.get_body(("plain",)).get_content()
    [link] = re.findall(r"https?://\S+" + re.escape(path_prefix) + r"\S+", text)
    return link


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_subscriber_signs_up_confirms_edits_settings_and_unsubscribes(
    browser, site, outbox: Path
) -> None:  # type: ignore[no-untyped-def]
    expect = sync_api.expect

    # The landing page, on a laptop and on a phone.
    page = new_page(browser, viewport={"width": 1280, "height": 900})
    page.goto(site.url + "/")
    expect(page.get_by_role("heading", name="The papers you care about")).to_be_visible()
    expect(page.locator(".mail .paper")).to_have_count(3)
    # The browser's timezone was guessed into the field.
    expect(page.get_by_label("Timezone")).to_have_value("Europe/Paris")
    shot(page, "01-home")
    phone = new_page(browser, viewport=PHONE, is_mobile=True, has_touch=True)
    phone.goto(site.url + "/")
    shot(phone, "02-home-phone")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    # Sign up; the live preview follows the line being typed.
    page.get_by_label("Email address").fill("ada@example.org")
    filters = page.get_by_label("Filters")
    filters.fill("")
    filters.type("transformer")
    expect(page.locator(".signup .preview-count")).to_contain_text("matched transformer")
    page.get_by_label("Vision-language models").check()
    page.get_by_label("Weekly").check()
    shot(page, "03-home-filled")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    shot(page, "04-check-your-inbox")
    ada = Subscriber.objects.get(email="ada@example.org")
    assert (ada.state, ada.frequency, ada.timezone) == ("unconfirmed", "weekly", "Europe/Paris")

    # The confirmation link from the outbox: a page with a button, then the settings.
    page.goto(link_from(outbox, "confirm", "/confirm/"))
    expect(page.get_by_role("heading", name="Confirm your subscription")).to_be_visible()
    shot(page, "05-confirm")
    page.get_by_role("button", name="Yes, confirm").click()
    expect(page).to_have_url(re.compile(r"/manage/$"))
    expect(page.get_by_text("Your address is confirmed")).to_be_visible()
    expect(page.get_by_label("Filter 1", exact=True)).to_have_value("transformer")
    shot(page, "06-manage")
    assert Subscriber.objects.get(pk=ada.pk).state == "active"

    # An invalid filter: the live preview and, after submitting, the page point at it.
    new_filter = page.get_by_label("Add a filter")
    new_filter.fill("object detection (open-world")
    live = page.locator("#filters .add .preview .query-error")
    expect(live).to_contain_text("Unclosed (, at character 18")
    page.get_by_role("button", name="Add the new filter").click()
    error = page.locator("#filters .add > .query-error")
    expect(error).to_contain_text("Unclosed (")
    # The page comes back at the row, with the cursor in the field to fix.
    assert page.url.endswith("#add-filter")
    expect(page.get_by_label("Add a filter")).to_be_focused()
    expect(error).to_contain_text("at character 18")
    expect(error.locator("mark")).to_have_text("(")
    shot(page, "07-filter-error")
    assert Subscriber.objects.get(pk=ada.pk).filters.count() == 1

    # Fixed, it previews the papers it would have matched, then is added.
    new_filter = page.get_by_label("Add a filter")
    new_filter.fill("object detection (open-world OR open-vocabulary)")
    preview = page.locator("#filters .add .preview .preview-result")
    expect(preview).to_contain_text("in the last 7 days matched")
    expect(preview.locator("li").first).to_contain_text("DINO-X")
    expect(error).to_be_hidden()  # the stale server error went away
    shot(page, "08-filter-preview")
    page.get_by_role("button", name="Add the new filter").click()
    expect(page.get_by_text("Filter added.")).to_be_visible()
    expect(page.get_by_label("Filter 2", exact=True)).to_have_value(
        "object detection (open-world OR open-vocabulary)"
    )

    # Without JavaScript's help, the Preview button renders the same on the server.
    page.get_by_label("Filter 1", exact=True).fill("segmentation")
    page.get_by_role("button", name="Preview filter 1").click()
    expect(page.locator("#filters .filter-row").first.locator(".preview-result")).to_contain_text(
        "matched segmentation"
    )

    # Schedule: a wrong timezone is refused in place; the browser's zone is offered.
    page.locator("#schedule").get_by_label("Daily").check()
    page.get_by_label("Time of day").select_option("07:00")
    page.locator("#schedule").get_by_label("Timezone").fill("Mars/Olympus_Mons")
    page.get_by_role("button", name="Save schedule").click()
    expect(page.locator("#schedule .error")).to_contain_text("IANA timezone")
    page.locator("#schedule").get_by_label("Timezone").fill("Asia/Tokyo")
    page.get_by_role("button", name="Save schedule").click()
    expect(page.get_by_text("Schedule saved.")).to_be_visible()
    ada.refresh_from_db()
    assert (ada.frequency, ada.hour, ada.timezone) == ("daily", 7, "Asia/Tokyo")
    local = ada.next_digest_at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert local.hour == 7 and ada.next_digest_at > timezone.now()
    offer = page.get_by_role("button", name="Use Europe/Paris (this browser's timezone)")
    offer.click()
    expect(page.locator("#schedule").get_by_label("Timezone")).to_have_value("Europe/Paris")
    page.get_by_role("button", name="Save schedule").click()
    expect(page.get_by_text("Schedule saved.")).to_be_visible()
    ada.refresh_from_db()
    assert ada.timezone == "Europe/Paris"
    shot(page, "09-schedule-saved")

    # On a phone the settings page stacks and nothing overflows sideways.
    phone_settings = page.context.new_page()
    phone_settings.set_viewport_size(PHONE)
    phone_settings.goto(site.url + "/manage/")
    shot(phone_settings, "10-manage-phone")
    assert phone_settings.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    # A digest is sent; its "view in browser" page and its unsubscribe link work.
    [result] = deliver([ada.pk], force=True)
    assert result.status == "sent", result
    digest_email = sent(outbox, "digest")[-1]
    unsubscribe = str(digest_email["List-Unsubscribe"]).strip()[1:-1]
    page.goto(digest_web_url(Digest.objects.get(pk=result.digest_id)))
    shot(page, "11-digest-in-browser")

    # Another browser asks for the manage link by email and opens it.
    other = new_page(browser, viewport={"width": 1280, "height": 900})
    other.goto(site.url + "/link/")
    other.get_by_label("Email address").fill("ada@example.org")
    shot(other, "12-email-my-link")
    other.get_by_role("button", name="Email me my link").click()
    expect(other.get_by_role("heading", name="Check your inbox")).to_be_visible()
    other.goto(link_from(outbox, "manage-link", "/manage/link/"))
    shot(other, "13-manage-link")
    other.get_by_role("button", name="Open my settings").click()
    expect(other.get_by_label("Filter 2", exact=True)).to_have_value(
        "object detection (open-world OR open-vocabulary)"
    )
    # The link keeps working: this browser, signed in, goes straight to the settings.
    other.goto(link_from(outbox, "manage-link", "/manage/link/"))
    expect(other.get_by_label("Filter 2", exact=True)).to_be_visible()
    shot(other, "14-link-again")

    # Unsubscribe from the digest's link.
    page.goto(unsubscribe)
    shot(page, "15-unsubscribe")
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    shot(page, "16-unsubscribed")
    assert Subscriber.objects.get(pk=ada.pk).state == "unsubscribed"

    for p in (page, phone, other, phone_settings):
        assert getattr(p, "errors", []) == [], p.errors  # type: ignore[attr-defined]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_manage_link_in_a_sent_digest_opens_the_settings(browser, site, outbox: Path) -> None:  # type: ignore[no-untyped-def]
    grace = make_subscriber("grace@example.org", ["transformer"])
    [result] = deliver([grace.pk], force=True)
    assert result.status == "sent"
    page = new_page(browser, viewport={"width": 1280, "height": 900})
    page.goto(link_from(outbox, "digest", "/manage/link/"))
    page.get_by_role("button", name="Open my settings").click()
    sync_api.expect(page.get_by_label("Filter 1", exact=True)).to_have_value("transformer")
