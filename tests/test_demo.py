"""``manage.py demo``: real pages to personalised emails on disk."""

from __future__ import annotations

import email
from email import policy
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from digest.models import DigestItem


@pytest.mark.django_db
def test_the_demo_sends_each_subscriber_their_papers_once(outbox: Path) -> None:
    out = StringIO()
    call_command("demo", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[:3] == [
        "ingested 000_10bdf60bb6b29d6a.txt: 63 papers, 63 new, 0 updated",
        "ingested 002_13c422168dbf86c0.txt: 114 papers, 97 new, 17 updated",
        "ingested 004_39ec653689168d0b.txt: 53 papers, 27 new, 26 updated",
    ]
    # The local model, loaded from the installed package with the hub switched off.
    assert lines[3] == "embedded 187 papers with all-MiniLM-L6-v2/96, offline"
    assert lines[4].split() == ["subscriber", "filters", "papers", "matched", "file", "written"]
    files = sorted(outbox.glob("digest-*.eml"))
    assert len(files) == 4
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert msg.get_content_type() == "multipart/alternative"
        html = msg.get_body(("html",)).get_content()
        digest_id = int(path.stem.removeprefix("digest-"))
        titles = DigestItem.objects.filter(digest_id=digest_id).values_list(
            "paper__title", flat=True
        )
        assert titles
        for title in titles:
            assert title.replace("&", "&amp;") in html
        row = next(line for line in lines if msg["To"] in line)
        assert f" {len(titles)} " in row and path.name in row

    again = StringIO()
    call_command("demo", stdout=again)
    assert len(sorted(outbox.glob("digest-*.eml"))) == 4
    assert again.getvalue().count("already sent this period") == 4
    sent = list(DigestItem.objects.values_list("subscriber_id", "paper_id"))
    assert len(sent) == len(set(sent))
