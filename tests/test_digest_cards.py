"""What a digest card shows: what the source gives, nothing it does not, and a digest
that stays under Gmail's clipping size whatever it holds."""

from __future__ import annotations

import email
import importlib
import json
import re
from datetime import date, timedelta
from email import policy
from pathlib import Path

import pytest
from django.apps import apps
from django.utils import timezone

from digest.delivery import render
from digest.delivery.pipeline import deliver
from digest.delivery.render import (
    PaperCard,
    Recipient,
    Renderer,
    cut_at_sentence,
    edition_label,
    render_digest,
)
from digest.ingest.store import ingest_bytes
from digest.models import Paper, Sighting

from .conftest import PAGE_000, make_subscriber
from .support import uninlined_css
from .test_sources import FIXTURES

DAILY_JSON = FIXTURES / "json" / "daily_papers_2025-03-11.json"
DAILY_HTML = FIXTURES / "html" / "daily_2025-03-11.html"


def read_eml(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[return-value]


def bodies(outbox: Path, digest_id: int) -> tuple[str, str, int]:
    raw = (outbox / f"digest-{digest_id}.eml").read_bytes()
    msg = email.message_from_bytes(raw, policy=policy.default)
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    return text, html, len(raw)


@pytest.mark.django_db
@pytest.mark.parametrize("page", [DAILY_JSON, DAILY_HTML], ids=["json", "html"])
def test_a_card_shows_authors_links_upvotes_growth_and_the_ai_summary(
    outbox: Path, page: Path
) -> None:
    start = timezone.now() - timedelta(hours=20)
    assert ingest_bytes(page.read_bytes(), source=str(page), now=start).error is None
    # Six hours later the page shows 18 more upvotes for the MoE paper.
    items = json.loads(DAILY_JSON.read_text())
    items[0]["paper"]["upvotes"] = 105
    later = start + timedelta(hours=6)
    assert ingest_bytes(json.dumps(items), source="later.json", now=later).error is None
    ada = make_subscriber("ada@example.org", ["mixture-of-experts"])
    [result] = deliver([ada.pk])
    text, html, _ = bodies(outbox, result.digest_id)

    assert "Mira Okonkwo, Tomás Villanueva, Hana Sato et al. · 4 authors" in text
    assert "Mira Okonkwo, Tomás Villanueva, Hana Sato et al. · 4 authors" in html
    assert "10 Mar 2025 · ▲ 105 · +18 today" in text
    assert "10 Mar 2025 · ▲ 105 · +18 today" in html
    for label, url in [
        ("arXiv", "https://arxiv.org/abs/2503.07365"),
        ("PDF", "https://arxiv.org/pdf/2503.07365"),
        ("Code", "https://github.com/example-lab/moe-bias-router"),
        ("Hugging Face", "https://huggingface.co/papers/2503.07365"),
    ]:
        assert f"{label}: {url}" in text
        assert re.search(rf'<a href="{re.escape(url)}"[^>]*>{label}</a>', html)
    assert "Project page" not in text  # the source gives none
    summary = "A bias-only router update trains sparse MoE models without load-balancing losses."
    assert f"AI summary: {summary}" in " ".join(text.split()) and summary in html
    assert "More: https://arxiv.org/abs/2503.07365" in text
    assert re.search(r'<a href="https://arxiv.org/abs/2503.07365"[^>]*>more</a>', html)
    # The title links to the paper's page; the reason is a chip.
    assert re.search(
        r'<a href="https://huggingface.co/papers/2503.07365"[^>]*>Scaling Sparse', html
    )
    assert re.search(r'<span class="reason"[^>]*>matched your filter', html)
    assert uninlined_css(html) == []


@pytest.mark.django_db
def test_growth_counts_only_since_the_previous_edition(outbox: Path) -> None:
    # The upvotes grew three days ago and not since: a daily digest shows no growth.
    items = json.loads(DAILY_JSON.read_text())
    start = timezone.now() - timedelta(days=4)
    ingest_bytes(json.dumps(items), source="before.json", now=start)
    items[0]["paper"]["upvotes"] = 105
    ingest_bytes(json.dumps(items), source="after.json", now=start + timedelta(days=1))
    ingest_bytes(json.dumps(items), source="today.json", now=timezone.now() - timedelta(hours=1))
    ada = make_subscriber("ada@example.org", ["mixture-of-experts"])
    [result] = deliver([ada.pk])
    text, html, _ = bodies(outbox, result.digest_id)
    assert (
        "10 Mar 2025 · ▲ 105 · via Hugging Face\n" in text
        and "+18" not in text
        and "+18" not in html
    )


@pytest.mark.django_db
def test_papers_from_text_pages_show_no_upvotes_they_do_not_have(outbox: Path) -> None:
    ingest_bytes(PAGE_000.read_bytes(), source=str(PAGE_000), now=timezone.now())
    unknown = Paper.objects.filter(upvotes__isnull=True)
    assert unknown.exists() and not Paper.objects.filter(upvotes=0).exists()
    paper = unknown.first()
    assert paper is not None
    ada = make_subscriber("ada@example.org", [f'"{paper.title}"'])
    [result] = deliver([ada.pk])
    text, html, _ = bodies(outbox, result.digest_id)
    assert paper.title in text
    assert "▲" not in text and "▲" not in html
    assert "upvote" not in text.replace("then by upvotes", "")
    assert "arXiv:" not in text and "PDF:" not in text  # a text page gives no arXiv id


@pytest.mark.django_db
def test_the_migration_forgets_counts_no_page_showed() -> None:
    migration = importlib.import_module("digest.migrations.0008_paper_upvotes_unknown")
    never = Paper.objects.create(title="Never counted", title_key="never counted", abstract="")
    counted = Paper.objects.create(title="Counted zero", title_key="counted zero", abstract="")
    Paper.objects.filter(pk__in=[never.pk, counted.pk]).update(upvotes=0)
    from digest.models import IngestRun

    run = IngestRun.objects.create(source="x", started_at=timezone.now())
    Sighting.objects.create(paper=counted, run=run, upvotes=0)
    migration.forget_unknown_counts(apps, None)
    never.refresh_from_db()
    counted.refresh_from_db()
    assert never.upvotes is None and counted.upvotes == 0


def test_a_summary_is_cut_at_a_sentence_end_else_at_a_word() -> None:
    text = "First sentence is here. Second one, e.g. with an abbreviation. Then " + "word " * 99
    cut, was_cut = cut_at_sentence(text, 120)
    assert was_cut and cut == "First sentence is here. Second one, e.g. with an abbreviation."
    cut, was_cut = cut_at_sentence("word " * 100, 50)
    assert was_cut and cut.endswith("word…") and len(cut) <= 50
    assert cut_at_sentence("Short.  Text\n here.", 300) == ("Short. Text here.", False)


def test_editions_read_as_people_write_dates() -> None:
    assert edition_label("2026-W49") == "Week of 30 November 2026"
    assert edition_label("2026-11-30") == "Monday 30 November 2026"
    assert edition_label("odd") == "odd"


def long_card(pk: int) -> PaperCard:
    words = f"Paper {pk} <b>studies</b> & long-context diffusion " * 12
    return PaperCard(
        id=pk,
        title=(words * 3)[:1000],
        url=f"https://huggingface.co/papers/2503.{pk:05d}",
        abstract=("We show that a very long abstract is long. " * 120)[:6000],
        upvotes=pk * 7,
        published_on=date(2026, 11, 1 + pk % 28),
        authors_count=3000,
        authors=tuple(f"Author <i>{n}</i> Name-With-A-Long-Surname" for n in range(3)),
        gained=pk,
        gained_label="today",
        arxiv_id=f"2503.{pk:05d}",
        github_repo=f"https://github.com/lab/repo-{pk}",
        project_page=f"https://example.org/projects/{pk}/" + "p" * 300,
        ai_summary=("An AI summary that goes on. " * 40) if pk % 2 else "",
    )


@pytest.mark.parametrize("count", [10, 30, 200])
def test_a_digest_of_long_papers_stays_under_90_kb_and_says_what_it_left_out(
    settings, count: int
) -> None:
    settings.DIGEST_MAX_PAPERS = count
    papers = [long_card(pk) for pk in range(1, count + 1)]
    reasons = [f'matched your filter "diffusion <video>" ({n})' for n in range(count)]
    kwargs = {
        "recipient": Recipient(
            email="ada@example.org",
            unsubscribe_url="https://papers.example.org/unsubscribe/t/",
            manage_url="https://papers.example.org/manage/link/m/",
            web_url="https://papers.example.org/d/w/",
        ),
        "frequency": "daily",
        "edition": "2026-11-30",
        # Vote links as long as real ones (subscriptions.tokens.feedback_url).
        "feedback": lambda pk: tuple(
            f"https://papers.example.org/vote/{'f' * 32}.{pk}.{vote}:1tQx9a:{'A' * 43}/"
            for vote in (1, -1)
        ),
    }
    renderer = Renderer()
    subject, text, html = renderer.digest(papers, reasons, **kwargs)  # type: ignore[arg-type]
    size = len(text.encode()) + len(html.encode())
    # The fast path measures the email piece by piece: exactly, without encoding it.
    parts, measured = renderer._digest(papers, reasons, count, **kwargs)  # type: ignore[arg-type]
    assert measured == len(parts[1].encode()) + len(parts[2].encode())
    assert size <= settings.DIGEST_MAX_BYTES <= 88_000
    shown = html.count('class="paper"')
    assert 1 <= shown <= count and text.count("\n   https://huggingface.co/papers/") == shown
    assert html.count(">Less like this</a>") == shown == text.count("Less like this: ")
    assert f"{count} new papers for you" in subject
    if shown < count:
        assert f"Your {count} best matches of this edition; the first {shown} are shown" in text
        assert f"{count - shown} more paper" in html and "see all" in html
    # The footer with the unsubscribe link is always there, past the last card.
    assert html.rindex("Unsubscribe") > html.rindex('class="paper"')
    # Summaries were shortened before any card was dropped.
    if shown < count:
        assert all(len(p) < 200 for p in re.findall(r"AI summary: ([^\n]*)", text))
    # Composed from pieces, it is the email inlined on its own.
    if count <= 30:
        assert (subject, text, html) == render_digest(papers, reasons, **kwargs)  # type: ignore[arg-type]
    # Unlimited (the "view in browser" page), every card is there.
    _, _, whole = Renderer().digest(papers, reasons, fit=False, **kwargs)  # type: ignore[arg-type]
    assert whole.count('class="paper"') == count


def test_markup_in_every_field_of_a_card_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    card = PaperCard(
        id=1,
        title=f"T {evil}",
        url="https://huggingface.co/papers/2503.00001",
        abstract=f"A {evil}",
        upvotes=3,
        authors=(f"Eve {evil}",),
        authors_count=1,
        arxiv_id="2503.00001",
        github_repo="https://github.com/a/b?x=<y>",
        ai_summary=f"S {evil}",
    )
    _, text, html = render_digest(
        [card],
        [f"matched {evil}"],
        recipient=Recipient(
            email="a@example.org",
            unsubscribe_url="https://x.org/u/",
            manage_url="https://x.org/m/",
            web_url="https://x.org/w/",
        ),
        frequency="daily",
        edition="2026-11-30",
    )
    assert "<script>" not in html and html.count("&lt;script&gt;") >= 5
    assert "<y>" not in html
    assert render.card_view(card)["authors"] == f"Eve {evil}"
