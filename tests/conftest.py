"""Shared fixtures: the real services, the example pages, subscribers, and the outbox."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.support import (  # noqa: F401  (re-exported for the test modules)
    ALL_PAGES,
    PAGE_000,
    PAGE_002,
    PAGE_004,
    PAGES_DIR,
    ROOT,
    TEST_BROKER_URL,
)
from tests.support.builders import make_subscriber  # noqa: F401
from tests.support.pageserver import PageServer

SCREENSHOTS = ROOT / "var" / "screenshots"
# Debian's Chromium, headless, kept off the network it cannot reach here.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _check_services() -> None:
    """Stop the run at once, naming the service, when PostgreSQL or Redis is unreachable."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql"):
        import psycopg

        try:
            psycopg.connect(
                host=db["HOST"],
                port=db["PORT"] or 5432,
                user=db["USER"],
                password=db["PASSWORD"],
                dbname="postgres",  # the server, whatever database the tests create
                connect_timeout=5,
            ).close()
        except psycopg.OperationalError as exc:
            pytest.exit(
                f"PostgreSQL is unreachable at {db['HOST']}:{db['PORT']} ({exc}). "
                "Start it or set DATABASE_URL.",
                returncode=3,
            )
    import redis

    try:
        redis.Redis.from_url(TEST_BROKER_URL, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        pytest.exit(
            f"Redis is unreachable at {TEST_BROKER_URL} ({exc}). Start it or set CELERY_BROKER_URL.",
            returncode=3,
        )


def pytest_sessionstart(session: pytest.Session) -> None:
    _check_services()


@pytest.fixture(autouse=True)
def _outbox_and_eager(settings, tmp_path: Path) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Every test writes mail into its own folder, runs tasks in-process and starts
    with no rendered pieces cached."""
    from digest.celery import app
    from digest.delivery.message import shared_renderer

    shared_renderer().clear()

    settings.OUTBOX_DIR = tmp_path / "outbox"
    settings.EMAIL_BACKEND = "digest.mail.OutboxEmailBackend"
    settings.SITE_URL = "https://papers.example.org"
    # Previews see each test's papers at once (digest.matching.preview).
    settings.PREVIEW_INDEX_TTL = 0
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = eager


@pytest.fixture
def outbox(settings) -> Path:  # type: ignore[no-untyped-def]
    return Path(settings.OUTBOX_DIR)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium (``/usr/bin/chromium``) driven by Playwright's sync API, one per
    test module; screenshots go to :data:`SCREENSHOTS`."""
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the ORM calls tests make
    # between page actions are still plain synchronous calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def server(settings) -> Iterator[PageServer]:  # type: ignore[no-untyped-def]
    """A :class:`~tests.support.pageserver.PageServer` on 127.0.0.1 for the test's duration.
    A test that asks for it opts in to fetching from a private address (production
    refuses them: ``FETCH_ALLOW_PRIVATE_ADDRESSES``)."""
    settings.FETCH_ALLOW_PRIVATE_ADDRESSES = True
    pages = PageServer()
    pages.thread.start()
    yield pages
    pages.httpd.shutdown()
    pages.httpd.server_close()
