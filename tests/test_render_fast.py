"""Digests composed from pieces inlined once are the emails premailer makes one by one."""

from __future__ import annotations

import email
import re
from datetime import date
from email import policy
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone

from digest.delivery import render
from digest.delivery.message import digest_message
from digest.delivery.pipeline import deliver
from digest.delivery.render import PaperCard, Recipient, Renderer, render_digest, render_nothing
from digest.models import Digest, Paper

from .conftest import make_subscriber
from .support import uninlined_css

TRICKY = [
    '<script>alert("x")</script> & <b>bold</b> “quotes” — it\'s',
    "Attention Is All You Need &amp; more <i>",
    "Plain title",
    "Émigré café: naïve résumé ≥ 2 < 3 > 1",
    "A title with a very long run of words that goes on and on past seventy characters",
]


def card(pk: int, title: str, **fields: object) -> PaperCard:
    values: dict[str, object] = {
        "id": pk,
        "title": title,
        "url": f"https://huggingface.co/papers/2401.{pk:05d}",
        "abstract": f"We study {title} <em>carefully</em> & at length. " * 12,
        "upvotes": pk % 4 if pk % 5 else None,
        "published_on": date(2025, 3, 1 + pk % 27) if pk % 2 else None,
        "authors_count": pk % 3 or None,
        "authors": tuple(TRICKY[(pk + n) % len(TRICKY)] for n in range(pk % 4)),
        "gained": pk % 3 or None,
        "gained_label": "today",
        "arxiv_id": f"2401.{pk:05d}" if pk % 2 == 0 else None,
        "github_repo": f"https://github.com/lab/r{pk}?a=1&b=2" if pk % 4 == 1 else "",
        "project_page": f"https://example.org/{pk}/" if pk % 3 == 1 else "",
        "ai_summary": f"In short: {title} <i>&</i>." if pk % 3 == 0 else "",
    }
    values.update(fields)
    return PaperCard(**values)  # type: ignore[arg-type]


def recipient(email: str) -> Recipient:
    return Recipient(
        email=email,
        unsubscribe_url="https://papers.example.org/unsubscribe/t/",
        manage_url="https://papers.example.org/manage/link/m/",
        web_url="https://papers.example.org/d/w/",
    )


def feedback_links(tag: str):  # type: ignore[no-untyped-def]
    """A recipient's "more / less like this" URLs, as long as real ones (~120 characters)."""

    def links(paper_id: int) -> tuple[str, str]:
        token = f"{tag}.{paper_id}.{{}}:1tQx9a:" + "A-_b" * 11
        base = "https://papers.example.org/vote/"
        return base + token.format(1) + "/", base + token.format(-1) + "/"

    return links


def squeeze(html: str) -> str:
    """Whitespace runs collapsed, and none left between tags."""
    return re.sub(r">\s+<", "><", re.sub(r"\s+", " ", html)).strip()


PAPERS = [card(i, TRICKY[i % len(TRICKY)] + f" #{i}") for i in range(1, 16)]

SUBSCRIBERS = [
    # (address, papers chosen, reasons, frequency, edition)
    ("ada@example.org", PAPERS[:10], 'matched "mamba" in title', "daily", "2026-03-08"),
    ("o'brien+x@example.org", PAPERS[3:4], 'topic "Vision & <Language>"', "weekly", "2026-W10"),
    ("grace&co@example.org", PAPERS[5:12], 'matched "a<b" in abstract', "daily", "2026-03-08"),
    (
        "alan@example.org",
        PAPERS[14:15] + PAPERS[0:2],
        'matched "x" in title',
        "daily",
        "2026-03-09",
    ),
]


@pytest.mark.parametrize(("address", "papers", "reason", "frequency", "edition"), SUBSCRIBERS)
def test_a_composed_digest_is_the_email_inlined_on_its_own(
    settings, address: str, papers: list[PaperCard], reason: str, frequency: str, edition: str
) -> None:
    renderer = Renderer()
    # Warm the renderer with the other subscribers, so pieces are reused across emails.
    for other in SUBSCRIBERS:
        renderer.digest(
            other[1],
            [other[2]] * len(other[1]),
            recipient=Recipient(
                email=other[0],
                unsubscribe_url="https://papers.example.org/unsubscribe/warm/",
                manage_url="https://papers.example.org/manage/link/warm/",
                web_url="https://papers.example.org/d/warm/",
            ),
            frequency=other[3],
            edition=other[4],
        )
    reasons = [f"{reason} ({n})" for n in range(len(papers))]
    kwargs = {
        "email": address,
        "unsubscribe_url": f"https://papers.example.org/unsubscribe/{address.split('@')[0]}:tok-_1/",
        "manage_url": f"https://papers.example.org/manage/link/{address.split('@')[0]}:m-_2/",
        "web_url": f"https://papers.example.org/d/{len(address)}:w-_3/",
    }
    feedback = feedback_links(address.split("@")[0])
    edition_of = {
        "recipient": Recipient(**kwargs),
        "frequency": frequency,
        "edition": edition,
        "feedback": feedback,
    }
    fast_subject, fast_text, fast_html = renderer.digest(papers, reasons, **edition_of)
    subject, text, html = render_digest(papers, reasons, **edition_of)
    assert squeeze(fast_html) == squeeze(html)
    assert fast_text == text and fast_subject == subject
    # The values really are there, escaped where HTML needs it.
    assert uninlined_css(fast_html) == [] and 'style="' in fast_html
    assert address.replace("&", "&amp;") in fast_html
    assert "<script>" not in fast_html and "<b>bold" not in fast_html
    if any("<script>" in p.title for p in papers):
        assert "&lt;script&gt;" in fast_html
    assert reasons[0].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in fast_html
    for link in ("unsubscribe_url", "manage_url", "web_url"):
        assert f'href="{kwargs[link].replace("&", "&amp;")}"' in fast_html
        assert kwargs[link] in fast_text
    # Each card carries this recipient's own vote links, in both parts.
    for paper in papers:
        for url in feedback(paper.id):
            assert fast_html.count(f'href="{url.replace("&", "&amp;")}"') == 1
            assert fast_text.count(url) == 1
    assert (
        fast_html.count(">More like this</a>") == len(papers) == fast_text.count("More like this: ")
    )
    # Without links (a moderator's preview) the same renderer gives cards without them.
    _, bare_text, bare_html = renderer.digest(papers, reasons, **{**edition_of, "feedback": None})
    assert "like this" not in bare_html and "like this" not in bare_text
    assert squeeze(bare_html) == squeeze(
        render_digest(papers, reasons, **{**edition_of, "feedback": None})[2]
    )


def test_the_nothing_matched_note_is_composed_alike() -> None:
    kwargs = {
        "recipient": recipient("a&b@example.org"),
        "frequency": "weekly",
        "edition": "2026-W10",
    }
    renderer = Renderer()
    assert renderer.nothing(**kwargs) == renderer.nothing(**kwargs)
    fast, reference = renderer.nothing(**kwargs), render_nothing(**kwargs)
    assert fast[:2] == reference[:2] and squeeze(fast[2]) == squeeze(reference[2])
    assert "a&amp;b@example.org" in fast[2]


def test_a_slot_must_be_a_whole_url() -> None:
    with pytest.raises(ValueError, match="whole URL"):
        render.Piece.parse(f'<a href="https://x.org/?u={render.slot("email")}">', html=True)
    piece = render.Piece.parse(f'<a href="{render.slot("unsubscribe_url")}">', html=True)
    with pytest.raises(ValueError, match="plain ASCII"):
        piece.fill({"unsubscribe_url": 'https://x.org/" onclick="evil'})


def add_paper(title: str, abstract: str, upvotes: int = 0) -> Paper:
    from digest.ingest.parsers import normalise_title

    return Paper.objects.create(
        title=title, title_key=normalise_title(title), abstract=abstract, upvotes=upvotes
    )


@pytest.mark.django_db
def test_delivery_inlines_css_once_per_piece_not_per_recipient(
    outbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n, title in enumerate(TRICKY * 2):
        add_paper(f"{title} diffusion {n}", "A diffusion <model> & friends.", upvotes=n)
    subscribers = [make_subscriber(f"reader{n}@example.org", ["diffusion"]) for n in range(25)]
    calls = []
    inline = render.inline_css
    monkeypatch.setattr(render, "inline_css", lambda html: calls.append(1) or inline(html))
    # One instant for sending and for the reference below: signed links carry the time.
    instant = timezone.now()
    with time_machine.travel(instant, tick=False):
        results = deliver([s.pk for s in subscribers])
    assert [r.status for r in results] == ["sent"] * 25
    # The batch's ten cards in one run and one layout, for 25 emails (one premailer
    # run each would be 25); a second batch of the same papers inlines nothing.
    assert len(calls) == 2
    later = [make_subscriber(f"later{n}@example.org", ["diffusion"]) for n in range(5)]
    assert [r.status for r in deliver([s.pk for s in later])] == ["sent"] * 5
    assert len(calls) == 2
    # What went out is what the "view in browser" page shows, rendered on its own.
    monkeypatch.setattr(render, "inline_css", inline)
    for result in results[:3]:
        sent = email.message_from_bytes(
            (outbox / f"digest-{result.digest_id}.eml").read_bytes(), policy=policy.default
        )
        html = sent.get_body(("html",)).get_content()  # type: ignore[union-attr]
        with time_machine.travel(instant, tick=False):
            reference = digest_message(Digest.objects.get(pk=result.digest_id))
        assert squeeze(html) == squeeze(reference.alternatives[0][0])
        assert sent["Message-ID"] == reference.extra_headers["Message-ID"]


def test_a_renderer_shows_a_papers_new_values_and_keeps_at_most_its_pieces() -> None:
    renderer = Renderer(max_pieces=3)
    kwargs = {
        "recipient": recipient("ada@example.org"),
        "frequency": "daily",
        "edition": "2026-11-21",
    }
    before = card(7, "Sparse attention, first version", upvotes=3)
    after = card(7, "Sparse attention, revised", upvotes=40)
    _, _, html = renderer.digest([before], ["r"], **kwargs)  # type: ignore[arg-type]
    assert "first version" in html
    subject, text, html = renderer.digest([after], ["r"], **kwargs)  # type: ignore[arg-type]
    # Same paper id, new values: a new card, the same as rendering on its own.
    assert "revised" in html and "first version" not in html and "▲ 40" in text
    alone = render_digest([after], ["r"], **kwargs)  # type: ignore[arg-type]
    assert (subject, squeeze(text), squeeze(html)) == (
        alone[0],
        squeeze(alone[1]),
        squeeze(alone[2]),
    )
    for n in range(10):
        renderer.digest([card(100 + n, f"Paper {n}")], ["r"], **kwargs)  # type: ignore[arg-type]
        assert len(renderer._cards) <= 3 and len(renderer._subjects) <= 3
    # Two cached cards and two new ones overflow the cache: all four are inlined again.
    papers = [card(108, "Paper 8"), card(109, "Paper 9"), card(200, "New A"), card(201, "New B")]
    _, text, html = renderer.digest(papers, ["r"] * 4, **kwargs)  # type: ignore[arg-type]
    alone = render_digest(papers, ["r"] * 4, **kwargs)  # type: ignore[arg-type]
    assert (squeeze(text), squeeze(html)) == (squeeze(alone[1]), squeeze(alone[2]))
