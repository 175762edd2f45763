"""End-to-end delivery speed: due subscribers planned, rendered and sent by real Celery
workers through Redis to an SMTP server on loopback, each digest checked to arrive
exactly once.

10,000 due subscribers (one keyword filter each, over the papers of the example pages)
are handed to ``send_due_digests``, which enqueues chunks of ``DIGEST_CHUNK_SIZE``;
``celery worker`` processes (prefork, one more than the cores; ``BENCH_WORKERS``
overrides) on production settings (``DEBUG`` off, ``digest.mail.SmtpEmailBackend``)
plan, render and send them to Postfix's ``smtp-sink``, which dumps every message to a
file; the files are read after the workers stop. The SMTP server stands in for the mail
provider (ESP or MTA), which in production runs on another machine: the aiosmtpd server
of the tests would run in this process and take ~1.6 ms of CPU per 30 KB message from
the 2 cores under test, smtp-sink (C) takes ~0.25 ms. The clock runs from the beat
task's enqueue to the last digest marked sent. The baseline, measured in the same run
with the same workers and server on 500 more subscribers, is one task (and one SMTP
connection) per subscriber. ``send_only_rate`` is the same workers rendering and
sending 2,000 digests planned beforehand (matching excluded). ``BENCH_SCALE``
multiplies the three counts (at least 100, 10 and 20). Prints one JSON line; the goal
is ≥ 500 digests/s on a 2-core machine; exits 1 unless every digest arrived exactly
once.

Needs ``/usr/sbin/smtp-sink`` (Debian's ``postfix``; ``make bench`` installs it). Uses its
own database, ``bench_deliver``, on the server of ``DATABASE_URL`` (PostgreSQL),
created afresh and dropped at the end, and the Redis of ``TEST_BROKER_URL`` (else
``CELERY_BROKER_URL``, else ``redis://127.0.0.1:6379/15``).

Run: ``DATABASE_URL=postgres://… .venv/bin/python -m bench.deliver``
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from tests.support import PAGES_DIR, ROOT
from tests.support.benchdb import drop_database, setup_bench_django
from tests.support.workers import stop_process_group

BENCH_DB = "bench_deliver"
SCALE = float(os.environ.get("BENCH_SCALE") or 1)
SUBSCRIBERS = max(100, int(10_000 * SCALE))
BASELINE_SUBSCRIBERS = max(10, int(500 * SCALE))
SEND_ONLY = max(20, int(2_000 * SCALE))
GOAL = 500
# Worker processes (prefork pool): one more than the cores, since a sending worker spends
# part of each digest waiting on the database's commit and the SMTP server's reply (the
# README runs sending workers with more processes still). BENCH_WORKERS overrides.
WORKERS = int(os.environ.get("BENCH_WORKERS") or (os.cpu_count() or 2) + 1)
FILTERS = ["transformer", "model", "language model", "neural", "learning", "brain", "diffusion"]
BROKER_URL = (
    os.environ.get("TEST_BROKER_URL")
    or os.environ.get("CELERY_BROKER_URL")
    or "redis://127.0.0.1:6379/15"
)


# The bench process and its workers use the bench database.
setup_bench_django(BENCH_DB)

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from tests.support.smtp import PostfixSmtpSink  # noqa: E402


def _create_subscribers(count: int, prefix: str) -> list[int]:
    from subscriptions.models import Filter, Subscriber

    now = timezone.now()
    subscribers = Subscriber.objects.bulk_create(
        Subscriber(
            email=f"{prefix}{n:05d}@example.org",
            timezone=["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"][n % 4],
            confirmed_at=now,
            next_digest_at=now + timedelta(days=365),  # not due until the run starts
        )
        for n in range(count)
    )
    Filter.objects.bulk_create(
        Filter(subscriber=s, query=FILTERS[n % len(FILTERS)]) for n, s in enumerate(subscribers)
    )
    return [s.pk for s in subscribers]


def _make_due(ids: list[int]) -> None:
    from subscriptions.models import Subscriber

    Subscriber.objects.filter(pk__in=ids).update(next_digest_at=timezone.now())


def _sent_count(ids: list[int]) -> int:
    """How many of the digests of ``ids`` (one bulk-created, contiguous range of
    subscribers) are sent: one cheap query, polled while the clock runs."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM digest_digest WHERE status = 'sent' "
            "AND subscriber_id BETWEEN %s AND %s",
            [min(ids), max(ids)],
        )
        return int(cursor.fetchone()[0])


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def _purge_queues() -> None:
    import redis

    client = redis.Redis.from_url(BROKER_URL)
    client.delete(*settings.CELERY_TASK_QUEUES)


def _start_workers(sink: PostfixSmtpSink, log: Path) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        # Production settings: DEBUG off (no query log), our SMTP backend.
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="localhost",
        CELERY_BROKER_URL=BROKER_URL,
        EMAIL_BACKEND="digest.mail.SmtpEmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(sink.port),
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "digest",
                "worker",
                "--loglevel=INFO",
                f"--concurrency={WORKERS}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _wait(lambda: "ready." in log.read_text(errors="replace"), 60, "the workers")
    return proc


def main() -> None:
    from celery import Celery

    from digest.ingest.store import ingest_source
    from digest.models import Digest

    for page in sorted(PAGES_DIR.glob("*.txt")):
        ingest_source(str(page))
    papers = connection.cursor()
    papers.execute("SELECT count(*) FROM digest_paper")
    paper_count = papers.fetchone()[0]
    main_ids = _create_subscribers(SUBSCRIBERS, "reader")
    base_ids = _create_subscribers(BASELINE_SUBSCRIBERS, "baseline")
    # Planned here, untimed, so their run measures rendering and sending alone.
    from digest.delivery.plan import plan_digests
    from subscriptions.models import Subscriber

    send_only_ids = _create_subscribers(SEND_ONLY, "planned")
    planned = plan_digests(list(Subscriber.objects.filter(pk__in=send_only_ids)), timezone.now())
    planned_ids = sorted(d.pk for d in planned.values())
    _purge_queues()
    client = Celery("bench", broker=BROKER_URL, set_as_current=False)
    workdir = Path(tempfile.mkdtemp(prefix="bench-deliver-"))

    with PostfixSmtpSink() as sink:
        workers = _start_workers(sink, workdir / "workers.log")
        try:
            # Baseline: one task, one connection, per subscriber.
            _make_due(base_ids)
            started = time.perf_counter()
            for pk in base_ids:
                client.send_task("digest.tasks.send_digests", args=[[pk]], queue="sending")
            _wait(lambda: _sent_count(base_ids) == len(base_ids), 300, "the baseline digests")
            base_seconds = time.perf_counter() - started

            # The product: the beat's tick enqueues chunks.
            _make_due(main_ids)
            started = time.perf_counter()
            client.send_task("digest.tasks.send_due_digests", queue="matching")
            _wait(lambda: _sent_count(main_ids) == len(main_ids), 900, "all digests sent")
            seconds = time.perf_counter() - started

            # Rendering and sending alone, of digests planned beforehand.
            started = time.perf_counter()
            size = settings.DIGEST_CHUNK_SIZE
            for at in range(0, len(planned_ids), size):
                client.send_task(
                    "digest.tasks.send_planned_digests",
                    args=[planned_ids[at : at + size]],
                    queue="sending",
                )
            _wait(lambda: _sent_count(send_only_ids) == SEND_ONLY, 300, "the planned digests")
            send_seconds = time.perf_counter() - started
            time.sleep(1.0)  # anything still in flight arrives
        finally:
            stop_process_group(workers, timeout=30)
    # Leaving the block stopped smtp-sink and read the messages it received.

    copies = sink.copies_by_digest()
    sent = dict(Digest.objects.filter(status=Digest.SENT).values_list("pk", "message_id"))
    by_digest = {m.digest_id: m.message_id for m in sink.received}
    exactly_once = (
        len(sink.received) == len(sent) == SUBSCRIBERS + BASELINE_SUBSCRIBERS + SEND_ONLY
        and set(copies.values()) == {1}
        and all(by_digest.get(str(pk)) == mid for pk, mid in sent.items())
    )
    rate, base_rate = SUBSCRIBERS / seconds, BASELINE_SUBSCRIBERS / base_seconds
    print(
        json.dumps(
            {
                "name": "deliver",
                "seconds": round(seconds, 2),
                "rate": round(rate, 1),
                "unit": "digests/s end to end",
                "ratio": round(rate / base_rate, 2),
                "baseline": "one send_digests task per subscriber",
                "baseline_rate": round(base_rate, 1),
                "baseline_digests": BASELINE_SUBSCRIBERS,
                "digests": SUBSCRIBERS,
                "send_only_rate": round(SEND_ONLY / send_seconds, 1),
                "send_only_digests": SEND_ONLY,
                "exactly_once": exactly_once,
                "smtp_server": "postfix smtp-sink",
                "messages_received": len(sink.received),
                "digests_sent": len(sent),
                "max_copies": max(copies.values(), default=0),
                "not_received": sum(1 for pk in sent if str(pk) not in by_digest),
                "papers_in_db": paper_count,
                "chunk_size": settings.DIGEST_CHUNK_SIZE,
                "worker_processes": WORKERS,
                "cpus": os.cpu_count(),
                "bench_scale": SCALE,
                "goal": GOAL,
                "goal_met": rate >= GOAL,
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
