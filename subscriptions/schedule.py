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

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

__all__ = [
    "DAILY",
    "ON_REQUEST",
    "WEEKLY",
    "WELCOME",
    "next_digest_at",
    "period_key",
    "resolve_timezone",
    "window",
]

DAILY = "daily"
WEEKLY = "weekly"
# The periods of editions outside the schedule (digest.delivery.extra): the welcome
# digest, and a digest asked for, "now-" and its UTC hour ("now-2026113015").
WELCOME = "welcome"
ON_REQUEST = "now-"


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


# Areas of the IANA database whose zones are named after a place people live in; a
# city name that several zones share is resolved among these first.
_AREAS = (
    *("Africa", "America", "Antarctica", "Asia", "Atlantic"),
    *("Australia", "Europe", "Indian", "Pacific"),
)
_OFFSET = re.compile(r"(?:utc|gmt)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)


@cache
def _zones() -> tuple[dict[str, str], dict[str, list[str]]]:
    """Every IANA zone by its case-folded name, and by its case-folded last part
    ("new york" for America/New_York)."""
    by_name: dict[str, str] = {}
    by_city: dict[str, list[str]] = {}
    for name in sorted(available_timezones()):
        by_name[name.casefold()] = name
        city = name.rsplit("/", 1)[-1].replace("_", " ").casefold()
        by_city.setdefault(city, []).append(name)
    return by_name, by_city


def _same_clock(names: list[str]) -> bool:
    """Whether the zones show the same UTC offsets in January and July of this year."""
    year = datetime.now(UTC).year
    instants = [datetime(year, 1, 15, tzinfo=UTC), datetime(year, 7, 15, tzinfo=UTC)]
    return len({tuple(i.astimezone(ZoneInfo(n)).utcoffset() for i in instants) for n in names}) == 1


def resolve_timezone(text: str) -> str:
    """The IANA zone name (https://www.iana.org/time-zones) that ``text`` means, as a
    subscriber would type it: a zone name in any case (``europe/berlin``), a city of the
    database (``berlin``, ``new york``), or a whole-hour offset from UTC (``GMT+1``,
    ``UTC-05:00``, which name a fixed zone ``Etc/GMT-1``, ``Etc/GMT+5``: the database's
    signs are inverted, POSIX style). Raises ValueError with a suggestion otherwise."""
    value = " ".join(text.split())
    by_name, by_city = _zones()
    if not value:
        raise ValueError("Choose a timezone, e.g. Europe/Paris or UTC.")
    if value.casefold() in by_name:
        return by_name[value.casefold()]
    offset = _OFFSET.fullmatch(value)
    if offset:
        sign, hours, minutes = offset.group(1), int(offset.group(2)), int(offset.group(3) or 0)
        if minutes or hours > 14:
            raise ValueError(
                f"{value} is not a whole-hour offset; choose the city, e.g. Asia/Kolkata."
            )
        return "UTC" if hours == 0 else f"Etc/GMT{'-' if sign == '+' else '+'}{hours}"
    city = value.replace("_", " ").casefold()
    matches = by_city.get(city, [])
    if len(matches) > 1:
        matches = [m for m in matches if m.split("/", 1)[0] in _AREAS] or matches
    if len(matches) > 1 and _same_clock(matches):
        # Old and new names of one zone (America/Indianapolis is a link to
        # America/Indiana/Indianapolis): the longer is the current one.
        matches = [max(matches, key=len)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(f"{value} is ambiguous: choose one of {', '.join(matches)}.")
    raise ValueError(
        f"{value} is not a timezone we know. Use an IANA timezone name such as Europe/Paris, "
        "a city such as Berlin, or UTC."
    )
