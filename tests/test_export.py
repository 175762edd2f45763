"""``manage.py export_papers``."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from digest.ingest.store import ingest_source

from .conftest import PAGE_000, PAGE_004


@pytest.mark.django_db
def test_it_writes_one_json_line_per_paper() -> None:
    ingest_source(str(PAGE_000))
    ingest_source(str(PAGE_004))
    out = StringIO()
    call_command("export_papers", stdout=out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(rows) == 98
    assert set(rows[0]) == {
        "title",
        "abstract",
        "arxiv_id",
        "url",
        "authors_count",
        "published_on",
        "upvotes",
        "first_seen_at",
        "pages_seen",
    }
    by_title = {r["title"]: r for r in rows}
    tnt = by_title["Transformer in Transformer"]
    assert tnt["arxiv_id"] is None
    assert tnt["url"] == "https://huggingface.co/papers?q=Transformer+in+Transformer"
    assert (tnt["authors_count"], tnt["published_on"], tnt["upvotes"], tnt["pages_seen"]) == (
        6,
        "2021-02-26",
        1,
        2,
    )
    dino = by_title[
        "DINO-X: A Unified Vision Model for Open-World Object Detection and Understanding"
    ]
    # The text pages show no count for it: unknown, not zero.
    assert (dino["authors_count"], dino["published_on"], dino["upvotes"], dino["pages_seen"]) == (
        None,
        None,
        None,
        1,
    )
    assert dino["abstract"].endswith("recognizing long-tailed objects.")
