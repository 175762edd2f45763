"""Benchmark: ingest 10,000 papers from generated pages into PostgreSQL.

100 pages of 100 papers, alternately in the daily-papers JSON API format (arXiv ids,
authors, keywords) and the saved text format (titles only), with words drawn from the
example pages in ``examples/pages/``. Each page repeats 20 papers of the page before it,
with more upvotes, so updates and merges across formats are measured as well as inserts.

Measured: :func:`digest.ingest.ingest_bytes` on every page, parsing included. Baseline, in
the same run on a fresh database: the same parsing, then one paper at a time — look it up
by arXiv id or title, ``save()`` it, create its sighting — on the first 10 pages (1,000
papers). ``ratio`` is the rate over the baseline rate.

Uses its own database, ``bench_ingest``, on the server of ``DATABASE_URL`` (a PostgreSQL
URL); it is dropped and created afresh on every run. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "bench_ingest"
PAGES, PER_PAGE, REPEATED = 100, 100, 20
BASELINE_PAGES = 10
SEED = 20250311


def bench_database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit("bench/ingest.py needs DATABASE_URL=postgres://... (the server to use)")
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def recreate_database(url: str) -> None:
    """Drop and create the bench database, so every run starts from the current models."""
    import psycopg

    parts = urlsplit(url)
    maintenance = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def setup_django() -> None:
    os.environ["DATABASE_URL"] = bench_database_url()
    recreate_database(os.environ["DATABASE_URL"])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digest.settings")
    import django

    django.setup()
    from django.conf import settings

    # The local default is DEBUG on, which keeps every query in memory.
    settings.DEBUG = False
    create_schema()


def create_schema() -> None:
    """``migrate``; while model changes still lack their migrations, the tables are made
    straight from the models instead (as ``pytest --nomigrations`` does)."""
    from django.apps import apps
    from django.conf import settings
    from django.core.management import call_command
    from django.db.migrations.autodetector import MigrationAutodetector
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.state import ProjectState

    loader = MigrationLoader(None, ignore_no_migrations=True)
    pending = MigrationAutodetector(loader.project_state(), ProjectState.from_apps(apps)).changes(
        graph=loader.graph
    )
    if pending:
        print(
            f"note: models of {', '.join(sorted(pending))} have changes without migrations; "
            "creating the tables from the models",
            file=sys.stderr,
        )
        settings.MIGRATION_MODULES = {app.label: None for app in apps.get_app_configs()}
        call_command("migrate", run_syncdb=True, verbosity=0)
    else:
        call_command("migrate", verbosity=0)


# --- Generated pages ----------------------------------------------------------------


def vocabulary() -> tuple[list[str], list[str]]:
    """Words of the example pages' titles and of their abstracts."""
    from digest.parsers import parse_page

    title_words: list[str] = []
    abstract_words: list[str] = []
    for page in sorted((ROOT / "examples" / "pages").glob("*.txt")):
        for paper in parse_page(page.read_bytes(), source=str(page)).papers:
            title_words.extend(paper.title.split())
            abstract_words.extend(paper.abstract.split())
    return title_words, abstract_words


def generate_papers(rng: random.Random) -> list[list[dict[str, Any]]]:
    """``PAGES`` lists of ``PER_PAGE`` papers; each list repeats ``REPEATED`` papers of
    the one before, with more upvotes."""
    title_words, abstract_words = vocabulary()
    pages: list[list[dict[str, Any]]] = []
    serial = 0
    for index in range(PAGES):
        repeated = [
            {**paper, "upvotes": paper["upvotes"] + rng.randint(1, 50)}
            for paper in (pages[-1][:REPEATED] if pages else [])
        ]
        fresh = []
        for _ in range(PER_PAGE - len(repeated)):
            serial += 1
            fresh.append(
                {
                    # A serial number keeps titles (the identity of text-page papers) apart.
                    "title": " ".join(rng.choices(title_words, k=rng.randint(5, 12)))
                    + f" {serial}",
                    "summary": " ".join(rng.choices(abstract_words, k=rng.randint(80, 200))),
                    "id": f"25{index % 12 + 1:02d}.{serial:05d}",
                    "authors": [
                        {"name": f"{rng.choice(title_words)} {rng.choice(title_words)}"}
                        for _ in range(rng.randint(1, 12))
                    ],
                    "publishedAt": (date(2025, 1, 1) + timedelta(days=index)).isoformat(),
                    "upvotes": rng.randint(0, 300),
                    "ai_keywords": rng.sample(title_words, 4),
                    "githubRepo": f"https://github.com/lab-{serial % 97}/repo-{serial}",
                }
            )
        # Trending papers move up the page.
        pages.append(repeated[::-1] + fresh)
    return pages


def json_page(papers: list[dict[str, Any]]) -> bytes:
    """The daily-papers API shape (see digest.parsers.hf_json)."""
    return json.dumps(
        [{"paper": p, "title": p["title"], "numComments": len(p["authors"])} for p in papers]
    ).encode()


def text_page(papers: list[dict[str, Any]], page_day: date) -> bytes:
    """The saved text page shape (see digest.parsers.text)."""
    lines = ["new", "", "Daily Papers", "", page_day.strftime("%b %-d"), ""]
    for p in papers:
        published = date.fromisoformat(p["publishedAt"])
        lines += [
            p["title"],
            "",
            p["summary"],
            "",
            f"  • {len(p['authors'])} authors",
            "·",
            f"{published.strftime('%b %-d, %Y')} {p['upvotes']}",
            "",
        ]
    return "\n".join(lines).encode()


def generate_pages() -> list[tuple[str, bytes]]:
    rng = random.Random(SEED)
    pages = []
    for index, papers in enumerate(generate_papers(rng)):
        if index % 2 == 0:
            pages.append((f"bench/page-{index:03d}.json", json_page(papers)))
        else:
            day = date(2025, 1, 1) + timedelta(days=index)
            pages.append((f"bench/page-{index:03d}.txt", text_page(papers, day)))
    return pages


# --- The two ways to store them -----------------------------------------------------


def ingest_bulk(pages: list[tuple[str, bytes]]) -> int:
    from digest.ingest import ingest_bytes

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

    from digest.models import IngestRun, Paper, Sighting
    from digest.parsers import normalise_title, parse_page

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


def main() -> None:
    setup_django()
    from digest.models import Paper

    pages = generate_pages()

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
            }
        )
    )


if __name__ == "__main__":
    main()
