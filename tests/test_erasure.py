""" "Delete me" leaves the address and the subscriber's ids nowhere in the database."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from digest.delivery.pipeline import deliver
from digest.ingest.store import ingest_source
from digest.models import DeliveryEvent
from subscriptions.models import ErasureCount, Subscriber
from subscriptions.tokens import manage_url

from .conftest import PAGE_004, make_subscriber
from .test_admin_roles import action

ADDRESS = "ada.lovelace@example.org"


def rows_mentioning(*needles: str) -> dict[str, list[tuple]]:
    """Every row of every table whose text holds one of ``needles`` (case-insensitive);
    sessions are read decoded."""
    from django.contrib.sessions.backends.db import SessionStore

    found: dict[str, list[tuple]] = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            for row in cursor.fetchall():
                values = list(row)
                if table == "django_session":
                    values.append(SessionStore().decode(row[1]))
                text = " ".join(str(value) for value in values).lower()
                if any(needle.lower() in text for needle in needles):
                    found.setdefault(table, []).append(row)
    return found


def rows_pointing_at(subscriber_id: int) -> dict[str, int]:
    """Rows of every table whose ``subscriber_id`` column, or admin log entry, names the
    subscriber."""
    found = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            columns = [
                c.name for c in connection.introspection.get_table_description(cursor, table)
            ]
            if "subscriber_id" in columns:
                cursor.execute(
                    f'SELECT count(*) FROM "{table}" WHERE subscriber_id = %s', [subscriber_id]
                )
                if count := cursor.fetchone()[0]:
                    found[table] = count
        cursor.execute(
            "SELECT count(*) FROM django_admin_log l JOIN django_content_type t ON t.id = l.content_type_id "
            "WHERE t.app_label = 'subscriptions' AND l.object_id = %s",
            [str(subscriber_id)],
        )
        if count := cursor.fetchone()[0]:
            found["django_admin_log"] = count
    return found


def signed_in(subscriber: Subscriber) -> Client:
    """A browser signed in through the subscriber's magic link."""
    browser = Client()
    path = manage_url(subscriber.uuid).removeprefix("https://papers.example.org")
    assert browser.post(path).status_code == 302
    return browser


@pytest.mark.django_db
def test_delete_me_leaves_no_trace_of_the_address_or_the_ids(
    admin_client: Client, outbox: Path
) -> None:
    ingest_source(str(PAGE_004))
    ada = make_subscriber(ADDRESS, ["mamba", "diffusion"])
    [result] = deliver([ada.pk], force=True)
    assert result.status == "sent"
    # What the ESP said, by digest and by address alone.
    DeliveryEvent.objects.create(
        esp_name="Postmark",
        event_id="1",
        event_type="delivered",
        recipient=ADDRESS,
        description=f"Delivered to {ADDRESS}",
        digest_id=result.digest_id,
        subscriber=ada,
        raw={"Recipient": ADDRESS, "Details": f"250 OK <{ADDRESS}>"},
    )
    DeliveryEvent.objects.create(
        esp_name="Postmark",
        event_id="2",
        event_type="bounced",
        recipient="",
        mta_response=f"550 {ADDRESS.upper()} unknown",
        raw={"Email": ADDRESS},
    )
    # A moderator's work on the subscriber and a filter, in the admin log.
    subscribers = reverse("admin:subscriptions_subscriber_changelist")
    action(admin_client, subscribers, "suspend", [ada.pk])
    action(admin_client, subscribers, "resume", [ada.pk])
    item = ada.filters.first()
    admin_client.post(
        reverse("admin:subscriptions_filter_change", args=[item.pk]),
        {"query": "mamba OR ssm", "flagged_for_review": ""},
    )
    other_browser, this_browser = signed_in(ada), signed_in(ada)
    # A session signed in before sessions were noted on the subscriber.
    from django.contrib.sessions.backends.db import SessionStore

    older = SessionStore()
    older["subscriptions.subscriber"] = str(ada.uuid)
    older.create()
    before = rows_mentioning(ADDRESS, str(ada.uuid))
    assert {"django_admin_log", "digest_deliveryevent", "django_session"} <= set(before)
    ada.refresh_from_db()
    uuid, pk = str(ada.uuid), ada.pk

    response = this_browser.post("/manage/delete/")
    assert response.status_code == 200

    assert rows_mentioning(ADDRESS, uuid) == {}
    assert rows_pointing_at(pk) == {}
    assert not Subscriber.objects.filter(pk=pk).exists()
    assert other_browser.get("/manage/").status_code == 302
    # What survives: anonymous counts, and the events' types for the dashboard.
    [count] = ErasureCount.objects.all()
    assert (count.subscribers, count.digests_sent) == (1, 1)
    assert sorted(DeliveryEvent.objects.values_list("event_type", flat=True)) == [
        "bounced",
        "delivered",
    ]


@pytest.mark.django_db
def test_a_superuser_deleting_a_subscriber_erases_them_the_same_way(admin_client: Client) -> None:
    ada = make_subscriber(ADDRESS, ["mamba"])
    DeliveryEvent.objects.create(esp_name="Postmark", event_type="bounced", recipient=ADDRESS)
    uuid, pk = str(ada.uuid), ada.pk
    response = admin_client.post(
        reverse("admin:subscriptions_subscriber_delete", args=[pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert rows_mentioning(ADDRESS, uuid) == {}
    assert rows_pointing_at(pk) == {}
    assert ErasureCount.objects.get().subscribers == 1
