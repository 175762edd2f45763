"""Benchmark: filter previews (``/preview.json``) with 5,000 recent papers.

    .venv/bin/python -m bench.preview

On a PostgreSQL database of its own (``bench_preview`` on the server of
``DATABASE_URL``), 5,000 papers seen today (titles and ~1,500-character abstracts from
a word-bigram chain over the example pages, 1-8 authors) and 200 filters drawn as
subscribers write them (:func:`tests.support.synthetic.make_filters`: words, ANDs,
phrases, ORs, exclusions, prefixes, title-only words). Each filter is previewed through
the view (``GET /preview.json?q=…``: parsing, the throttle, the edition key, the engine's
index of :mod:`digest.matching.preview`, the JSON answer).

``seconds`` is the mean time of one preview once the index is built, over the first
pass of the filters (a phrase first met pays for finding its words' positions in the
papers it may match, kept for the next: ``max_seconds``, ``p95_seconds``; its build, once
per edition and process, is ``index_build_seconds``; the check for new papers, once per
``PREVIEW_INDEX_TTL`` seconds and process, ``key_check_seconds``); the baseline is the former
preview, the reference evaluator over every recent paper read from the database
(:func:`digest.matching.query.reference_match`), timed on ``BASELINE_SAMPLE`` of the
filters in the same run. The run fails (exit 1) unless, for every baseline filter, the
engine's count equals the reference's and its listed papers are the reference ranking's
first ten (:func:`digest.matching.engine.reference_top`; for plain words, those holding
them together, as the phrase or within a few words, first). Generated filters that do
not parse (stop words only) are left out, as the settings page refuses them.
Goal: ≤ 0.020 s a preview.
``BENCH_SCALE`` multiplies the papers and filters (at least 200 papers, 20 filters).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from datetime import date, timedelta

import numpy as np

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
PAPERS = max(200, int(5000 * SCALE))
QUERIES = max(20, int(200 * SCALE))
BASELINE_SAMPLE = max(3, int(10 * min(SCALE, 1)))
GOAL = 0.020
DATABASE = "bench_preview"


def main() -> int:
    from tests.support.benchdb import drop_database, setup_bench_django

    setup_bench_django(DATABASE)
    try:
        return run()
    finally:
        drop_database(DATABASE)


def run() -> int:
    from django.conf import settings
    from django.test import RequestFactory
    from django.utils import timezone

    from digest.ingest.parsers import normalise_title
    from digest.matching import preview
    from digest.matching.engine import PaperText, reference_top
    from digest.matching.query import (
        QueryError,
        parse_query,
        reference_match,
        reference_together,
        together_phrase,
    )
    from digest.models import Paper
    from subscriptions.views import preview_json
    from tests.support.synthetic import filter_vocabulary, make_filters, make_papers, read_pages

    def parses(text: str) -> bool:
        # Only filters that parse can be saved (the generator may draw one of stop words).
        try:
            parse_query(text)
        except QueryError:
            return False
        return True

    settings.THROTTLES = {**settings.THROTTLES, "preview-ip": (10**9, 60)}
    rng = np.random.default_rng(20261130)
    titles, abstracts = read_pages()
    texts = make_papers(rng, PAPERS, titles, abstracts)
    vocab, phrases = filter_vocabulary(titles, abstracts)
    filters = [f for f in make_filters(rng, QUERIES, vocab, phrases) if parses(f)]
    now = timezone.now()
    today = date.today()
    upvotes = random.Random(7)
    Paper.objects.bulk_create(
        Paper(
            title=p.title,
            title_key=normalise_title(p.title) + f" {i}",
            abstract=p.abstract,
            authors=list(p.authors),
            authors_count=len(p.authors),
            upvotes=upvotes.randint(0, 500),
            published_on=today - timedelta(days=upvotes.randint(0, 6)),
            first_seen_at=now,
            last_seen_at=now,
        )
        for i, p in enumerate(texts)
    )

    factory = RequestFactory()

    def ask(text: str) -> dict[str, object]:
        response = preview_json(factory.get("/preview.json", {"q": text}))
        assert response.status_code == 200, response.content
        return json.loads(response.content)

    start = time.perf_counter()
    ask(filters[0])  # builds the index
    build = time.perf_counter() - start
    answers = {}
    took = []
    for text in filters:
        start = time.perf_counter()
        answers[text] = ask(text)
        took.append(time.perf_counter() - start)
    engine_seconds = sum(took) / len(took)
    # What checking for new papers costs, once per PREVIEW_INDEX_TTL seconds a process.
    start = time.perf_counter()
    for _ in range(20):
        preview.edition_key()
    key_seconds = (time.perf_counter() - start) / 20

    # The baseline: the reference evaluator over every recent paper, as previews were.
    sample = filters[:BASELINE_SAMPLE]
    counts = {}
    start = time.perf_counter()
    for text in sample:
        query = parse_query(text)
        rows = preview.recent().only("id", "title", "abstract", "authors", "upvotes")
        counts[text] = sum(
            1 for p in rows.iterator() if reference_match(query, p.title, p.abstract, p.authors)
        )
    baseline_seconds = (time.perf_counter() - start) / len(sample)

    rows = list(preview.recent().only("id", "title", "abstract", "authors"))
    in_order = [
        PaperText(p.pk, p.title, p.abstract, tuple(p.authors), -float(i))
        for i, p in enumerate(rows)
    ]
    titles_of = {p.pk: p.title for p in rows}
    agrees = True
    for text in sample:
        expected = reference_top(in_order, [parse_query(text)], top_n=len(in_order))
        phrase = together_phrase(text)
        if phrase is not None:  # papers holding plain words together are listed first
            together = {p.id for p in in_order if reference_together(phrase, p.title, p.abstract)}
            expected.sort(key=lambda e: e[0] not in together)  # stable
        expected = expected[: preview.PREVIEW_LIMIT]
        answer = answers[text]
        got = [p["title"] for p in answer["papers"]]  # type: ignore[attr-defined]
        if answer["count"] != counts[text] or got != [titles_of[pid] for pid, _ in expected]:
            agrees = False
            print(f"preview of {text!r} differs from the reference", file=sys.stderr)

    print(
        json.dumps(
            {
                "name": "preview",
                "seconds": round(engine_seconds, 5),
                "rate": round(1 / engine_seconds, 1),
                "unit": "previews/s",
                "baseline": "reference evaluator over every recent paper (former preview)",
                "baseline_seconds": round(baseline_seconds, 4),
                "ratio": round(baseline_seconds / engine_seconds, 1),
                "goal": f"<= {GOAL} s a preview with 5,000 recent papers",
                "goal_met": engine_seconds <= GOAL,
                "p95_seconds": round(sorted(took)[int(0.95 * (len(took) - 1))], 5),
                "max_seconds": round(max(took), 5),
                "index_build_seconds": round(build, 3),
                "key_check_seconds": round(key_seconds, 4),
                "index_ttl_seconds": settings.PREVIEW_INDEX_TTL,
                "n_papers": PAPERS,
                "n_queries": len(filters),
                "baseline_sample": len(sample),
                "agrees": agrees,
                "bench_scale": SCALE,
            }
        )
    )
    return 0 if agrees else 1


if __name__ == "__main__":
    sys.exit(main())
