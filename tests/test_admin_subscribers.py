"""Moderating who gets digests: find subscribers by state, see what they asked for and
were sent, suspend and resume them, resend a digest, preview the next one."""

from __future__ import annotations

from pathlib import Path

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from digest.delivery.pipeline import deliver
from digest.ingest.store import ingest_source
from digest.models import DeliveryEvent, Digest, DigestItem, IngestRun, Topic
from subscriptions.models import Subscriber

from .conftest import PAGE_004, make_subscriber
from .test_admin_roles import action, moderator_client

SUBSCRIBERS = reverse("admin:subscriptions_subscriber_changelist")


def messages_of(client: Client) -> list[str]:
    return [str(m) for m in client.get(SUBSCRIBERS).context["messages"]]


@pytest.mark.django_db
def test_subscribers_are_filtered_by_state_and_searched_by_address(admin_client: Client) -> None:
    now = timezone.now()
    make_subscriber("active@example.org", ["mamba"])
    make_subscriber("new@example.org", ["mamba"], confirmed_at=None)
    make_subscriber("paused@example.org", ["mamba"], paused_at=now)
    make_subscriber("bounced@example.org", ["mamba"], suppressed_at=now)
    make_subscriber("gone@example.org", ["mamba"], unsubscribed_at=now, suppressed_at=now)

    def listed(**params: str) -> list[str]:
        page = admin_client.get(SUBSCRIBERS, params)
        assert page.status_code == 200
        return sorted(s.email for s in page.context["cl"].result_list)

    assert listed(state="active") == ["active@example.org"]
    assert listed(state="unconfirmed") == ["new@example.org"]
    assert listed(state="paused") == ["paused@example.org"]
    assert listed(state="suppressed") == ["bounced@example.org"]
    assert listed(state="unsubscribed") == ["gone@example.org"]
    assert listed(q="PAUSED@") == ["paused@example.org"]
    for subscriber in Subscriber.objects.all():
        assert listed(state=subscriber.state) == [subscriber.email]  # filter == property


@pytest.mark.django_db
def test_the_subscriber_page_shows_filters_topics_digests_and_delivery_events(
    outbox: Path,
) -> None:
    ingest_source(str(PAGE_004))
    ada = make_subscriber("ada@example.org", ["mamba", "state space"])
    ada.topics.add(Topic.objects.create(name="Sequence models", slug="seq", query="mamba"))
    [result] = deliver([ada.pk], force=True)
    digest = Digest.objects.get(pk=result.digest_id)
    DeliveryEvent.objects.create(
        esp_name="Postmark",
        event_id="ev-1",
        event_type="bounced",
        reject_reason="bounced",
        description="Mailbox full",
        recipient="ada@example.org",
        timestamp=timezone.now(),
        digest=digest,
        subscriber=ada,
    )
    page = moderator_client().get(reverse("admin:subscriptions_subscriber_change", args=[ada.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    for text in (
        "mamba",
        "state space",
        "Sequence models",
        digest.period,
        "Mailbox full",
        "bounced",
    ):
        assert text in html
    assert reverse("admin:subscriptions_subscriber_preview", args=[ada.pk]) in html

    digests = moderator_client("max").get(
        reverse("admin:digest_digest_changelist"), {"status": "sent"}
    )
    [row] = digests.context["cl"].result_list
    assert (row.n_items, row.n_problems) == (result.papers, 1)
    events = moderator_client("eve").get(
        reverse("admin:digest_deliveryevent_changelist"), {"event_type": "bounced"}
    )
    assert "Mailbox full" in events.content.decode()


@pytest.mark.django_db
def test_a_suspended_subscriber_gets_nothing_until_resumed(
    admin_client: Client, outbox: Path
) -> None:
    ingest_source(str(PAGE_004))
    ada = make_subscriber("ada@example.org", ["mamba"])
    bounced = make_subscriber(
        "bounced@example.org",
        ["mamba"],
        suppressed_at=timezone.now(),
        suppressed_reason="hard bounce",
    )
    assert action(admin_client, SUBSCRIBERS, "suspend", [ada.pk]).status_code == 302
    ada.refresh_from_db()
    assert ada.state == "suppressed"
    assert ada.suppressed_reason == "suspended by a moderator"
    assert [r.status for r in deliver([ada.pk], force=True)] == ["skipped"]
    assert not list(outbox.glob("*.eml"))

    action(admin_client, SUBSCRIBERS, "resume", [ada.pk, bounced.pk])
    ada.refresh_from_db()
    bounced.refresh_from_db()
    assert ada.state == "active" and ada.next_digest_at > timezone.now()
    assert bounced.state == "suppressed"  # a bounce is not lifted by "resume"
    assert (
        "1 were not suspended by a moderator (a bounce or complaint suppression stays)."
        in messages_of(admin_client)
    )
    assert [r.status for r in deliver([ada.pk], force=True)] == ["sent"]


@pytest.mark.django_db
def test_resend_sends_the_latest_digest_again_through_the_send_path(
    admin_client: Client, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    ingest_source(str(PAGE_004))
    ada = make_subscriber("ada@example.org", ["mamba"])
    new = make_subscriber("new@example.org", ["mamba"])
    # One instant for both sends: the body's signed links carry the second they were made.
    with time_machine.travel(timezone.now(), tick=False):
        [first] = deliver([ada.pk], force=True)
        assert first.status == "sent"
        [original] = mail.outbox

        response = action(admin_client, SUBSCRIBERS, "resend_latest_digest", [ada.pk, new.pk])
    assert response.status_code == 302
    assert len(mail.outbox) == 2
    again = mail.outbox[1]
    assert again.to == ["ada@example.org"]
    assert again.subject == original.subject
    assert again.body == original.body
    assert again.extra_headers["X-Digest-ID"] == str(first.digest_id)
    assert again.extra_headers["Message-ID"] != original.extra_headers["Message-ID"]
    digest = Digest.objects.get(pk=first.digest_id)
    assert (digest.status, digest.attempts) == (Digest.SENT, 2)
    assert digest.message_id == again.extra_headers["Message-ID"]
    assert DigestItem.objects.filter(subscriber=ada).count() == first.papers  # nothing re-planned
    shown = messages_of(admin_client)
    assert "Resent 1 digest(s)." in shown
    assert "Not resent (no sent digest, or not active): new@example.org" in shown


@pytest.mark.django_db
def test_resend_refuses_a_subscriber_who_is_no_longer_active(
    admin_client: Client, outbox: Path
) -> None:
    ingest_source(str(PAGE_004))
    ada = make_subscriber("ada@example.org", ["mamba"])
    deliver([ada.pk], force=True)
    ada.unsubscribe()
    action(admin_client, SUBSCRIBERS, "resend_latest_digest", [ada.pk])
    assert len(list(outbox.glob("*.eml"))) == 1


@pytest.mark.django_db
def test_the_next_digest_preview_claims_nothing_and_sends_nothing(outbox: Path) -> None:
    ingest_source(str(PAGE_004))
    ada = make_subscriber("ada@example.org", ["mamba"])
    client = moderator_client()
    url = reverse("admin:subscriptions_subscriber_preview", args=[ada.pk])

    page = client.get(url)
    assert page.status_code == 200
    preview = page.context["preview"]
    assert preview.status == "pending" and preview.deliverable
    assert preview.papers and all("mamba" in reason.lower() for _, reason in preview.papers)
    html = page.content.decode()
    assert f"Subject: {preview.subject}" in html
    assert preview.papers[0][0] in html
    assert not Digest.objects.exists() and not DigestItem.objects.exists()
    assert not list(outbox.glob("*.eml"))

    frame = client.get(reverse("admin:subscriptions_subscriber_preview_html", args=[ada.pk]))
    assert frame.status_code == 200
    assert preview.papers[0][0] in frame.content.decode()
    assert "style-src 'unsafe-inline'" in frame["Content-Security-Policy"]
    assert frame["X-Frame-Options"] == "SAMEORIGIN"
    assert not Digest.objects.exists()

    # What the preview showed is what delivery then sends.
    [result] = deliver([ada.pk], force=True)
    sent = list(
        DigestItem.objects.filter(digest_id=result.digest_id)
        .order_by("rank")
        .values_list("paper__title", "reason")
    )
    assert sent == preview.papers


@pytest.mark.django_db
def test_the_preview_says_when_nothing_would_be_sent(outbox: Path) -> None:
    ingest_source(str(PAGE_004))
    bob = make_subscriber("bob@example.org", ["protein folding"], paused_at=timezone.now())
    page = moderator_client().get(reverse("admin:subscriptions_subscriber_preview", args=[bob.pk]))
    html = page.content.decode()
    assert page.context["preview"].status == "empty"
    assert "this subscriber gets nothing while not active" in html
    assert "Nothing matches yet" in html
    assert not Digest.objects.exists()


@pytest.mark.django_db
def test_digests_runs_and_events_are_records_nobody_edits_by_hand(admin_client: Client) -> None:
    ada = make_subscriber("ada@example.org", ["diffusion"])
    digest = Digest.objects.create(subscriber=ada, period="2026-11-30", status=Digest.SENT)
    run = IngestRun.objects.create(source="page.txt", status=IngestRun.OK)
    event = DeliveryEvent.objects.create(
        subscriber=ada, digest=digest, event_type="delivered", event_id="e1", esp_name="Postmark"
    )
    for model, obj in (("digest", digest), ("ingestrun", run), ("deliveryevent", event)):
        page = admin_client.get(reverse(f"admin:digest_{model}_change", args=[obj.pk]))
        assert page.status_code == 200
        assert b'name="_save"' not in page.content  # a view, not a form
        assert admin_client.get(reverse(f"admin:digest_{model}_add")).status_code == 403
        assert (
            admin_client.get(reverse(f"admin:digest_{model}_delete", args=[obj.pk])).status_code
            == 403
        )
    before = Digest.objects.get(pk=digest.pk).status
    admin_client.post(
        reverse("admin:digest_digest_change", args=[digest.pk]), {"status": "pending"}
    )
    assert Digest.objects.get(pk=digest.pk).status == before


@pytest.mark.django_db
def test_the_subscriber_page_says_which_timezone_its_times_are_in(admin_client: Client) -> None:
    at = timezone.now().replace(hour=7, minute=0, second=0, microsecond=0)
    ada = make_subscriber(
        "ada@example.org", ["diffusion"], timezone="Asia/Tokyo", next_digest_at=at
    )
    page = admin_client.get(reverse("admin:subscriptions_subscriber_change", args=[ada.pk]))
    html = page.content.decode()
    assert "16:00 Asia/Tokyo (07:00 UTC)" in html
    assert "History (UTC)" in html
    listing = admin_client.get(reverse("admin:subscriptions_subscriber_changelist")).content
    assert b"next digest (utc)" in listing.lower()


@pytest.mark.django_db
def test_a_moderator_lifts_a_bounce_suppression_and_it_is_logged(outbox: Path) -> None:
    from django.contrib.admin.models import LogEntry

    ingest_source(str(PAGE_004))
    bounced = make_subscriber(
        "bounced@example.org",
        ["mamba"],
        suppressed_at=timezone.now(),
        suppressed_reason="hard bounce: mailbox full",
        soft_bounces=2,
    )
    suspended = make_subscriber("eve@example.org", ["mamba"])
    suspended.suspend("spam filters")
    client = moderator_client()
    assert "lift_suppression" in {
        name for name, _ in client.get(SUBSCRIBERS).context["action_form"].fields["action"].choices
    }
    assert (
        action(client, SUBSCRIBERS, "lift_suppression", [bounced.pk, suspended.pk]).status_code
        == 302
    )
    bounced.refresh_from_db()
    suspended.refresh_from_db()
    assert (bounced.state, bounced.soft_bounces) == ("active", 0)
    assert bounced.next_digest_at is not None
    assert suspended.state == "suppressed"  # a moderator's suspension is not lifted here
    [entry] = LogEntry.objects.filter(object_id=str(bounced.pk))
    assert "Lifted the suppression (hard bounce: mailbox full)" in entry.get_change_message()
    assert entry.user.username == "mona"
    assert [r.status for r in deliver([bounced.pk], force=True)] == ["sent"]


@pytest.mark.django_db
def test_the_preview_shows_placeholders_never_the_subscribers_own_links(outbox: Path) -> None:
    ingest_source(str(PAGE_004))
    ada = make_subscriber("ada@example.org", ["mamba"])
    client = moderator_client()
    page = client.get(reverse("admin:subscriptions_subscriber_preview", args=[ada.pk]))
    frame = client.get(reverse("admin:subscriptions_subscriber_preview_html", args=[ada.pk]))
    text = page.context["preview"].text
    for shown in (text, page.content.decode(), frame.content.decode()):
        for personal in ("/manage/link/", "/unsubscribe/", "/d/", "/link/"):
            assert personal not in shown, personal
    assert "https://papers.example.org/#manage-link-of-the-subscriber" in text
    assert "#unsubscribe-link-of-the-subscriber" in frame.content.decode()
    before = Subscriber.objects.get(pk=ada.pk).link_counter
    assert before == 0  # no link was made that could be spent


@pytest.mark.django_db
def test_once_todays_edition_went_out_the_preview_shows_the_next_one(outbox: Path) -> None:
    ingest_source(str(PAGE_004))
    ada = make_subscriber("ada@example.org", ["mamba"])
    [result] = deliver([ada.pk], force=True)
    assert result.status == "sent"
    sent = Digest.objects.get(pk=result.digest_id)
    Subscriber.objects.filter(pk=ada.pk).update(next_digest_at=timezone.now())  # due again
    page = moderator_client().get(reverse("admin:subscriptions_subscriber_preview", args=[ada.pk]))
    preview = page.context["preview"]
    assert preview.period != sent.period and preview.at > timezone.now()
    assert preview.status in ("pending", "empty")  # planned afresh, not "sent"
    assert Digest.objects.filter(subscriber=ada).count() == 1  # nothing kept
