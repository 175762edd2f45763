"""The ``any`` lookup (digest.lookups): the same rows as ``in``, one array parameter."""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from digest.models import Digest, DigestItem, Paper
from subscriptions.models import Subscriber

from .conftest import make_subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture
def papers() -> list[Paper]:
    now = timezone.now()
    return [
        Paper.objects.create(arxiv_id=f"2601.{n:05d}", title=f"Paper {n}", last_seen_at=now)
        for n in range(5)
    ]


def test_any_selects_what_in_selects(papers: list[Paper]) -> None:
    ids = [papers[0].pk, papers[3].pk, papers[3].pk, None, 10**12]
    got = set(Paper.objects.filter(pk__any=ids).values_list("pk", flat=True))
    assert got == set(Paper.objects.filter(pk__in=ids).values_list("pk", flat=True))
    assert got == {papers[0].pk, papers[3].pk}
    assert not Paper.objects.filter(pk__any=[]).exists()
    assert not Paper.objects.filter(pk__any=[None]).exists()
    assert Paper.objects.exclude(pk__any=[papers[0].pk]).count() == 4


def test_any_is_one_parameter_whatever_the_number_of_values(papers: list[Paper]) -> None:
    many = list(range(1, 50_001)) + [p.pk for p in papers]
    assert Paper.objects.filter(pk__any=many).count() == 5
    if connection.vendor == "postgresql":
        statements = [
            Paper.objects.filter(pk__any=values).query.sql_with_params()
            for values in (many, many[:3])
        ]
        # One statement text, one parameter: the values travel as one array.
        assert statements[0][0] == statements[1][0]
        assert "= ANY(%s::bigint[])" in statements[0][0]
        assert [len(params) for _, params in statements] == [1, 1]


def test_any_on_foreign_keys_and_text(papers: list[Paper]) -> None:
    subscriber = make_subscriber("a@example.org", ["diffusion"])
    other = make_subscriber("b@example.org", ["diffusion"])
    digest = Digest.objects.create(subscriber=subscriber, period="2026-11-30")
    DigestItem.objects.create(digest=digest, subscriber=subscriber, paper=papers[1], rank=1)
    assert list(
        DigestItem.objects.filter(
            subscriber_id__any=[subscriber.pk, other.pk], paper_id__any={papers[1].pk}
        ).values_list("paper_id", flat=True)
    ) == [papers[1].pk]
    assert list(Digest.objects.filter(subscriber__any=[subscriber.pk])) == [digest]
    # Text values are sent as an array too, quoted by the driver.
    assert list(Digest.objects.filter(period__any=["2026-11-30", "x'); DROP TABLE x; --"])) == [
        digest
    ]
    assert Subscriber.objects.filter(email__any=['"b"@example.org', "b@example.org"]).count() == 1


def test_any_with_a_subquery_is_in(papers: list[Paper]) -> None:
    inner = Paper.objects.filter(title="Paper 2").values("pk")
    assert list(Paper.objects.filter(pk__any=inner)) == [papers[2]]
