"""Fetch the configured :class:`~digest.models.Source` pages on their schedules.

The beat runs :func:`digest.tasks.fetch_due_sources`, which claims the due sources
(:func:`claim_due_sources`) and enqueues one :func:`digest.tasks.fetch_source` per source;
that task calls :func:`fetch_source` here. Each fetch is a conditional GET with the
validators of the last page ingested (RFC 9110 section 13.1): an unchanged page costs a
304 and is recorded as a ``not_modified`` run that changes nothing else.

arXiv sources follow arXiv's etiquette (https://info.arxiv.org/help/api/tou.html): one
request every three seconds at most across all workers, fetched once a day after the
announcement, long answers paged within those limits (:func:`fetch_source`).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from urllib.parse import urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import httpx
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from digest.ingest.fetch import FetchError, fetch
from digest.ingest.parsers import Paging
from digest.ingest.store import PageResult, failed_run, ingest_bytes
from digest.models import IngestRun, Source

log = logging.getLogger(__name__)

__all__ = [
    "ARXIV_FETCH_DELAY",
    "add_source",
    "claim_due_sources",
    "fetch_source",
    "next_announcement",
    "next_page_url",
    "wait_for_arxiv",
]


def claim_due_sources(now: datetime) -> list[int]:
    """Ids of the enabled sources due at ``now`` (``next_fetch_at <= now``), in the order
    they fell due.

    Each is claimed by moving its ``next_fetch_at`` one interval past ``now`` with an
    ``UPDATE … WHERE next_fetch_at = <the value read>``: a source another beat tick
    claimed meanwhile is left out, so none is enqueued twice, and a fetch that never
    runs (a worker lost) is retried an interval later.
    """
    due = Source.objects.filter(enabled=True, next_fetch_at__lte=now).order_by(
        "next_fetch_at", "pk"
    )
    claimed = []
    for pk, next_fetch_at, interval in due.values_list("pk", "next_fetch_at", "interval"):
        won = Source.objects.filter(pk=pk, next_fetch_at=next_fetch_at).update(
            next_fetch_at=now + interval
        )
        if won:
            claimed.append(pk)
    return claimed


def fetch_source(
    source_id: int,
    *,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PageResult | None:
    """Fetch one source and ingest its page; ``None`` when the source no longer exists.

    Sends the stored ETag and Last-Modified (:func:`digest.ingest.fetch.fetch` retries what may
    pass, after the server's ``Retry-After`` on 429 and 503). Records one
    :class:`IngestRun` per request, linked to the source: ``not_modified`` on a 304,
    ``failed`` when the fetch fails (the error reads ``"<url>: <reason>"``) or the page
    cannot be ingested, else ``ok``. The new validators are kept only when the page was
    ingested (or is unchanged), so a page that failed is fetched whole next time.

    An arXiv source (:attr:`Source.is_arxiv`) is fetched politely: every request waits
    its turn (:func:`wait_for_arxiv`, at most one request to arXiv every
    ``ARXIV_REQUEST_INTERVAL`` seconds), an API answer is followed page by page
    (``start``) and an OAI-PMH harvest token by token, up to ``ARXIV_MAX_PAGES``
    requests; paging stops at the first page that fails. A complete OAI-PMH harvest
    moves the URL's ``from`` to the harvest's day, so the next harvest takes what is
    new. ``sleep(seconds)`` does the waiting (tests replace it).

    Then sets the source's ``last_status``, ``last_fetched_at`` and ``next_fetch_at``:
    one interval after the fetch, and for an arXiv source that succeeded no earlier than
    ``ARXIV_FETCH_DELAY`` after arXiv's next announcement (:func:`next_announcement`).
    Returns the first page's result, with the counts of every page added up (and the
    first error). Never raises for a bad page or a failed fetch.
    """
    source = Source.objects.filter(pk=source_id).first()
    if source is None:
        return None
    format = source.format or None
    etag, last_modified = source.etag, source.last_modified
    url = source.url
    if not url:  # a row made without its clean(): nothing to fetch, say so
        return failed_run(f"source {source.name!r}", "the source has no URL", from_source=source)
    pages = 0
    total: PageResult | None = None
    max_pages = settings.ARXIV_MAX_PAGES if source.is_arxiv else 1
    while url and pages < max_pages:
        pages += 1
        if source.is_arxiv:
            wait_for_arxiv(url, sleep=sleep)
        first = pages == 1
        page_started = timezone.now()
        try:
            fetched = fetch(
                url,
                etag=(etag or None) if first else None,
                last_modified=(last_modified or None) if first else None,
                client=client,
                sleep=sleep,
                allow_private=settings.FETCH_ALLOW_PRIVATE_ADDRESSES,
                deadline=settings.FETCH_DEADLINE,
            )
        except FetchError as exc:
            result = failed_run(
                url, str(exc), format=format, from_source=source, started_at=page_started
            )
            fetched = None
        else:
            if fetched.not_modified:
                run = IngestRun.objects.create(
                    source=url[:2000],
                    from_source=source,
                    format=source.format,
                    status=IngestRun.NOT_MODIFIED,
                    started_at=page_started,
                    finished_at=timezone.now(),
                )
                result = PageResult(
                    source=url, format=source.format, run_id=run.pk, status=run.status
                )
            else:
                result = ingest_bytes(
                    fetched.content or b"",
                    source=url,
                    format=format,
                    now=page_started,
                    from_source=source,
                )
        if first:
            total = result
            if fetched is not None and result.status in (IngestRun.OK, IngestRun.NOT_MODIFIED):
                etag, last_modified = fetched.etag or "", fetched.last_modified or ""
        elif total is not None:
            total.papers += result.papers
            total.new += result.new
            total.updated += result.updated
            if result.status == IngestRun.FAILED and total.status != IngestRun.FAILED:
                total.status, total.error = result.status, result.error
        if result.status != IngestRun.OK:
            break
        url = next_page_url(url, result.paging) if source.is_arxiv else ""
    assert total is not None  # the loop runs at least once: source.url is never blank

    finished_at = timezone.now()
    next_fetch_at = finished_at + source.interval
    if source.is_arxiv and total.status != IngestRun.FAILED:
        next_fetch_at = max(next_fetch_at, next_announcement(finished_at) + ARXIV_FETCH_DELAY)
    changes: dict[str, object] = {}
    if source.format == "arxiv_oai" and total.status == IngestRun.OK and not url:
        # The harvest reached its last page: the next one starts from today.
        harvested = _with_param(source.url, "from", finished_at.date().isoformat())
        if harvested != source.url:
            changes = {"url": harvested}
            etag = last_modified = ""
    # An update of these columns only: an admin may have edited the source meanwhile.
    Source.objects.filter(pk=source.pk).update(
        # A validator cut short would never match: keep none instead.
        etag=etag if len(etag) <= 500 else "",
        last_modified=last_modified if len(last_modified) <= 100 else "",
        last_status=total.status,
        last_fetched_at=finished_at,
        next_fetch_at=next_fetch_at,
        **changes,
    )
    log.info(
        "fetch_source source_id=%s url=%s status=%s pages=%s",
        source.pk,
        source.url,
        total.status,
        pages,
    )
    return total


ARXIV_FETCH_DELAY = timedelta(minutes=30)
"""How long after arXiv's announcement its sources are fetched: the feeds and the API
take a few minutes to show a new announcement."""
_EASTERN = ZoneInfo("America/New_York")
# Sunday to Thursday (Monday is 0): arXiv's announcement days.
_ANNOUNCEMENT_DAYS = frozenset({6, 0, 1, 2, 3})


def next_announcement(after: datetime) -> datetime:
    """The first arXiv announcement strictly after ``after`` (an aware datetime), in
    UTC: arXiv announces new papers at 20:00 US Eastern time, Sunday to Thursday
    (https://info.arxiv.org/help/availability.html); holidays are not known here (an
    empty day is fetched and recorded as such)."""
    local = after.astimezone(_EASTERN)
    for days in range(8):
        day = local.date() + timedelta(days=days)
        at = datetime.combine(day, dt_time(20, 0), tzinfo=_EASTERN)
        if day.weekday() in _ANNOUNCEMENT_DAYS and at > local:
            return at.astimezone(UTC)
    raise AssertionError("unreachable: an announcement falls in every week")


def wait_for_arxiv(url: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
    """Block until this process may send a request to ``url``'s host, so that all
    workers together send arXiv at most one request every ``ARXIV_REQUEST_INTERVAL``
    seconds, as arXiv asks (https://info.arxiv.org/help/api/tou.html). The turn is a
    cache key added with that timeout: in production the cache is Redis, shared by every
    worker; with the local-memory cache it only spaces this process's requests."""
    interval = settings.ARXIV_REQUEST_INTERVAL
    if interval <= 0:
        return
    key = "arxiv-turn:" + (urlsplit(url).hostname or "")
    # Whole seconds: the Redis cache rounds timeouts down.
    timeout = max(1, math.ceil(interval))
    while not cache.add(key, 1, timeout=timeout):
        sleep(min(0.25, interval))


def next_page_url(url: str, paging: Paging | None) -> str:
    """The URL of the page after ``url``, or ``""`` when the answer ends there.

    The arXiv API: ``start`` moved on by ``per_page`` while results remain
    (OpenSearch ``totalResults``). OAI-PMH: the base URL with ``verb=ListRecords`` and
    the resumption token alone (OAI-PMH 2.0 section 3.5, "Flow Control").
    """
    if paging is None:
        return ""
    if paging.token:
        parts = urlsplit(url)
        query = urlencode({"verb": "ListRecords", "resumptionToken": paging.token})
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    if paging.total is None or paging.start is None or not paging.per_page:
        return ""
    following = paging.start + paging.per_page
    if following >= paging.total:
        return ""
    return _with_param(url, "start", str(following))


def _with_param(url: str, name: str, value: str) -> str:
    """``url`` with query parameter ``name`` set to ``value``, the rest as written."""
    pattern = re.compile(rf"([?&]{re.escape(name)}=)[^&#]*")
    if pattern.search(url):
        return pattern.sub(lambda m: m.group(1) + value, url, count=1)
    return f"{url}{'&' if '?' in url else '?'}{name}={value}"


def add_source(
    name: str,
    url: str,
    *,
    format: str = "",
    interval: timedelta = timedelta(hours=1),
    enabled: bool = True,
    categories: str = "",
    announce_types: str = "new cross",
) -> tuple[Source, bool]:
    """Create the source called ``name``, or update its URL, format, interval,
    ``enabled`` and arXiv settings; it falls due at once. Returns ``(source, created)``.

    ``categories`` (``"cs.CL cs.LG"``) and ``announce_types`` (any of ``new cross
    replace replace-cross``) matter for arXiv formats: only papers in those categories
    and announcements of those types are stored, and a blank ``url`` is made from the
    categories (:func:`digest.formats.arxiv_url`).

    Raises :class:`django.core.exceptions.ValidationError` for a URL that is not http(s)
    (or blank without arXiv categories), an unknown format or announcement type, a
    category that is not one, or an interval under a minute.
    """
    source = Source.objects.filter(name=name).first() or Source(name=name)
    created = source.pk is None
    if not created and source.url != url:
        # Validators belong to the URL they came from.
        source.etag = source.last_modified = ""
    source.url, source.format, source.interval, source.enabled = url, format, interval, enabled
    source.categories, source.announce_types = categories, announce_types
    source.next_fetch_at = timezone.now()
    source.full_clean()
    source.save()
    return source, created
