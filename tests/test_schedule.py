"""``next_digest_at``: the subscriber's local hour, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from subscriptions.schedule import next_digest_at, period_key, resolve_timezone


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(at: datetime, tz: str) -> tuple[int, int, int, int]:
    t = at.astimezone(ZoneInfo(tz))
    return (t.month, t.day, t.hour, t.minute)


@pytest.mark.parametrize(
    ("tz", "before", "after"),
    [
        # Spring forward: New York 2026-03-08, Berlin 2026-03-29.
        ("America/New_York", utc(2026, 3, 7, 13), utc(2026, 3, 8, 12)),
        ("Europe/Berlin", utc(2026, 3, 28, 7), utc(2026, 3, 29, 6)),
        # Fall back: New York 2026-11-01, Berlin 2026-10-25.
        ("America/New_York", utc(2026, 10, 31, 12), utc(2026, 11, 1, 13)),
        ("Europe/Berlin", utc(2026, 10, 24, 6), utc(2026, 10, 25, 7)),
    ],
)
def test_a_daily_digest_stays_at_8_local_across_dst(
    tz: str, before: datetime, after: datetime
) -> None:
    first = next_digest_at(before.replace(hour=0), frequency="daily", hour=8, timezone=tz)
    assert first == before
    second = next_digest_at(first, frequency="daily", hour=8, timezone=tz)
    assert second == after
    assert local(first, tz)[2:] == local(second, tz)[2:] == (8, 0)


def test_an_hour_inside_the_spring_gap_is_sent_just_after_it() -> None:
    # 02:00 does not exist in New York on 2026-03-08: the clock goes from 01:59 to 03:00.
    at = next_digest_at(utc(2026, 3, 8, 0), frequency="daily", hour=2, timezone="America/New_York")
    assert at == utc(2026, 3, 8, 7)
    assert local(at, "America/New_York") == (3, 8, 3, 0)


def test_an_hour_repeated_in_autumn_is_sent_once_the_first_time() -> None:
    # 01:00 happens twice in New York on 2026-11-01 (EDT then EST).
    first = next_digest_at(
        utc(2026, 11, 1, 0), frequency="daily", hour=1, timezone="America/New_York"
    )
    assert first == utc(2026, 11, 1, 5)
    following = next_digest_at(first, frequency="daily", hour=1, timezone="America/New_York")
    assert following == utc(2026, 11, 2, 6)


def test_a_weekly_digest_goes_out_on_its_weekday() -> None:
    # Saturday 2026-11-21 → next Monday 08:00 in Tokyo (UTC+9) is Sunday 23:00 UTC.
    at = next_digest_at(
        utc(2026, 11, 21, 12), frequency="weekly", hour=8, weekday=0, timezone="Asia/Tokyo"
    )
    assert at == utc(2026, 11, 22, 23)
    assert next_digest_at(at, frequency="weekly", hour=8, weekday=0, timezone="Asia/Tokyo") == utc(
        2026, 11, 29, 23
    )


def test_it_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown frequency"):
        next_digest_at(utc(2026, 1, 1), frequency="hourly", hour=8, timezone="UTC")
    with pytest.raises(ValueError, match="hour 24"):
        next_digest_at(utc(2026, 1, 1), frequency="daily", hour=24, timezone="UTC")


def test_period_keys_follow_the_local_calendar() -> None:
    at = utc(2026, 11, 21, 23, 30)
    assert period_key(at, frequency="daily", timezone="UTC") == "2026-11-21"
    assert period_key(at, frequency="daily", timezone="Asia/Tokyo") == "2026-11-22"
    assert period_key(at, frequency="weekly", timezone="UTC") == "2026-W47"


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York", "Australia/Sydney"])
@pytest.mark.parametrize("hour", [0, 2, 8, 23])
def test_a_year_of_daily_digests_keeps_the_local_hour_once_a_day(tz: str, hour: int) -> None:
    at = utc(2026, 1, 1)
    days = []
    for _ in range(366):
        at = next_digest_at(at, frequency="daily", hour=hour, timezone=tz)
        t = at.astimezone(ZoneInfo(tz))
        # 02:00 falls in the spring gap in Berlin and New York: sent at 03:00 that day.
        assert t.hour == hour or (hour == 2 and t.hour == 3), t
        days.append(t.date())
    assert len(set(days)) == 366  # one per local day, none skipped, none doubled
    assert all((b - a).days == 1 for a, b in zip(days, days[1:], strict=False))


def test_a_weekly_digest_keeps_its_weekday_and_hour_across_dst() -> None:
    # Sundays at 08:00 in Berlin around 2026-03-29 (spring) and 2026-10-25 (autumn).
    at = utc(2026, 3, 20)
    sends = []
    for _ in range(34):
        at = next_digest_at(at, frequency="weekly", hour=8, weekday=6, timezone="Europe/Berlin")
        sends.append(at)
    local_times = [s.astimezone(ZoneInfo("Europe/Berlin")) for s in sends]
    assert {(t.weekday(), t.hour, t.minute) for t in local_times} == {(6, 8, 0)}
    assert sends[0] == utc(2026, 3, 22, 7)  # CET, UTC+1
    assert sends[1] == utc(2026, 3, 29, 6)  # CEST from that very morning, UTC+2
    assert utc(2026, 11, 1, 7) in sends  # CET again after 2026-10-25
    assert len({period_key(s, frequency="weekly", timezone="Europe/Berlin") for s in sends}) == 34


@pytest.mark.parametrize(
    "typed, zone",
    [
        ("Europe/Paris", "Europe/Paris"),
        ("europe/berlin", "Europe/Berlin"),
        ("berlin", "Europe/Berlin"),
        ("  New   York ", "America/New_York"),
        ("new_york", "America/New_York"),
        ("utc", "UTC"),
        ("GMT+1", "Etc/GMT-1"),
        ("UTC-05:00", "Etc/GMT+5"),
        ("UTC+0", "UTC"),
        ("indianapolis", "America/Indiana/Indianapolis"),
    ],
)
def test_a_timezone_is_understood_as_people_type_it(typed: str, zone: str) -> None:
    assert resolve_timezone(typed) == zone


@pytest.mark.parametrize(
    "typed, message",
    [
        ("Mars/Olympus_Mons", "not a timezone we know"),
        ("GMT+5:30", "not a whole-hour offset"),
        ("UTC+15", "not a whole-hour offset"),
        ("", "Choose a timezone"),
    ],
)
def test_a_timezone_that_means_nothing_is_refused_with_a_hint(typed: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_timezone(typed)


def test_a_fixed_offset_zone_keeps_its_offset_all_year() -> None:
    zone = ZoneInfo(resolve_timezone("GMT+1"))
    for month in (1, 7):
        assert datetime(2026, month, 1, 12, tzinfo=UTC).astimezone(zone).hour == 13
