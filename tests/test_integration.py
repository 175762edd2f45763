"""The production shape end to end: Celery beat and one worker per queue on Redis, the
test PostgreSQL database, and mail delivered over SMTP to a server on loopback. Also how
the suite itself behaves when a service is missing (what CI relies on)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from digest.models import Digest, IngestRun, Paper
from subscriptions.models import Subscriber
from tests.support.net import free_port
from tests.support.workers import celery_process, celery_worker, purge_broker, wait_for

from .conftest import PAGE_000, PAGE_004, ROOT, make_subscriber

# Papers on PAGE_000 and PAGE_004 together, each stored once.
PAPERS_ON_BOTH_PAGES = 98


class Inbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(message_from_bytes(envelope.original_content))
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def json_events(log: Path, event: str) -> list[dict]:
    lines = (json.loads(line) for line in log.read_text().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == event]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_beat_and_a_worker_per_queue_ingest_and_deliver_over_smtp(
    outbox: Path, tmp_path: Path
) -> None:
    purge_broker()
    tomorrow = timezone.now() + timedelta(days=1)
    ada = make_subscriber("ada@example.org", ["mamba"], next_digest_at=tomorrow)
    grace = make_subscriber("grace@example.org", ["vision transformer"], next_digest_at=tomorrow)
    later = make_subscriber("later@example.org", ["mamba"], next_digest_at=tomorrow)
    logs = {queue: tmp_path / f"{queue}.log" for queue in ("ingest", "matching", "sending")}

    with smtp_server() as (inbox, smtp_port), ExitStack() as stack:
        env = {
            "EMAIL_BACKEND": "digest.mail.SmtpEmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_port),
            "LOG_FORMAT": "json",
            "INGEST_SOURCES": f"{PAGE_000},{PAGE_004}",
            "INGEST_SOURCES_EVERY": "2",
            "SEND_DUE_DIGESTS_EVERY": "1",
        }
        for queue, log in logs.items():
            stack.enter_context(
                celery_worker(outbox, log=log, args=("-Q", queue, "-n", f"{queue}@%h"), **env)
            )
        stack.enter_context(
            celery_process(
                "beat",
                outbox,
                log=tmp_path / "beat.log",
                args=(f"--schedule={tmp_path / 'beat'}",),
                **env,
            )
        )

        wait_for(
            lambda: (
                set(IngestRun.objects.filter(status=IngestRun.OK).values_list("source", flat=True))
                == {str(PAGE_000), str(PAGE_004)}
            ),
            what="the beat's ingest of both pages",
        )
        assert Paper.objects.count() == PAPERS_ON_BOTH_PAGES
        assert inbox.messages == []  # nobody was due yet

        Subscriber.objects.filter(pk__in=[ada.pk, grace.pk]).update(
            next_digest_at=timezone.now() - timedelta(minutes=1)
        )
        wait_for(lambda: len(inbox.messages) == 2, what="two digests over SMTP")
        # Later ticks find nobody due: nothing is sent twice.
        ticks = (tmp_path / "beat.log").read_text().count("send-due-digests")
        wait_for(
            lambda: (tmp_path / "beat.log").read_text().count("send-due-digests") >= ticks + 2,
            what="two more beat ticks",
        )
        wait_for(
            lambda: "send_due_digests" in logs["matching"].read_text().rsplit("received", 1)[-1],
            what="the matching worker to finish the last tick",
        )

    assert Paper.objects.count() == PAPERS_ON_BOTH_PAGES
    assert sorted(m["To"] for m in inbox.messages) == [ada.email, grace.email]
    for message in inbox.messages:
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message.is_multipart()
    sent = Digest.objects.filter(status=Digest.SENT)
    assert sorted(sent.values_list("subscriber__email", flat=True)) == [ada.email, grace.email]
    assert not Digest.objects.filter(subscriber=later).exists()

    # Each stage ran on its own queue's worker.
    assert "digest.tasks.ingest_page[" in logs["ingest"].read_text()
    assert "digest.tasks.send_due_digests[" in logs["matching"].read_text()
    assert "digest.tasks.send_digests[" in logs["sending"].read_text()
    for queue, log in logs.items():
        if queue != "sending":
            assert "digest.tasks.send_digests[" not in log.read_text()
    # One JSON line per event, with the ids to follow each digest.
    digest_sent = json_events(logs["sending"], "digest_sent")
    assert sorted((e["digest_id"], e["subscriber_id"]) for e in digest_sent) == sorted(
        sent.values_list("pk", "subscriber_id")
    )
    assert sorted(m["X-Digest-ID"] for m in inbox.messages) == sorted(
        str(e["digest_id"]) for e in digest_sent
    )
    ingest_runs = json_events(logs["ingest"], "ingest_run")
    assert {e["source"] for e in ingest_runs} == {str(PAGE_000), str(PAGE_004)}
    assert all(isinstance(e["run_id"], int) for e in ingest_runs)


# --- The suite on the real services (CI) ------------------------------------------


def run_suite(**env: str) -> subprocess.CompletedProcess[str]:
    """A pytest run of one small test file with ``env`` overriding the services."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_schedule.py"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_suite_stops_naming_postgresql_when_it_is_unreachable() -> None:
    port = free_port()
    result = run_suite(DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/test")
    assert result.returncode == 3
    assert f"PostgreSQL is unreachable at 127.0.0.1:{port}" in result.stdout + result.stderr
    assert " passed" not in result.stdout


def test_the_suite_stops_naming_redis_when_it_is_unreachable() -> None:
    port = free_port()
    result = run_suite(TEST_BROKER_URL=f"redis://127.0.0.1:{port}/0")
    assert result.returncode == 3
    assert f"Redis is unreachable at redis://127.0.0.1:{port}/0" in result.stdout + result.stderr


def test_ci_runs_make_test_on_postgresql_and_redis() -> None:
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")
    dry_run = subprocess.run(
        ["make", "-n", "test"],
        cwd=ROOT,
        env={
            k: v
            for k, v in os.environ.items()
            if k
            not in {"DATABASE_URL", "CELERY_BROKER_URL", "TEST_DATABASE_URL", "TEST_BROKER_URL"}
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dry_run.returncode == 0, dry_run.stderr
    command = dry_run.stdout
    assert "postgres://postgres@127.0.0.1:5432/test" in command
    assert "redis://127.0.0.1:6379/15" in command
    assert "-m pytest" in command
