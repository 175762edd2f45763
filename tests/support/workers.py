"""Real Celery worker processes for tests, against the local Redis and the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from celery import Celery
from django.conf import settings
from django.db import connection

from tests.support import ROOT, TEST_BROKER_URL


def test_database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def broker() -> Celery:
    """A client app that only sends tasks by name to the test broker."""
    return Celery("tests", broker=TEST_BROKER_URL, set_as_current=False)


def purge_broker() -> None:
    import redis

    redis.Redis.from_url(TEST_BROKER_URL).flushdb()


def worker_env(outbox: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=test_database_url(),
        CELERY_BROKER_URL=TEST_BROKER_URL,
        OUTBOX_DIR=str(outbox),
        SITE_URL=settings.SITE_URL,
        EMAIL_BACKEND=settings.EMAIL_BACKEND,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@contextmanager
def celery_process(
    command: str, outbox: Path, *, log: Path, args: tuple[str, ...] = (), **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``celery -A digest COMMAND`` (``worker`` or ``beat``) until the block ends
    (SIGTERM, then SIGKILL), its output appended to ``log``."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "digest", command, "--loglevel=INFO", *args],
            cwd=ROOT,
            env=worker_env(outbox, **env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def celery_worker(
    outbox: Path, *, log: Path, args: tuple[str, ...] = (), **env: str
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """A single-process worker (``--pool=solo``) that skips cluster chatter."""
    quiet = ("--pool=solo", "--without-gossip", "--without-mingle", "--without-heartbeat")
    return celery_process("worker", outbox, log=log, args=(*quiet, *args), **env)


def wait_for(
    condition: Callable[[], bool], *, timeout: float = 60.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Stop a process started with ``start_new_session=True`` and its children: SIGTERM
    to the group (Celery finishes its tasks), SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
