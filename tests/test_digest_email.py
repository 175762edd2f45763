"""The digest email: multipart text + HTML, escaped, with one-click unsubscribe headers."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.models import Digest, Paper

from .conftest import make_subscriber
from .support import uninlined_css


def add_paper(title: str, abstract: str, upvotes: int = 0) -> Paper:
    from digest.ingest.parsers import normalise_title

    return Paper.objects.create(
        title=title, title_key=normalise_title(title), abstract=abstract, upvotes=upvotes
    )


def read_eml(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[return-value]


@pytest.mark.django_db
def test_a_digest_is_multipart_with_both_unsubscribe_headers(outbox: Path) -> None:
    add_paper("Diffusion Transformers at scale", "We scale diffusion models.", upvotes=5)
    ada = make_subscriber("ada@example.org", ["diffusion"])
    [result] = deliver([ada.pk])
    assert result.status == "sent"
    msg = read_eml(outbox / f"digest-{result.digest_id}.eml")
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["To"] == "ada@example.org"
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@papers.example.org>")
    unsubscribe = str(msg["List-Unsubscribe"]).strip()  # may be folded
    assert unsubscribe.startswith(
        "<https://papers.example.org/unsubscribe/"
    ) and unsubscribe.endswith("/>")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = unsubscribe[1:-1]
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Diffusion Transformers at scale" in text and url in text
    assert "Diffusion Transformers at scale" in html and f'href="{url}"' in html
    assert (
        'Why: matched your filter "diffusion" (diffusion in title, diffusion in abstract)' in text
    )
    # CSS is inlined: only the dark-mode @media rules stay in a <style> block.
    assert uninlined_css(html) == [] and 'style="' in html
    assert Digest.objects.get(pk=result.digest_id).message_id == msg["Message-ID"]
    assert (outbox / f"digest-{result.digest_id}.html").read_text() == html


@pytest.mark.django_db
def test_paper_text_is_escaped_in_the_html(outbox: Path) -> None:
    add_paper(
        "<script>alert(1)</script> Diffusion & <b>friends</b>",
        "An <img src=x onerror=alert(2)> abstract.",
    )
    ada = make_subscriber("ada@example.org", ["diffusion"])
    [result] = deliver([ada.pk])
    msg = read_eml(outbox / f"digest-{result.digest_id}.eml")
    html = msg.get_body(("html",)).get_content()
    assert "<script>" not in html and "<img" not in html and "<b>friends" not in html
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt; Diffusion &amp; &lt;b&gt;friends&lt;/b&gt;" in html
    )
    text = msg.get_body(("plain",)).get_content()
    # The text part is not HTML: it shows the characters as they are.
    assert "<script>alert(1)</script> Diffusion & <b>friends</b>" in text
    assert (
        msg["Subject"]
        == "1 new paper for you: <script>alert(1)</script> Diffusion & <b>friends</b>"
    )


@pytest.mark.django_db
def test_papers_are_ranked_by_upvotes_then_recency(outbox: Path) -> None:
    import datetime as dt

    old = add_paper("Video diffusion one", "x", upvotes=3)
    new = add_paper("Video diffusion two", "x", upvotes=3)
    Paper.objects.filter(pk=old.pk).update(published_on=dt.date(2024, 1, 1))
    Paper.objects.filter(pk=new.pk).update(published_on=dt.date(2025, 1, 1))
    top = add_paper("Video diffusion three", "x", upvotes=9)
    add_paper("Unrelated", "nothing here")
    ada = make_subscriber("ada@example.org", ["video diffusion"])
    [result] = deliver([ada.pk], now=timezone.now())
    ranked = list(Digest.objects.get(pk=result.digest_id).items.values_list("paper_id", flat=True))
    assert ranked == [top.pk, new.pk, old.pk]
