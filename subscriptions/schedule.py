"""When a subscriber's next digest is due: pure functions of plain values.

A subscriber names a frequency (``daily`` or ``weekly``), a weekday for weekly digests
(0 = Monday … 6 = Sunday, as :meth:`datetime.date.weekday`), a local hour (0–23) and an
IANA timezone. Times returned are aware UTC datetimes. Wall-clock arithmetic happens in
local dates and is converted with :mod:`zoneinfo`, so a digest stays at 08:00 local time
across daylight-saving changes; an hour that does not exist on a spring-forward day is
taken as the first instant after the gap, an hour that happens twice on an autumn day
is taken the first time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["DAILY", "WEEKLY", "next_digest_at", "period_key", "window"]

DAILY = "daily"
WEEKLY = "weekly"


def _local_instant(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """The UTC instant of ``hour``:00 local time on ``day``.

    With ``fold=0`` (PEP 495) a local time inside a spring-forward gap is read with the
    offset from before the gap, which lands on the first instant after it (02:00 that
    does not exist becomes 03:00); a repeated autumn time is read the first time.
    """
    return datetime.combine(day, time(hour), tzinfo=tz).astimezone(UTC)


def next_digest_at(
    after: datetime, *, frequency: str, hour: int, timezone: str, weekday: int = 0
) -> datetime:
    """The first send time strictly after ``after`` (an aware datetime), in UTC.

    Raises ValueError for an unknown frequency, an hour outside 0–23 or a weekday outside
    0–6, and ``zoneinfo.ZoneInfoNotFoundError`` for an unknown timezone.
    """
    if frequency not in (DAILY, WEEKLY):
        raise ValueError(f"unknown frequency {frequency!r}")
    if not 0 <= hour <= 23:
        raise ValueError(f"hour {hour} is outside 0–23")
    if not 0 <= weekday <= 6:
        raise ValueError(f"weekday {weekday} is outside 0–6")
    tz = ZoneInfo(timezone)
    day = after.astimezone(tz).date()
    # Two days back covers any offset change; walk forward to the first slot after `after`.
    day -= timedelta(days=1)
    while True:
        if frequency == DAILY or day.weekday() == weekday:
            candidate = _local_instant(day, hour, tz)
            if candidate > after:
                return candidate
        day += timedelta(days=1)


def period_key(at: datetime, *, frequency: str, timezone: str) -> str:
    """The edition a digest sent at ``at`` belongs to, in the subscriber's calendar:
    ``"2026-11-21"`` for daily digests, the ISO week ``"2026-W47"`` for weekly ones.

    One digest per (subscriber, period) is the rule that makes sends exactly-once.
    """
    local = at.astimezone(ZoneInfo(timezone)).date()
    if frequency == WEEKLY:
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.isoformat()


def window(frequency: str) -> timedelta:
    """How far back an edition of ``frequency`` looks for papers seen on the pages: two
    days for a daily digest, eight for a weekly one (a day's margin for late pages)."""
    return timedelta(days=8) if frequency == WEEKLY else timedelta(days=2)
