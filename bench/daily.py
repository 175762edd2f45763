"""Benchmark: the daily run end to end, on the production path, with a slow mail provider.

    DATABASE_URL=postgres://… .venv/bin/python -m bench.daily

A synthetic population that looks like real subscribers (:mod:`tests.support.synthetic`):
100,000 subscribers (``BENCH_SUBSCRIBERS``, × ``BENCH_SCALE``), 1-20 filters each
(median 4) from a Zipf vocabulary of ~38,000 words and phrases with phrases, ``OR``,
``NOT``, prefixes and ``title:``/``abstract:``/``author:`` fields, 30% following 1-3 of 50
topics, 15% weekly, timezones spread over 15 zones. The papers: an edition of 1,000
papers seen in the last two days and 1,500 older ones, with 8 days of sightings from
32 ingest runs; 7 days of earlier digests per daily subscriber (one week for weekly
ones), 5 papers each, some of them papers of today's edition (never sent twice). All
seeded in bulk with ``unnest`` (outside the timed part) in a database of its own,
``bench_daily``, on the server of ``DATABASE_URL``.

Timed: from the beat's tick (``send_due_digests``, sent to Redis as the beat sends it)
that finds every subscriber due, to the last message the mail provider accepted.
``celery worker`` processes (prefork, one more than the cores; ``BENCH_WORKERS``
overrides) on production settings plan, match, render and send, over SMTP, to
:class:`tests.support.mailsink.LatencySink` on loopback, which answers each message
after ``BENCH_MAIL_LATENCY_MS`` (default 50) ms and counts every message by
``X-Digest-ID``. ``DIGEST_SEND_CONCURRENCY`` and ``DIGEST_CHUNK_SIZE`` are passed to
the workers when set.

Reported: ``seconds``, ``rate`` (digests/s), ``p50_seconds``/``p99_seconds`` (from the
tick to each digest's ``sent_at``); CPU per digest of the workers, PostgreSQL (the
backends of this database) and the mail sink, all read from ``/proc``; CPU milliseconds
per digest by stage (``plan_and_match`` and the ``of_which_match`` part, ``render``,
``compose``, ``send``, ``other_in_tasks``, ``database``) and matching microseconds per
subscriber, measured in the workers themselves by CPU timers around each stage
(:mod:`bench.stages`), the database's as the CPU of its backends; and ``exactly_once``: every due
subscriber has one digest this period, each sent one arrived exactly once with its
Message-ID, each empty one never — else the bench exits 1. ``raw_rate`` is the
machine's raw mail path in the same run: Postfix's ``smtp-source`` sending as many
messages of the same mean size through the same kind of sink, latency and concurrency
(worker processes × send concurrency), at most 100,000 of them (``raw_messages``);
``ratio_to_raw`` = ``rate`` / ``raw_rate``. A progress line goes to stderr every minute.

Goals: ≥ 1,000 digests/s, ``ratio_to_raw`` ≥ 0.5, ≤ 50 µs of matching per subscriber.

The synthetic subscribers have no votes, so their digests are keyword-only. What the
learned relevance (docs/relevance.md) would add is measured beside the run, in this
process: ``relevance_us_per_subscriber``, the CPU of
:func:`digest.relevance.score.learned_scores_many` for as many subscribers, every one
with a profile (30% with two disliked papers), against an edition as large as this one,
in chunks of ``DIGEST_CHUNK_SIZE`` (:func:`tests.support.synthetic.relevance_scoring_cost`;
goal ≤ 50 µs); ``relevance_bytes_per_subscriber``, the profile stored per subscriber.
Needs ``/usr/sbin/smtp-source`` (Debian's ``postfix``; ``make bench`` installs it).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np

from tests.support import ROOT
from tests.support.benchdb import bench_database_name, drop_database, setup_bench_django
from tests.support.workers import stop_process_group

BENCH_DB = "bench_daily"
SCALE = float(os.environ.get("BENCH_SCALE") or 1)
SUBSCRIBERS = max(200, int(int(os.environ.get("BENCH_SUBSCRIBERS") or 100_000) * SCALE))
EDITION_PAPERS, OLDER_PAPERS = 1_000, 1_500
WEEKLY_SHARE = 0.15
LATENCY = float(os.environ.get("BENCH_MAIL_LATENCY_MS") or 50) / 1000
WORKERS = int(os.environ.get("BENCH_WORKERS") or (os.cpu_count() or 2) + 1)
GOAL_RATE, GOAL_RATIO, GOAL_MATCH_US = 1_000, 0.5, 50.0
STALL_SECONDS = 120  # no digest planned or sent for this long: the run is stuck
RAW_SAMPLE = 100_000  # the raw mail path's rate is measured on at most this many messages
PROGRESS_SECONDS = 60  # a progress line on stderr this often during the timed run
SEED = 20261130
BROKER_URL = (
    os.environ.get("TEST_BROKER_URL")
    or os.environ.get("CELERY_BROKER_URL")
    or "redis://127.0.0.1:6379/15"
)
SMTP_SOURCE = Path("/usr/sbin/smtp-source")
TICKS = os.sysconf("SC_CLK_TCK")

setup_bench_django(BENCH_DB)

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from tests.support.mailsink import LatencySink  # noqa: E402

# --- Seeding, in bulk ---------------------------------------------------------------


def seed(rng: np.random.Generator, now) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Papers, sightings, topics, ``SUBSCRIBERS`` subscribers due at ``now``, their
    filters and topics, earlier digests and their items. Returns the subscriber ids and
    counts."""
    from digest.ingest.parsers import normalise_title
    from digest.models import IngestRun, Paper, Sighting, Topic
    from tests.support.synthetic import (
        filter_vocabulary,
        make_papers,
        make_population,
        make_topics,
        population_vocabulary,
        read_pages,
    )

    titles, abstracts = read_pages()
    texts = make_papers(rng, EDITION_PAPERS + OLDER_PAPERS, titles, abstracts)
    papers = []
    for i, p in enumerate(texts):
        if i < EDITION_PAPERS:  # today's edition: seen in the last 40 hours
            last_seen = now - timedelta(hours=float(rng.uniform(0, 40)))
        else:  # seen 2 to 8 days ago
            last_seen = now - timedelta(days=float(rng.uniform(2.1, 7.9)))
        first_seen = last_seen - timedelta(hours=float(rng.uniform(6, 72)))
        papers.append(
            Paper(
                arxiv_id=f"2511.{i:05d}",
                title=p.title,
                title_key=normalise_title(p.title),
                abstract=p.abstract,
                authors=list(p.authors),
                authors_count=len(p.authors),
                published_on=first_seen.date(),
                upvotes=int(rng.integers(0, 400)),
                first_seen_at=first_seen,
                last_seen_at=last_seen,
            )
        )
    papers = Paper.objects.bulk_create(papers, batch_size=500)
    runs = IngestRun.objects.bulk_create(
        IngestRun(
            source=f"bench/run-{k}",
            status=IngestRun.OK,
            started_at=now - timedelta(hours=6 * k),
            finished_at=now - timedelta(hours=6 * k),
        )
        for k in range(32)
    )
    sightings = []
    for paper in papers:
        votes = 0
        for run in reversed(runs):  # oldest first
            if paper.first_seen_at <= run.started_at <= paper.last_seen_at:
                votes += int(rng.integers(0, 40))
                sightings.append(
                    Sighting(paper=paper, run=run, upvotes=votes, seen_at=run.started_at)
                )
    Sighting.objects.bulk_create(sightings, batch_size=2_000)

    topic_queries = make_topics(rng, *filter_vocabulary(titles, abstracts))
    Topic.objects.bulk_create(
        Topic(name=f"Topic {tid}", slug=f"topic-{tid}", query=query)
        for tid, query in topic_queries.items()
    )
    topic_ids = list(Topic.objects.order_by("pk").values_list("pk", flat=True))

    vocab = population_vocabulary(titles, abstracts)
    total = SUBSCRIBERS
    population = make_population(rng, total, vocab)
    weekly = rng.random(total) < WEEKLY_SHARE
    due = [now - timedelta(minutes=int(m)) for m in rng.integers(0, 240, size=total)]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO subscriptions_subscriber (uuid, email, email_key, frequency, weekday, "
            "hour, timezone, next_digest_at, created_at, confirmed_at, suppressed_reason, "
            "soft_bounces, link_counter, feed_secret, session_keys, max_papers, strong_only, "
            "feed_only, suggestions, profile) "
            "SELECT gen_random_uuid(), 'reader' || n || '@example.org', "
            "'reader' || n || '@example.org', f, 0, 8, tz, d, "
            "%s, %s, '', 0, 0, '', '[]', 10, false, false, 3, '' "
            "FROM unnest(%s::int[], %s::text[], %s::text[], %s::timestamptz[]) "
            "AS t(n, f, tz, d) ORDER BY n",
            [
                now - timedelta(days=60),
                now - timedelta(days=60),
                list(range(total)),
                ["weekly" if w else "daily" for w in weekly.tolist()],
                [zone for _, _, zone in population],
                due,
            ],
        )
        cursor.execute("SELECT id FROM subscriptions_subscriber ORDER BY id")
        ids = [row[0] for row in cursor.fetchall()]
        filter_rows = [
            (sid, q) for sid, (fs, _, _) in zip(ids, population, strict=True) for q in fs
        ]
        for at in range(0, len(filter_rows), 500_000):
            batch = filter_rows[at : at + 500_000]
            cursor.execute(
                "INSERT INTO subscriptions_filter (subscriber_id, query, created_at, "
                "flagged_for_review) SELECT s, q, %s, false FROM unnest(%s::bigint[], "
                "%s::text[]) AS t(s, q)",
                [now - timedelta(days=30), [s for s, _ in batch], [q for _, q in batch]],
            )
        follows = [
            (sid, topic_ids[t - 1])
            for sid, (_, ts, _) in zip(ids, population, strict=True)
            for t in ts
        ]
        cursor.execute(
            "INSERT INTO subscriptions_subscriber_topics (subscriber_id, topic_id) "
            "SELECT * FROM unnest(%s::bigint[], %s::bigint[])",
            [[s for s, _ in follows], [t for _, t in follows]],
        )
        # Earlier digests, sent: the 7 local days before today (daily), last week (weekly).
        cursor.execute(
            "INSERT INTO digest_digest (subscriber_id, period, status, attempts, last_error, "
            "message_id, created_at, planned_at, attempted_at, sent_at) "
            "SELECT s.id, CASE WHEN s.frequency = 'weekly' "
            "THEN to_char((%(now)s AT TIME ZONE s.timezone)::date - 7 * d, 'IYYY-\"W\"IW') "
            "ELSE to_char((%(now)s AT TIME ZONE s.timezone)::date - d, 'YYYY-MM-DD') END, "
            "'sent', 1, '', '<' || s.id || '.' || d || '@bench.example.org>', "
            "%(now)s - d * interval '1 day', %(now)s - d * interval '1 day', "
            "%(now)s - d * interval '1 day', %(now)s - d * interval '1 day' "
            "FROM subscriptions_subscriber s, generate_series(1, 7) d "
            "WHERE s.frequency = 'daily' OR d = 1",
            {"now": now},
        )
        # Five papers each, distinct per subscriber, drawn over every paper (today's too).
        cursor.execute(
            "INSERT INTO digest_digestitem (digest_id, subscriber_id, paper_id, rank, reason) "
            "SELECT g.id, g.subscriber_id, "
            "(%(papers)s::bigint[])[1 + (g.subscriber_id * 7919 + "
            "(extract(epoch FROM %(now)s - g.created_at) / 86400)::int * 5 + k) %% %(count)s], "
            "k, 'matched your filter' FROM digest_digest g, generate_series(1, 5) k",
            {"papers": [p.pk for p in papers], "count": len(papers), "now": now},
        )
        cursor.execute("SELECT count(*) FROM digest_digest")
        (digests,) = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM digest_digestitem")
        (items,) = cursor.fetchone()
        cursor.execute("ANALYZE")
    return {
        "due_ids": ids,
        "papers": len(papers),
        "sightings": len(sightings),
        "filters": len(filter_rows),
        "earlier_digests": digests,
        "earlier_items": items,
        "vocabulary": len(vocab),
    }


# --- CPU from /proc -----------------------------------------------------------------


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of one process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(entry.path, "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


class BackendCpu:
    """CPU of the PostgreSQL backends serving ``BENCH_DB``, except this process's own:
    sampled while the run goes (backends come and go), counted from the first sample."""

    def __init__(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (self.own,) = cursor.fetchone()
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.sample()

    def sample(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                [bench_database_name(BENCH_DB), self.own],
            )
            pids = [row[0] for row in cursor.fetchall()]
        for pid in pids:
            now = cpu_of(pid)
            self.first.setdefault(pid, now if not self.last else 0.0)
            self.last[pid] = max(self.last.get(pid, 0.0), now)

    def seconds(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


# --- The workers --------------------------------------------------------------------


def start_workers(sink: LatencySink, log: Path) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="localhost",
        CELERY_BROKER_URL=BROKER_URL,
        EMAIL_BACKEND="digest.mail.SmtpEmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(sink.port),
        DB_CONN_MAX_AGE="600",  # a worker keeps its database connection, as in production
        BENCH_STAGES_DIR=str(log.parent),
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bench.stages", "worker", "--loglevel=INFO"]
            + [f"--concurrency={WORKERS}", "--without-gossip", "--without-mingle"]
            + ["--without-heartbeat"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 90
    while "ready." not in log.read_text(errors="replace"):
        if time.monotonic() > deadline or proc.poll() is not None:
            stop_process_group(proc)
            raise SystemExit("the workers did not start:\n" + log.read_text(errors="replace"))
        time.sleep(0.1)
    return proc


def purge_queues() -> None:
    import redis

    redis.Redis.from_url(BROKER_URL).delete(*settings.CELERY_TASK_QUEUES)


def count(sql: str, params: list[object]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.fetchone()[0])


# --- The stages, in the workers ---------------------------------------------------------


def worker_stages(directory: Path) -> dict[str, float]:
    """CPU seconds by stage, added over the worker processes (see :mod:`bench.stages`)."""
    spent: Counter[str] = Counter()
    for path in directory.glob("[0-9]*.json"):
        spent.update(json.loads(path.read_text())["seconds"])
    return dict(spent)


# --- The raw mail path ---------------------------------------------------------------


def raw_mail_rate(workdir: Path, messages: int, size: int, concurrency: int) -> dict:
    """smtp-source sending ``messages`` of ``size`` bytes over ``concurrency`` sessions
    (each kept open) through a fresh sink with the same latency."""
    if not os.access(SMTP_SOURCE, os.X_OK):
        raise SystemExit(f"{SMTP_SOURCE} not found: install Debian's postfix (`make bench` does)")
    sink = LatencySink(workdir, latency=LATENCY).start()
    try:
        started = time.time()
        subprocess.run(
            [str(SMTP_SOURCE), "-s", str(concurrency), "-l", str(size), "-m", str(messages)]
            + ["-d", f"127.0.0.1:{sink.port}"],
            check=True,
            capture_output=True,
            timeout=3600,
        )
    finally:
        result = sink.stop()
    seconds = max(result.get("last_accepted", 0) - started, 1e-9)
    return {"seconds": seconds, "messages": result.get("messages", 0)}


# --- The run ------------------------------------------------------------------------


def main() -> None:
    from celery import Celery

    from digest.models import Digest

    rng = np.random.default_rng(SEED)
    seeded_at = time.perf_counter()
    seeded = seed(rng, timezone.now())
    seed_seconds = time.perf_counter() - seeded_at
    due_ids = seeded.pop("due_ids")
    print(f"daily: seeded in {seed_seconds:.0f} s: {seeded}", file=sys.stderr, flush=True)
    assert isinstance(due_ids, list)
    purge_queues()
    client = Celery("bench", broker=BROKER_URL, set_as_current=False)
    workdir = Path(tempfile.mkdtemp(prefix="bench-daily-"))
    send_concurrency = int(getattr(settings, "DIGEST_SEND_CONCURRENCY", 1) or 1)
    concurrency = WORKERS * send_concurrency

    sink = LatencySink(workdir, latency=LATENCY).start()
    workers = None
    try:
        workers = start_workers(sink, workdir / "workers.log")
        worker_pids = group_pids(workers.pid)
        worker_cpu = {pid: cpu_of(pid) for pid in worker_pids}
        backends = BackendCpu()
        tick = timezone.now()
        started = time.time()
        client.send_task("digest.tasks.send_due_digests", queue="matching")
        progress, moved_at = None, time.monotonic()
        reported_at = time.monotonic()
        while True:
            time.sleep(0.5)
            backends.sample()
            left = count(
                "SELECT count(*) FROM subscriptions_subscriber WHERE next_digest_at <= %s", [tick]
            )
            busy = count(
                "SELECT count(*) FROM digest_digest WHERE status IN ('pending', 'sending')", []
            )
            if left == 0 and busy == 0:
                break
            if time.monotonic() - reported_at >= PROGRESS_SECONDS:
                reported_at = time.monotonic()
                print(
                    f"daily: {time.time() - started:.0f} s, {sink.count()} messages accepted, "
                    f"{left} subscribers due, {busy} digests pending",
                    file=sys.stderr,
                    flush=True,
                )
            if (left, busy, sink.count()) != progress:
                progress, moved_at = (left, busy, sink.count()), time.monotonic()
            elif time.monotonic() - moved_at > STALL_SECONDS:
                raise SystemExit(
                    f"stalled for {STALL_SECONDS} s: {left} subscribers still due, {busy} "
                    f"digests unsent, {progress[2]} messages received (see {workdir})"
                )
        backends.sample()
        workers_seconds = sum(cpu_of(pid) - worker_cpu.get(pid, 0.0) for pid in worker_pids)
    finally:
        if workers is not None:
            stop_process_group(workers)
        result = sink.stop()
    end = result.get("last_accepted") or time.time()
    seconds = end - started

    # Exactly once: every due subscriber one digest this period; sent ones arrived once
    # with their Message-ID, empty ones never.
    rows = list(
        Digest.objects.filter(subscriber_id__in=due_ids, created_at__gte=tick).values_list(
            "pk", "subscriber_id", "status", "message_id", "sent_at"
        )
    )
    received: dict[str, list[str]] = result.get("digests", {})
    per_subscriber = Counter(sid for _, sid, _, _, _ in rows)
    sent = [(pk, mid, at) for pk, _, status, mid, at in rows if status == Digest.SENT]
    empty = [pk for pk, _, status, _, _ in rows if status == Digest.EMPTY]
    exactly_once = (
        len(per_subscriber) == len(due_ids)
        and set(per_subscriber.values()) == {1}
        and len(sent) + len(empty) == len(rows)
        and all(received.get(str(pk)) == [mid] for pk, mid, _ in sent)
        and not any(str(pk) in received for pk in empty)
        and result.get("messages") == len(sent)
    )
    latencies = sorted((at - tick).total_seconds() for _, _, at in sent)
    digests = len(sent)
    rate = digests / seconds
    mean_size = int(result.get("bytes", 0) / max(result.get("messages", 1), 1))
    sink_cpu = result.get("cpu_seconds", 0.0)

    # The machine's raw mail path, and the stages, after the timed run.
    raw = raw_mail_rate(workdir, min(max(digests, 1), RAW_SAMPLE), max(mean_size, 1), concurrency)
    raw_rate = raw["messages"] / raw["seconds"]
    stages = worker_stages(workdir)
    planned = len(rows)
    match_us = stages.get("match", 0.0) * 1e6 / max(planned, 1)

    def pct(q: float) -> float | None:
        return (
            round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)
            if latencies
            else None
        )

    per_digest = 1000 / max(digests, 1)
    from digest.relevance.embed import DIMENSIONS
    from tests.support.synthetic import relevance_scoring_cost

    relevance_us = relevance_scoring_cost(
        np.random.default_rng(11),
        len(due_ids),
        EDITION_PAPERS,
        DIMENSIONS,
        chunk=settings.DIGEST_CHUNK_SIZE,
    )

    def ms(cpu_seconds: float) -> float:
        return round(cpu_seconds * per_digest, 3)

    print(
        json.dumps(
            {
                "name": "daily",
                "seconds": round(seconds, 2),
                "rate": round(rate, 1),
                "unit": "digests/s end to end",
                "baseline": "raw mail path: smtp-source, same sink, latency, size, concurrency",
                "raw_rate": round(raw_rate, 1),
                "raw_messages": raw["messages"],
                "ratio_to_raw": round(rate / raw_rate, 3),
                "ratio": round(rate / raw_rate, 3),
                "exactly_once": exactly_once,
                "subscribers": len(due_ids),
                "digests_sent": digests,
                "digests_empty": len(empty),
                "messages_received": result.get("messages"),
                "p50_seconds": pct(0.50),
                "p99_seconds": pct(0.99),
                "cpu_ms_per_digest": {
                    "workers": round(workers_seconds * per_digest, 3),
                    "postgresql": round(backends.seconds() * per_digest, 3),
                    "mail_sink": round(sink_cpu * per_digest, 3),
                },
                "stage_cpu_ms_per_digest": {
                    "plan_and_match": ms(stages.get("plan_and_match", 0.0)),
                    "of_which_match": ms(stages.get("match", 0.0)),
                    "render": ms(stages.get("render", 0.0)),
                    "compose": ms(stages.get("compose", 0.0)),
                    "send": ms(
                        stages.get("send_total", 0.0)
                        - stages.get("render", 0.0)
                        - stages.get("compose", 0.0)
                    ),
                    "other_in_tasks": ms(
                        stages.get("tasks", 0.0)
                        - stages.get("plan_and_match", 0.0)
                        - stages.get("send_total", 0.0)
                    ),
                    "database": ms(backends.seconds()),
                },
                "match_us_per_subscriber": round(match_us, 1),
                "relevance_us_per_subscriber": round(relevance_us, 1),
                "relevance_bytes_per_subscriber": 4 * DIMENSIONS,
                "prepare_edition_ms_total": round(stages.get("prepare_edition", 0.0) * 1000, 1),
                "mean_message_bytes": mean_size,
                "mail_latency_ms": LATENCY * 1000,
                "worker_processes": WORKERS,
                "send_concurrency": send_concurrency,
                "mail_connections": concurrency,
                "chunk_size": settings.DIGEST_CHUNK_SIZE,
                "cpus": os.cpu_count(),
                "seeded": seeded,
                "seed_seconds": round(seed_seconds, 1),
                "bench_scale": SCALE,
                "goal": {
                    "rate": GOAL_RATE,
                    "ratio_to_raw": GOAL_RATIO,
                    "match_us_per_subscriber": GOAL_MATCH_US,
                },
                "goal_met": rate >= GOAL_RATE
                and rate / raw_rate >= GOAL_RATIO
                and match_us <= GOAL_MATCH_US,
            }
        )
    )
    if not exactly_once:
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    finally:
        drop_database(BENCH_DB)
