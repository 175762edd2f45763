"""Benchmark: ingest 10,000 papers from generated pages into PostgreSQL.

100 pages of 100 papers, alternately in the daily-papers JSON API format (arXiv ids,
authors, keywords) and the saved text format (titles only), with words drawn from the
example pages in ``examples/pages/``. Each page repeats 20 papers of the page before it,
with more upvotes, so updates and merges across formats are measured as well as inserts.

Measured: :func:`digest.ingest.store.ingest_bytes` on every page, parsing included. Baseline, in
the same run on a fresh database: the same parsing, then one paper at a time — look it up
by arXiv id or title, ``save()`` it, create its sighting — on the first 10 pages (1,000
papers). ``ratio`` is the rate over the baseline rate.

The arXiv case (fields ``arxiv_*``): a day's announcement of 1,000 entries (titles,
abstracts of 120-220 words, up to 30 authors, 1-4 categories) stored with 50 topics
(words, phrases and ``cat:`` queries) to tag, first from the API's Atom feed into empty
tables, then the same day from the announcement RSS (every paper merged by id). Measured:
:func:`~digest.ingest.store.ingest_bytes` on each feed, parsing, storing and tagging
included (``arxiv_cpu_seconds_per_1000``: this process's CPU time alone). Goal: at most
1 s per 1,000 papers for each feed, wall clock, on one core; the baseline is
the Hugging Face pages' rate of the same run (``rate``), and ``arxiv_ratio`` the slower
feed's rate over it. Checked: one row per paper, each with its categories, and the
topic tags equal to the reference evaluator's.

``BENCH_SCALE`` (float, default 1) multiplies the arXiv case's entries (at least 50) and
topics (at least 5).

Uses its own database, ``bench_ingest``, on the server of ``DATABASE_URL`` (a PostgreSQL
URL); it is dropped and created afresh on every run. ``BENCH_SCALE`` multiplies the
pages (at least 2, baseline at least 1). Prints one JSON line; exits 1 when the two ways
store a different number of papers.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from tests.support.arxiv import ARXIV_CATEGORIES, atom_feed, make_entries, rss_feed
from tests.support.benchdb import setup_bench_django
from tests.support.synthetic import generate_pages

BENCH_DB = "bench_ingest"
SCALE = float(os.environ.get("BENCH_SCALE") or 1)
PAGES = max(2, int(100 * SCALE))
BASELINE_PAGES = max(1, int(10 * SCALE))
SEED = 20250311
GOAL = 2_000  # papers/s


# --- The two ways to store them -----------------------------------------------------


def ingest_bulk(pages: list[tuple[str, bytes]]) -> int:
    from digest.ingest.store import ingest_bytes

    parsed = 0
    for source, data in pages:
        result = ingest_bytes(data, source=source)
        if result.error:
            raise SystemExit(f"bench page failed: {result.error}")
        parsed += result.papers
    return parsed


def ingest_naive(pages: list[tuple[str, bytes]]) -> int:
    """One paper at a time: look it up, save it, create its sighting."""
    from django.db import transaction
    from django.utils import timezone

    from digest.ingest.parsers import normalise_title, parse_page
    from digest.models import IngestRun, Paper, Sighting

    parsed = 0
    for source, data in pages:
        now = timezone.now()
        page = parse_page(data, source=source, today=timezone.localdate(now))
        with transaction.atomic():
            run = IngestRun.objects.create(source=source, format=page.format, started_at=now)
            for p in page.papers:
                key = normalise_title(p.title)
                paper = None
                if p.arxiv_id:
                    paper = Paper.objects.filter(arxiv_id=p.arxiv_id).first()
                if paper is None:
                    paper = Paper.objects.filter(title_key=key).first()
                if paper is None:
                    paper = Paper(title=p.title, title_key=key, abstract=p.abstract)
                    run.papers_new += 1
                else:
                    run.papers_updated += 1
                paper.arxiv_id = paper.arxiv_id or p.arxiv_id
                paper.upvotes = p.upvotes if p.upvotes is not None else paper.upvotes
                paper.authors = list(p.authors) or paper.authors
                paper.authors_count = paper.authors_count or p.authors_count
                paper.published_on = paper.published_on or p.published_on
                paper.ai_keywords = list(p.ai_keywords) or paper.ai_keywords
                paper.github_repo = p.github_repo or paper.github_repo
                paper.num_comments = p.num_comments
                paper.last_seen_at = now
                paper.save()
                Sighting.objects.get_or_create(
                    paper=paper, run=run, defaults={"upvotes": p.upvotes, "seen_at": now}
                )
                parsed += 1
            run.papers_parsed = len(page.papers)
            run.status = IngestRun.OK
            run.finished_at = timezone.now()
            run.save()
    return parsed


def empty_tables() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE digest_sighting, digest_ingestrun, digest_paper_topics, digest_paper "
            "RESTART IDENTITY CASCADE"
        )
        cursor.execute("VACUUM ANALYZE")


def timed(fn: Any, pages: list[tuple[str, bytes]]) -> tuple[int, float]:
    start = time.perf_counter()
    count = fn(pages)
    return count, time.perf_counter() - start


ARXIV_ENTRIES = 1000
ARXIV_TOPICS = 50
ARXIV_GOAL_SECONDS_PER_1000 = 1.0
_TOPIC_WORDS = (
    "language model; attention; diffusion; robot; graph; retrieval; benchmark; alignment; "
    "reasoning; sparse; video; speech; protein; quantum; federated; causal; kernel; agent; "
    "memory; scaling; adversarial; translation; segmentation; planning; molecule"
).split("; ")


def arxiv_topics(count: int) -> dict[str, str]:
    """``count`` topic queries: words, phrases, categories and both, as moderators
    write them."""
    queries = {}
    for n in range(count):
        word = _TOPIC_WORDS[n % len(_TOPIC_WORDS)]
        category = ARXIV_CATEGORIES[n % len(ARXIV_CATEGORIES)]
        word = f'"{word}"' if " " in word else word
        queries[f"topic-{n}"] = [
            word,
            f"cat:{category}",
            f"{word} cat:{category.split('.')[0]}",
            f"{word} OR cat:{category} -adversarial",
        ][n % 4]
    return queries


def arxiv_case(scale: float) -> dict[str, Any]:
    """Ingest one announcement day as Atom, then as RSS; return the ``arxiv_*`` fields.
    Exits non-zero when the stored papers or tags are wrong."""
    from digest.ingest.store import ingest_bytes
    from digest.matching.query import parse_query, reference_match
    from digest.models import Paper, Topic

    n_entries = max(50, round(ARXIV_ENTRIES * scale))
    n_topics = max(5, round(ARXIV_TOPICS * scale))
    entries = make_entries(n_entries, seed=SEED)
    topics = arxiv_topics(n_topics)
    Topic.objects.bulk_create(Topic(name=s, slug=s, query=q) for s, q in topics.items())
    feeds = [("atom", atom_feed(entries)), ("rss", rss_feed(entries))]
    seconds, cpu = {}, {}
    for name, data in feeds:
        start, start_cpu = time.perf_counter(), time.process_time()
        result = ingest_bytes(data, source=f"bench-arxiv-{name}")
        seconds[name] = time.perf_counter() - start
        cpu[name] = time.process_time() - start_cpu
        if result.error or result.papers != n_entries:
            raise SystemExit(f"arXiv {name} feed failed: {result.error or result.papers}")

    stored = list(Paper.objects.values_list("pk", "title", "abstract", "authors", "categories"))
    if len(stored) != n_entries or any(not row[4] for row in stored):
        raise SystemExit(f"arXiv case: {len(stored)} papers stored for {n_entries} entries")
    tagged = set(Paper.topics.through.objects.values_list("topic__query", "paper_id"))
    expected = set()
    for query_text in topics.values():
        query = parse_query(query_text)
        for pk, title, abstract, authors, categories in stored:
            if reference_match(query, title, abstract, authors, categories):
                expected.add((query_text, pk))
    if tagged != expected:
        raise SystemExit(
            f"arXiv case: {len(tagged)} topic tags, the reference gives {len(expected)}"
        )
    per_1000 = {k: v * 1000 / n_entries for k, v in seconds.items()}
    return {
        "arxiv_entries": n_entries,
        "arxiv_topics": n_topics,
        "arxiv_tags": len(tagged),
        "arxiv_atom_seconds": round(seconds["atom"], 3),
        "arxiv_rss_seconds": round(seconds["rss"], 3),
        "arxiv_seconds_per_1000": round(max(per_1000.values()), 3),
        # This process's CPU alone (PostgreSQL's work is not counted): the figure that
        # does not depend on how busy the database server's cores are.
        "arxiv_cpu_seconds_per_1000": round(max(cpu.values()) * 1000 / n_entries, 3),
        "arxiv_rate": round(n_entries / max(seconds.values()), 1),
        "arxiv_goal": f"<= {ARXIV_GOAL_SECONDS_PER_1000} s per 1,000 papers, Atom and RSS",
        "arxiv_goal_met": max(per_1000.values()) <= ARXIV_GOAL_SECONDS_PER_1000,
    }


def main() -> None:
    setup_bench_django(BENCH_DB)
    from digest.models import Paper

    pages = generate_pages(SEED)[:PAGES]

    baseline_papers, baseline_seconds = timed(ingest_naive, pages[:BASELINE_PAGES])
    naive_rows = Paper.objects.count()
    empty_tables()
    n_papers, seconds = timed(ingest_bulk, pages)
    bulk_rows = Paper.objects.count()
    # Both ways must store the same papers; compare on the baseline's pages.
    empty_tables()
    ingest_bulk(pages[:BASELINE_PAGES])
    if Paper.objects.count() != naive_rows:
        raise SystemExit(
            f"the two ways disagree: {Paper.objects.count()} papers vs {naive_rows} stored"
        )

    rate = n_papers / seconds
    baseline_rate = baseline_papers / baseline_seconds
    empty_tables()
    arxiv = arxiv_case(float(os.environ.get("BENCH_SCALE") or 1))
    arxiv["arxiv_baseline"] = "the Hugging Face pages' rate above (rate)"
    arxiv["arxiv_ratio"] = round(arxiv["arxiv_rate"] / rate, 2)
    print(
        json.dumps(
            {
                "name": "ingest",
                "seconds": round(seconds, 3),
                "rate": round(rate, 1),
                "unit": "papers/s",
                "ratio": round(rate / baseline_rate, 2),
                "baseline": "one paper at a time: look up, save(), create its sighting",
                "baseline_rate": round(baseline_rate, 1),
                "baseline_papers": baseline_papers,
                "n_papers": n_papers,
                "n_pages": len(pages),
                "distinct_papers": bulk_rows,
                **arxiv,
                "agrees": True,  # else it exited above
                "bench_scale": SCALE,
                "goal": GOAL,
                "goal_met": rate >= GOAL,
            }
        )
    )


if __name__ == "__main__":
    main()
