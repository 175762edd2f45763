"""Sources fetched on a schedule: due sources, conditional GETs, failures kept apart.

Pages are served from a real HTTP server on 127.0.0.1 (:class:`PageServer`).
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from digest import tasks
from digest.ingest.sources import claim_due_sources, fetch_source
from digest.models import IngestRun, Paper, Sighting, Source
from tests.support.pageserver import Page, PageServer

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DAILY_HTML = FIXTURES / "html" / "daily_2025-03-11.html"
SEARCH_HTML = FIXTURES / "html" / "search_diffusion.html"
DAILY_JSON = FIXTURES / "json" / "daily_papers_2025-03-11.json"
LAST_MODIFIED = "Tue, 11 Mar 2025 08:00:00 GMT"


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries of a failing server follow at once instead of after 1, 2, 4 seconds."""
    monkeypatch.setattr("digest.ingest.fetch.BACKOFF_BASE", 0.0)


def make_source(name: str, url: str, **fields: object) -> Source:
    values: dict[str, object] = {"next_fetch_at": timezone.now() - timedelta(minutes=1)}
    values.update(fields)
    return Source.objects.create(name=name, url=url, **values)


def run_beat(capture: Any) -> int:
    """The beat's tick, with the fetches it enqueues on commit run in-process."""
    with capture(execute=True):
        return tasks.fetch_due_sources()


# --- Due sources --------------------------------------------------------------------


@pytest.mark.django_db
def test_a_due_source_is_fetched_ingested_and_rescheduled(
    server: PageServer, django_capture_on_commit_callbacks: Any
) -> None:
    url = server.serve(
        "/papers/date/2025-03-11",
        Page(DAILY_HTML.read_bytes(), etag='"v1"', last_modified=LAST_MODIFIED),
    )
    daily = make_source("daily", url, interval=timedelta(minutes=30))
    before = timezone.now()
    assert run_beat(django_capture_on_commit_callbacks) == 1
    run = IngestRun.objects.get()
    assert (run.status, run.from_source, run.source, run.format) == (
        IngestRun.OK,
        daily,
        url,
        "html",
    )
    assert (run.papers_parsed, run.papers_new, run.papers_updated, run.error) == (3, 3, 0, "")
    assert run.duration is not None and run.duration >= 0
    daily.refresh_from_db()
    assert (daily.etag, daily.last_modified, daily.last_status) == ('"v1"', LAST_MODIFIED, "ok")
    assert daily.last_fetched_at is not None and daily.last_fetched_at >= before
    assert daily.next_fetch_at == daily.last_fetched_at + timedelta(minutes=30)
    assert Paper.objects.count() == 3


@pytest.mark.django_db
def test_sources_not_yet_due_or_disabled_are_left_alone(
    server: PageServer, django_capture_on_commit_callbacks: Any
) -> None:
    url = server.serve("/papers", Page(DAILY_HTML.read_bytes()))
    make_source("later", url, next_fetch_at=timezone.now() + timedelta(minutes=5))
    make_source("off", url, enabled=False)
    assert run_beat(django_capture_on_commit_callbacks) == 0
    assert server.requests == [] and not IngestRun.objects.exists()


@pytest.mark.django_db
def test_a_due_source_is_claimed_once() -> None:
    now = timezone.now()
    source = make_source("daily", "https://papers.example.org/papers", interval=timedelta(hours=2))
    assert claim_due_sources(now) == [source.pk]
    # A second tick (or a second beat) before the fetch ran finds nothing to do.
    assert claim_due_sources(now) == []
    source.refresh_from_db()
    assert source.next_fetch_at == now + timedelta(hours=2)


@pytest.mark.django_db
def test_a_deleted_source_is_skipped() -> None:
    source = make_source("gone", "https://papers.example.org/papers")
    source_id = source.pk
    source.delete()
    assert fetch_source(source_id) is None
    assert tasks.fetch_source(source_id) is None
    assert not IngestRun.objects.exists()


# --- Conditional GET ----------------------------------------------------------------


@pytest.mark.django_db
def test_an_unchanged_page_is_a_not_modified_run_and_nothing_else_changes(
    server: PageServer,
) -> None:
    url = server.serve(
        "/api/daily_papers?date=2025-03-11",
        Page(
            DAILY_JSON.read_bytes(),
            etag='W/"abc"',
            last_modified=LAST_MODIFIED,
            content_type="application/json",
        ),
    )
    source = make_source("api", url)
    first = fetch_source(source.pk)
    assert first is not None and first.status == IngestRun.OK
    papers_before = list(Paper.objects.order_by("pk").values())
    sightings_before = Sighting.objects.count()

    second = fetch_source(source.pk)
    assert second is not None
    assert (second.status, second.papers, second.error) == (IngestRun.NOT_MODIFIED, 0, None)
    _, headers = server.requests[-1]
    assert headers["if-none-match"] == 'W/"abc"'
    assert headers["if-modified-since"] == LAST_MODIFIED
    run = IngestRun.objects.get(pk=second.run_id)
    assert (run.status, run.from_source_id, run.papers_parsed, run.papers_new) == (
        "not_modified",
        source.pk,
        0,
        0,
    )
    assert run.finished_at is not None
    assert list(Paper.objects.order_by("pk").values()) == papers_before
    assert Sighting.objects.count() == sightings_before
    source.refresh_from_db()
    assert (source.etag, source.last_status) == ('W/"abc"', "not_modified")


@pytest.mark.django_db
def test_a_changed_page_is_ingested_again_with_its_new_validators(server: PageServer) -> None:
    url = server.serve("/papers", Page(DAILY_HTML.read_bytes(), etag='"v1"'))
    source = make_source("daily", url)
    fetch_source(source.pk)
    server.pages["/papers"] = Page(SEARCH_HTML.read_bytes(), etag='"v2"')
    result = fetch_source(source.pk)
    assert result is not None
    assert (result.status, result.papers, result.new, result.updated) == ("ok", 2, 1, 1)
    assert server.requests[-1][1]["if-none-match"] == '"v1"'
    source.refresh_from_db()
    assert source.etag == '"v2"'
    assert Sighting.objects.count() == 5


# --- Failures -----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("bad_page", "error"),
    [
        (Page(b"oops", status=500), "HTTP 500; gave up after 4 attempts"),
        (
            Page(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), etag='"bad"'),
            "binary data, not a page (contains NUL bytes)",
        ),
        (
            Page(b'[{"paper": {"title": 42}}]', etag='"bad"', content_type="application/json"),
            'item 0: expected "title" to be a string, got a number',
        ),
    ],
    ids=["http-500", "binary", "wrong-json"],
)
def test_one_failing_source_does_not_stop_the_others(
    server: PageServer,
    no_backoff: None,
    django_capture_on_commit_callbacks: Any,
    bad_page: Page,
    error: str,
) -> None:
    html_url = server.serve("/papers/date/2025-03-11", Page(DAILY_HTML.read_bytes()))
    bad_url = server.serve("/broken", bad_page)
    json_url = server.serve(
        "/api/papers/search?q=diffusion",
        Page(
            (FIXTURES / "json" / "papers_search_diffusion.json").read_bytes(),
            content_type="application/json",
        ),
    )
    make_source("a daily page", html_url)
    broken = make_source("b broken", bad_url, interval=timedelta(minutes=10))
    make_source("c search", json_url)

    assert run_beat(django_capture_on_commit_callbacks) == 3

    runs = {run.from_source.name: run for run in IngestRun.objects.select_related("from_source")}
    assert runs["a daily page"].status == runs["c search"].status == IngestRun.OK
    failed = runs["b broken"]
    assert failed.status == IngestRun.FAILED
    # The URL is named once, then what went wrong.
    assert failed.error == f"{bad_url}: {error}"
    assert failed.finished_at is not None
    # The search page repeats one paper of the daily page.
    assert Paper.objects.count() == 4
    assert not Sighting.objects.filter(run=failed).exists()
    broken.refresh_from_db()
    # A page that failed keeps no validators: next time it is fetched whole.
    assert (broken.etag, broken.last_status) == ("", "failed")
    assert broken.next_fetch_at == broken.last_fetched_at + timedelta(minutes=10)


@pytest.mark.django_db
def test_a_page_over_the_size_limit_is_refused(server: PageServer) -> None:
    url = server.serve("/huge", Page(b"x" * (20 * 1024 * 1024 + 1)))
    result = fetch_source(make_source("huge", url).pk)
    assert result is not None and result.status == IngestRun.FAILED
    assert result.error == (
        f"{url}: response of 20,971,521 bytes is over the 20,971,520-byte limit"
    )
    assert not Paper.objects.exists()


# --- Admin and command --------------------------------------------------------------


@pytest.mark.django_db
def test_fetch_now_in_the_admin_fetches_a_source_that_is_not_due(
    server: PageServer, django_capture_on_commit_callbacks: Any
) -> None:
    url = server.serve("/papers", Page(DAILY_HTML.read_bytes()))
    source = make_source("daily", url, next_fetch_at=timezone.now() + timedelta(days=1))
    client = Client()
    client.force_login(User.objects.create_superuser("mod", "mod@example.org", "pw"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/digest/source/",
            {"action": "fetch_now", "_selected_action": [source.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert "Fetching 1 source(s)" in response.content.decode()
    run = IngestRun.objects.get()
    assert (run.from_source_id, run.status, run.papers_new) == (source.pk, "ok", 3)


@pytest.mark.django_db
def test_changing_the_url_in_the_admin_forgets_the_validators() -> None:
    source = make_source("daily", "https://papers.example.org/a", etag='"v1"')
    client = Client()
    client.force_login(User.objects.create_superuser("mod", "mod@example.org", "pw"))
    response = client.post(
        f"/admin/digest/source/{source.pk}/change/",
        {
            "name": "daily",
            "url": "https://papers.example.org/b",
            "format": "",
            "enabled": "on",
            "interval": "01:00:00",
            "next_fetch_at_0": "2025-03-11",
            "next_fetch_at_1": "08:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    source.refresh_from_db()
    assert (source.url, source.etag) == ("https://papers.example.org/b", "")


@pytest.mark.django_db
def test_add_source_adds_or_updates_a_source_by_name() -> None:
    out = StringIO()
    call_command(
        "add_source", "daily", "https://papers.example.org/papers", "--every", "30", stdout=out
    )
    assert out.getvalue().strip() == (
        "added source 'daily': https://papers.example.org/papers, every 30 minutes"
    )
    call_command(
        "add_source", "daily", "https://papers.example.org/api", "--format", "json", stdout=out
    )
    source = Source.objects.get()
    assert (source.url, source.format, source.interval) == (
        "https://papers.example.org/api",
        "json",
        timedelta(hours=1),
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["file:///etc/passwd"], "url: Enter an http(s) URL."),
        (
            ["https://papers.example.org/", "--every", "0"],
            "interval: Ensure this value is greater than or equal to 0:01:00.",
        ),
    ],
)
def test_add_source_refuses_what_it_cannot_fetch(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as exc_info:
        call_command("add_source", "bad", *args, stdout=StringIO())
    assert str(exc_info.value) == message
    assert not Source.objects.exists()


# --- Through a real worker ----------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_fetches_the_due_sources_the_beat_finds(
    server: PageServer, tmp_path: Path
) -> None:
    from tests.support.workers import broker, celery_worker, purge_broker, wait_for

    purge_broker()
    html = make_source("daily", server.serve("/papers", Page(DAILY_HTML.read_bytes())))
    api = make_source(
        "api",
        server.serve(
            "/api/daily_papers", Page(DAILY_JSON.read_bytes(), content_type="application/json")
        ),
    )
    # The worker fetches from the local page server: it opts in to private addresses.
    with celery_worker(
        tmp_path / "outbox", log=tmp_path / "worker.log", FETCH_ALLOW_PRIVATE_ADDRESSES="true"
    ):
        broker().send_task("digest.tasks.fetch_due_sources")
        wait_for(
            lambda: IngestRun.objects.filter(status=IngestRun.OK).count() == 2,
            what="two ingest runs",
        )
    assert sorted(IngestRun.objects.values_list("from_source_id", flat=True)) == sorted(
        [html.pk, api.pk]
    )
    assert Paper.objects.count() == 3
    assert sorted(server.paths_requested()) == ["/api/daily_papers", "/papers"]


@pytest.mark.django_db
def test_a_source_on_a_private_address_is_refused_in_production_settings(
    settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    settings.FETCH_ALLOW_PRIVATE_ADDRESSES = False  # the default: no opt-in here
    pages = PageServer()
    pages.thread.start()
    try:
        url = pages.serve("/papers", Page(DAILY_HTML.read_bytes()))
        source = make_source("internal", url)
        result = fetch_source(source.pk)
    finally:
        pages.httpd.shutdown()
        pages.httpd.server_close()
    assert result is not None and result.status == IngestRun.FAILED
    assert pages.requests == []
    run = IngestRun.objects.get(from_source=source)
    assert "not a public address" in run.error
