"""Fetch the configured :class:`~digest.models.Source` pages on their schedules.

The beat runs :func:`digest.tasks.fetch_due_sources`, which claims the due sources
(:func:`claim_due_sources`) and enqueues one :func:`digest.tasks.fetch_source` per source;
that task calls :func:`fetch_source` here. Each fetch is a conditional GET with the
validators of the last page ingested (RFC 9110 section 13.1): an unchanged page costs a
304 and is recorded as a ``not_modified`` run that changes nothing else.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.utils import timezone

from digest.ingest.fetch import FetchError, fetch
from digest.ingest.store import PageResult, failed_run, ingest_bytes
from digest.models import IngestRun, Source

log = logging.getLogger(__name__)

__all__ = ["add_source", "claim_due_sources", "fetch_source"]


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


def fetch_source(source_id: int, *, client: httpx.Client | None = None) -> PageResult | None:
    """Fetch one source and ingest its page; ``None`` when the source no longer exists.

    Sends the stored ETag and Last-Modified (:func:`digest.ingest.fetch.fetch` retries what may
    pass). Records one :class:`IngestRun` linked to the source: ``not_modified`` on a
    304, ``failed`` when the fetch fails (the error reads ``"<url>: <reason>"``) or the
    page cannot be ingested, else ``ok``. The new validators are kept only when the page
    was ingested (or is unchanged), so a page that failed is fetched whole next time.
    Then sets the source's ``last_status``, ``last_fetched_at`` and ``next_fetch_at``
    (one interval after the fetch). Never raises for a bad page or a failed fetch.
    """
    source = Source.objects.filter(pk=source_id).first()
    if source is None:
        return None
    started_at = timezone.now()
    format = source.format or None
    etag, last_modified = source.etag, source.last_modified
    try:
        fetched = fetch(
            source.url,
            etag=etag or None,
            last_modified=last_modified or None,
            client=client,
            allow_private=settings.FETCH_ALLOW_PRIVATE_ADDRESSES,
            deadline=settings.FETCH_DEADLINE,
        )
    except FetchError as exc:
        result = failed_run(
            source.url, str(exc), format=format, from_source=source, started_at=started_at
        )
    else:
        if fetched.not_modified:
            run = IngestRun.objects.create(
                source=source.url[:2000],
                from_source=source,
                format=source.format,
                status=IngestRun.NOT_MODIFIED,
                started_at=started_at,
                finished_at=timezone.now(),
            )
            result = PageResult(
                source=source.url, format=source.format, run_id=run.pk, status=run.status
            )
        else:
            result = ingest_bytes(
                fetched.content or b"",
                source=source.url,
                format=format,
                now=started_at,
                from_source=source,
            )
        if result.status in (IngestRun.OK, IngestRun.NOT_MODIFIED):
            etag, last_modified = fetched.etag or "", fetched.last_modified or ""

    finished_at = timezone.now()
    # An update of these columns only: an admin may have edited the source meanwhile.
    Source.objects.filter(pk=source.pk).update(
        # A validator cut short would never match: keep none instead.
        etag=etag if len(etag) <= 500 else "",
        last_modified=last_modified if len(last_modified) <= 100 else "",
        last_status=result.status,
        last_fetched_at=finished_at,
        next_fetch_at=finished_at + source.interval,
    )
    log.info("fetch_source source_id=%s url=%s status=%s", source.pk, source.url, result.status)
    return result


def add_source(
    name: str,
    url: str,
    *,
    format: str = "",
    interval: timedelta = timedelta(hours=1),
    enabled: bool = True,
) -> tuple[Source, bool]:
    """Create the source called ``name``, or update its URL, format, interval and
    ``enabled``; it falls due at once. Returns ``(source, created)``.

    Raises :class:`django.core.exceptions.ValidationError` for a URL that is not http(s),
    an unknown format or an interval under a minute.
    """
    source = Source.objects.filter(name=name).first() or Source(name=name)
    created = source.pk is None
    if not created and source.url != url:
        # Validators belong to the URL they came from.
        source.etag = source.last_modified = ""
    source.url, source.format, source.interval, source.enabled = url, format, interval, enabled
    source.next_fetch_at = timezone.now()
    source.full_clean()
    source.save()
    return source, created
