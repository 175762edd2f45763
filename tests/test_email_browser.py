"""Digests and confirmations as mail apps show them: Chromium (through Playwright) at a
phone's 375 px and a desktop pane's 700 px, in light and dark mode. Nothing is wider
than the screen and every text keeps a WCAG AA contrast (4.5:1) with what is behind it.
Screenshots go to ``var/screenshots/email-*.png``."""

from __future__ import annotations

import email
import json
import re
from datetime import timedelta
from email import policy
from pathlib import Path

import pytest
from django.utils import timezone

from digest.delivery.compose import make_email
from digest.delivery.pipeline import deliver
from digest.ingest.store import ingest_bytes

from .conftest import PAGE_000, SCREENSHOTS, make_subscriber
from .test_sources import FIXTURES

sync_api = pytest.importorskip("playwright.sync_api")

WIDTHS = (375, 700)
SCHEMES = ("light", "dark")

# For each element with text of its own: its colour, the first opaque background behind
# it, and the WCAG 2 contrast ratio of the two (https://www.w3.org/TR/WCAG21/#dfn-contrast-ratio).
CONTRASTS = """() => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const behind = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const style = getComputedStyle(el);
    if (!own || style.display === 'none' || el.closest('.preheader')) continue;
    const fg = lum(rgb(style.color)), bg = lum(behind(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    out.push({text: el.textContent.trim().slice(0, 40), ratio: Math.round(ratio * 100) / 100});
  }
  return {contrasts: out, width: document.documentElement.scrollWidth,
          body: lum(behind(document.querySelector('.container') || document.body))};
}"""


def look(browser, html: str, name: str, width: int, scheme: str) -> dict:  # type: ignore[no-untyped-def]
    context = browser.new_context(
        viewport={"width": width, "height": 800}, color_scheme=scheme, java_script_enabled=True
    )
    # Mail apps load no remote content by default: neither does this page.
    context.route(re.compile(r"^https?://"), lambda route: route.abort())
    page = context.new_page()
    page.set_content(html, wait_until="domcontentloaded")
    page.screenshot(path=str(SCREENSHOTS / f"email-{name}-{width}-{scheme}.png"), full_page=True)
    seen = page.evaluate(CONTRASTS)
    context.close()
    return seen  # type: ignore[no-any-return]


def digest_html(outbox: Path) -> str:
    """A real digest: the JSON and HTML fixtures' papers (authors, links, AI summaries,
    upvotes and their growth) and a text page's (none of those), markup in titles."""
    start = timezone.now() - timedelta(hours=20)
    ingest_bytes(PAGE_000.read_bytes(), source=str(PAGE_000), now=start)
    html_page = FIXTURES / "html" / "daily_2025-03-11.html"
    ingest_bytes(html_page.read_bytes(), source=str(html_page), now=start)
    items = json.loads((FIXTURES / "json" / "daily_papers_2025-03-11.json").read_text())
    for item in items:
        item["paper"]["upvotes"] = (item["paper"].get("upvotes") or 0) + 23
    ingest_bytes(json.dumps(items), source="later.json", now=start + timedelta(hours=8))
    ada = make_subscriber("ada@example.org", ["mixture-of-experts", "long-context", "dino"])
    [result] = deliver([ada.pk])
    assert result.status == "sent" and result.papers >= 3
    return (outbox / f"digest-{result.digest_id}.html").read_text()


@pytest.mark.browser
@pytest.mark.django_db
def test_a_digest_reads_well_on_a_phone_and_a_desktop_in_light_and_dark(
    browser, outbox: Path
) -> None:
    html = digest_html(outbox)
    for width in WIDTHS:
        for scheme in SCHEMES:
            seen = look(browser, html, "digest", width, scheme)
            assert seen["width"] <= width, f"wider than the screen at {width}px {scheme}"
            poor = [c for c in seen["contrasts"] if c["ratio"] < 4.5]
            assert not poor, f"{width}px {scheme}: {poor}"
            assert len(seen["contrasts"]) > 20
            # Dark mode really is dark (the @media rules survived inlining), light is light.
            assert (seen["body"] < 0.05) if scheme == "dark" else (seen["body"] > 0.9)


@pytest.mark.django_db
def test_outlook_gets_a_fixed_width_table_layout(outbox: Path) -> None:
    # Outlook for Windows renders with Word: no max-width, so a 640 px table inside an
    # MSO conditional holds the layout, and every block is a table with width attributes.
    confirm = make_email(
        "confirm",
        {"email": "a@example.org", "confirm_url": "https://x.org/c/", "days": 3},
        "a@example.org",
    )
    for html in (digest_html(outbox), str(confirm.alternatives[0][0])):
        assert '<!--[if mso]><table role="presentation" width="640"' in html
        assert re.search(r'<table role="presentation" class="container" width="100%"', html)
        assert 'class="container"' in html and '<div class="container"' not in html
    assert html.count('<table role="presentation"') >= 2


@pytest.mark.browser
@pytest.mark.django_db
def test_a_confirmation_recaps_the_signup_and_its_link_wraps_on_a_phone(
    browser, outbox: Path
) -> None:
    from digest.models import Topic
    from subscriptions.signup import send_confirmation

    filters = [(f"filter{n}_" + "x" * 300)[:280] + f' "phrase {n}"' for n in range(20)]
    ada = make_subscriber(
        "ada@example.org",
        filters,
        confirmed_at=None,
        frequency="weekly",
        weekday=2,
        hour=7,
        timezone="Europe/Paris",
    )
    ada.topics.set([Topic.objects.create(name="Vision <& language>", slug="vl", query="vlm")])
    send_confirmation(ada)
    [eml] = outbox.glob("confirm-*.eml")
    [html_file] = outbox.glob("confirm-*.html")
    text = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    body = text.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = html_file.read_text()
    assert "Schedule: Weekly, on Wednesdays at 07:00 (Europe/Paris)" in body
    assert "Topics:   Vision <& language>" in body and filters[19] in body
    assert "Weekly, on Wednesdays at 07:00 (Europe/Paris)" in html
    assert "Vision &lt;&amp; language&gt;" in html and html.count('class="reason"') == 20
    for scheme in SCHEMES:
        seen = look(browser, html, "confirm", 375, scheme)
        assert seen["width"] <= 375, f"the confirmation is wider than a phone ({scheme})"
        assert not [c for c in seen["contrasts"] if c["ratio"] < 4.5]
