""" "More like this" in a real browser: Chromium (through Playwright) opens the link of a
sent digest's HTML part, presses the button, finds the vote on the settings page and
undoes it. Screenshots go to ``var/screenshots/feedback-*.png``."""

from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from digest.delivery.pipeline import deliver
from digest.models import Feedback

from .conftest import SCREENSHOTS, make_subscriber
from .test_browser import link_from, new_page, shot, site  # noqa: F401  (the fixture)
from .test_signup import sent

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("site")
def test_a_vote_from_the_email_is_recorded_listed_and_undone(browser, outbox: Path) -> None:  # type: ignore[no-untyped-def]
    expect = sync_api.expect
    grace = make_subscriber("grace@example.org", ["transformer"])
    [result] = deliver([grace.pk], force=True)
    assert result.status == "sent" and result.papers >= 2
    [message] = sent(outbox, "digest")
    html = message.get_body(("html",)).get_content()
    soup = BeautifulSoup(html, "html.parser")
    first = soup.find("a", string="More like this")
    title = first.find_parent("table", class_="paper").find("h2").get_text(strip=True)

    # The email as a mail app shows it; its first "More like this" link is followed.
    page = new_page(browser, viewport={"width": 390, "height": 844})
    page.set_content(html, wait_until="domcontentloaded")
    with page.expect_navigation():
        page.get_by_role("link", name="More like this").first.click()
    assert page.url == first["href"]
    expect(page.get_by_role("heading", name=title)).to_be_visible()
    shot(page, "feedback-vote-page")
    assert not Feedback.objects.exists()  # opening the link votes nothing

    page.get_by_role("button", name="More like this").click()
    expect(page.get_by_role("heading", name="Noted: more like this")).to_be_visible()
    shot(page, "feedback-voted")
    row = Feedback.objects.get()
    assert (row.subscriber_id, row.vote, row.source) == (grace.pk, Feedback.MORE, "email")
    assert row.paper.title == title

    # The settings link of the same email: the vote is listed, and undone.
    page.goto(link_from(outbox, "digest", "/manage/link/"))
    page.get_by_role("button", name="Open my settings").click()
    likes = page.locator("#likes")
    vote = likes.locator(".vote-row", has_text=title).first
    expect(vote).to_contain_text("More like this")
    shot(page, "feedback-settings")
    likes.screenshot(path=str(SCREENSHOTS / "feedback-settings-likes.png"))
    vote.get_by_role("button", name="Undo").click()
    expect(page.get_by_text(f"Forgot your vote on “{title}”.")).to_be_visible()
    expect(page.locator("#likes")).to_contain_text("No votes yet")
    assert not Feedback.objects.exists()
    assert page.errors == []  # type: ignore[attr-defined]
