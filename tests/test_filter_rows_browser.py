"""The settings page's filter rows in Chromium: whichever row's button is pressed, the
edits made in the other rows are saved with it or kept on the page, never lost; and the
"what each digest carries" choices and "send me one now" work from the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.cache import cache
from django.utils import timezone

from digest.models import Digest
from subscriptions.models import Subscriber
from subscriptions.tokens import manage_url

from .conftest import make_subscriber
from .test_browser import new_page, shot
from .test_signup import add_paper, sent

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@pytest.fixture
def site(live_server, settings, outbox: Path):  # type: ignore[no-untyped-def]
    settings.SITE_URL = live_server.url
    cache.clear()
    return live_server


def signed_in(browser, site, subscriber: Subscriber, width: int = 1280):  # type: ignore[no-untyped-def]
    page = new_page(browser, viewport={"width": width, "height": 900})
    page.goto(manage_url(subscriber.uuid))
    page.get_by_role("button", name="Open my settings").click()
    expect(page.get_by_label("Filter 1", exact=True)).to_be_visible()
    return page


def queries(subscriber: Subscriber) -> list[str]:
    return list(subscriber.filters.order_by("id").values_list("query", flat=True))


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_saving_one_row_keeps_the_edits_of_the_others(browser, site) -> None:  # type: ignore[no-untyped-def]
    ada = make_subscriber("ada@example.org", ["diffusion", "mamba", "segmentation"])
    page = signed_in(browser, site, ada)
    page.get_by_label("Filter 1", exact=True).fill("video diffusion")
    page.get_by_label("Filter 3", exact=True).fill("semantic segmentation")
    page.get_by_label("Add a filter").fill("protein folding")
    page.get_by_role("button", name="Save filter 2").click()
    expect(page.get_by_text("Your changes to filters 1, 3 were saved too.")).to_be_visible()
    assert queries(ada) == ["video diffusion", "mamba", "semantic segmentation"]
    # The text typed in "Add a filter" is kept, not added.
    expect(page.get_by_label("Add a filter")).to_have_value("protein folding")
    assert page.errors == []  # type: ignore[attr-defined]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_error_in_another_row_saves_nothing_and_loses_nothing(browser, site) -> None:  # type: ignore[no-untyped-def]
    ada = make_subscriber("ada@example.org", ["diffusion", "mamba"])
    page = signed_in(browser, site, ada)
    page.get_by_label("Filter 1", exact=True).fill("video diffusion")
    page.get_by_label("Filter 2", exact=True).fill('"unclosed (')
    page.get_by_role("button", name="Save filter 1").click()
    row = page.locator("#filter-2")
    expect(row.locator(".query-error")).to_be_visible()
    expect(row).to_contain_text("Changed, not saved yet.")
    # Both edits are still in their fields; nothing was saved.
    expect(page.get_by_label("Filter 1", exact=True)).to_have_value("video diffusion")
    expect(page.get_by_label("Filter 2", exact=True)).to_have_value('"unclosed (')
    assert queries(ada) == ["diffusion", "mamba"]
    # Fixed, one press saves both.
    page.get_by_label("Filter 2", exact=True).fill("state space")
    page.get_by_role("button", name="Save filter 1").click()
    expect(page.get_by_text("Filter saved.")).to_be_visible()
    assert queries(ada) == ["video diffusion", "state space"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_preview_and_remove_keep_the_other_rows_edits(browser, site) -> None:  # type: ignore[no-untyped-def]
    add_paper("Video diffusion at scale", "diffusion", 5)
    ada = make_subscriber("ada@example.org", ["diffusion", "mamba", "segmentation"])
    page = signed_in(browser, site, ada)
    page.get_by_label("Filter 3", exact=True).fill("instance segmentation")
    page.get_by_role("button", name="Preview filter 1").click()
    expect(page.locator("#filter-1 .preview-result")).to_contain_text("Video diffusion at scale")
    expect(page.get_by_label("Filter 3", exact=True)).to_have_value("instance segmentation")
    assert queries(ada) == ["diffusion", "mamba", "segmentation"]
    page.get_by_role("button", name="Remove filter 2").click()
    expect(page.get_by_text("Filter removed.")).to_be_visible()
    assert queries(ada) == ["diffusion", "instance segmentation"]
    expect(page.get_by_label("Filter 2", exact=True)).to_have_value("instance segmentation")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_enter_saves_every_row_and_adds_what_was_typed(browser, site) -> None:  # type: ignore[no-untyped-def]
    ada = make_subscriber("ada@example.org", ["diffusion", "mamba"])
    page = signed_in(browser, site, ada)
    page.get_by_label("Filter 2", exact=True).fill("state space models")
    page.get_by_label("Filter 1", exact=True).press("Enter")
    expect(page.get_by_text("Filter 2 saved.")).to_be_visible()
    assert queries(ada) == ["diffusion", "state space models"]
    page.get_by_label("Filter 1", exact=True).fill("video diffusion")
    page.get_by_label("Add a filter").fill("protein folding")
    page.get_by_label("Add a filter").press("Enter")
    expect(page.get_by_text("Filter added.")).to_be_visible()
    assert queries(ada) == ["video diffusion", "state space models", "protein folding"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_digest_choices_and_send_me_one_now_from_the_page(
    browser, site, outbox: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.CELERY_TASK_ALWAYS_EAGER = True
    add_paper("Diffusion for everyone", "diffusion", 5)
    ada = make_subscriber("ada@example.org", ["diffusion"])
    for width in (375, 1280):
        page = signed_in(browser, site, ada, width)
        section = page.locator("#choices")
        expect(section.get_by_role("heading", name="What each digest carries")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        shot(page, f"settings-choices-{width}")
    section.get_by_label("Papers per digest").select_option("30")
    section.get_by_label("Only strong matches", exact=False).check()
    section.get_by_role("button", name="Save these choices").click()
    expect(page.get_by_text("Your next digest follows these choices.")).to_be_visible()
    ada.refresh_from_db()
    assert (ada.max_papers, ada.strong_only) == (30, True)

    page.get_by_role("button", name="Send me one now").click()
    expect(page.get_by_text("is on its way to your inbox")).to_be_visible()
    for _ in range(50):
        if sent(outbox, "digest"):
            break
        page.wait_for_timeout(100)
    [message] = sent(outbox, "digest")
    assert "Diffusion for everyone" in message.get_body(("plain",)).get_content()
    page.get_by_role("button", name="Send me one now").click()
    expect(page.get_by_text("less than an hour ago")).to_be_visible()
    assert Digest.objects.filter(subscriber=ada).count() == 1
    assert ada.digests.get().created_at <= timezone.now()
