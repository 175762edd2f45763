"""Who reaches the admin and what each role may do there; throttled logins."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from digest.models import Paper, Source
from digest.roles import MODERATORS, ensure_moderators_group
from subscriptions.models import Subscriber

from .conftest import make_subscriber

PASSWORD = "correct horse battery staple"


def make_moderator(username: str = "mona") -> User:
    """A staff user in the Moderators group (the group is created or updated first)."""
    group = ensure_moderators_group()
    user = User.objects.create_user(username, f"{username}@example.org", PASSWORD, is_staff=True)
    user.groups.add(group)
    return user


def moderator_client(username: str = "mona") -> Client:
    client = Client()
    client.force_login(make_moderator(username))
    return client


def available_actions(changelist_page) -> set[str]:  # type: ignore[no-untyped-def]
    """The action names a changelist page offers (none: no action form at all)."""
    form = changelist_page.context["action_form"]
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


def action(client: Client, url: str, name: str, ids: list[int], **extra: str):  # type: ignore[no-untyped-def]
    return client.post(url, {"action": name, "_selected_action": [str(i) for i in ids], **extra})


@pytest.fixture(autouse=True)
def _empty_cache(settings) -> None:  # type: ignore[no-untyped-def]
    # Lockouts expire with their cache entries; the tests move the clock, which a Redis
    # server's expiry does not follow: count in this process's memory.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()


@pytest.mark.django_db
def test_the_moderators_group_gets_exactly_its_permissions_and_can_be_rerun() -> None:
    ensure_moderators_group()
    group = ensure_moderators_group()
    assert Group.objects.filter(name=MODERATORS).count() == 1
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert {"change_paper", "add_topic", "change_topic", "add_blockedterm"} <= codenames
    assert "view_subscriber" in codenames
    assert not codenames & {
        "change_subscriber",
        "delete_subscriber",
        "add_subscriber",
        "change_source",
        "add_source",
        "delete_source",
        "delete_paper",
    }


@pytest.mark.django_db
def test_a_moderator_sees_subscribers_but_cannot_change_delete_or_export_them() -> None:
    client = moderator_client()
    ada = make_subscriber("ada@example.org", ["mamba"])
    url = reverse("admin:subscriptions_subscriber_changelist")

    page = client.get(url)
    assert page.status_code == 200
    assert "ada@example.org" in page.content.decode()
    actions = available_actions(page)
    assert "export_addresses" not in actions
    assert "delete_selected" not in actions
    assert "suspend" not in actions and "resend_latest_digest" not in actions

    # A forged action post does not export anything.
    forged = action(client, url, "export_addresses", [ada.pk])
    assert forged["Content-Type"].startswith("text/html")
    assert b"ada@example.org," not in forged.content

    assert (
        client.get(reverse("admin:subscriptions_subscriber_delete", args=[ada.pk])).status_code
        == 403
    )
    change = reverse("admin:subscriptions_subscriber_change", args=[ada.pk])
    assert client.get(change).status_code == 200  # read-only view
    assert client.post(change, {"email": "eve@example.org"}).status_code == 403
    ada.refresh_from_db()
    assert ada.email == "ada@example.org"


@pytest.mark.django_db
def test_a_superuser_exports_addresses_as_csv(admin_client: Client) -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    grace = make_subscriber("grace@example.org", ["diffusion"], confirmed_at=None)
    response = action(
        admin_client,
        reverse("admin:subscriptions_subscriber_changelist"),
        "export_addresses",
        [ada.pk, grace.pk],
    )
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    lines = response.content.decode().splitlines()
    assert lines[0] == "email,state,frequency,timezone,created_at"
    assert [line.split(",")[:2] for line in lines[1:]] == [
        ["ada@example.org", "active"],
        ["grace@example.org", "unconfirmed"],
    ]


@pytest.mark.django_db
def test_a_moderator_cannot_change_or_add_sources() -> None:
    client = moderator_client()
    source = Source.objects.create(name="Daily", url="https://huggingface.co/papers")
    change = reverse("admin:digest_source_change", args=[source.pk])
    assert client.get(change).status_code == 200
    assert (
        client.post(change, {"name": "Renamed", "url": "https://example.org/"}).status_code == 403
    )
    assert client.get(reverse("admin:digest_source_add")).status_code == 403
    source.refresh_from_db()
    assert source.name == "Daily"
    assert client.get(reverse("admin:digest_source_changelist")).status_code == 200


@pytest.mark.django_db
def test_a_moderator_moderates_papers_but_cannot_delete_them() -> None:
    client = moderator_client()
    paper = Paper.objects.create(title="A paper", title_key="a paper", abstract="x")
    page = client.get(reverse("admin:digest_paper_changelist"))
    actions = available_actions(page)
    assert {"hide_papers", "pin_papers", "merge_two_papers"} <= set(actions)
    assert "delete_selected" not in actions
    assert client.get(reverse("admin:digest_paper_delete", args=[paper.pk])).status_code == 403
    assert client.get(reverse("admin:digest_topic_add")).status_code == 200
    assert client.get(reverse("admin:digest_blockedterm_add")).status_code == 200
    assert client.get(reverse("admin:dashboard")).status_code == 200


@pytest.mark.django_db
def test_only_staff_reach_the_admin() -> None:
    User.objects.create_user("sam", "sam@example.org", PASSWORD)  # not staff
    client = Client()
    assert client.login(username="sam", password=PASSWORD)
    for name in ("admin:index", "admin:dashboard", "admin:digest_paper_changelist"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    # The admin's own login form refuses a non-staff account too.
    page = Client().post(reverse("admin:login"), {"username": "sam", "password": PASSWORD})
    assert page.status_code == 200
    assert "_auth_user_id" not in page.client.session


def _login(client: Client, username: str, password: str):  # type: ignore[no-untyped-def]
    return client.post(
        reverse("admin:login") + "?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR="203.0.113.7",
    )


@pytest.mark.django_db
def test_five_failed_logins_lock_the_account_out_from_that_address_for_15_minutes() -> None:
    make_moderator("mona")
    client = Client()
    for _ in range(5):
        failed = _login(client, "mona", "wrong")
        assert failed.status_code == 200
        assert "Please enter the correct username and password" in failed.content.decode()

    locked = _login(client, "mona", PASSWORD)
    assert locked.status_code == 200
    assert "Too many failed logins. Try again in 15 minutes." in locked.content.decode()
    assert "_auth_user_id" not in client.session

    # Another address is not locked out.
    other = Client().post(
        reverse("admin:login"),
        {"username": "mona", "password": PASSWORD},
        REMOTE_ADDR="198.51.100.2",
    )
    assert other.status_code == 302

    with time_machine.travel(timezone.now() + timedelta(minutes=14), tick=False):
        assert "Too many failed logins" in _login(Client(), "mona", PASSWORD).content.decode()
    with time_machine.travel(timezone.now() + timedelta(minutes=30), tick=False):
        assert _login(Client(), "mona", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_a_successful_login_forgets_earlier_failures() -> None:
    make_moderator("mona")
    for _ in range(4):
        _login(Client(), "mona", "wrong")
    assert _login(Client(), "mona", PASSWORD).status_code == 302
    for _ in range(4):
        _login(Client(), "mona", "wrong")
    assert _login(Client(), "mona", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_a_moderator_cannot_preview_a_subscriber_without_view_permission() -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    client = moderator_client()
    group = Group.objects.get(name=MODERATORS)
    group.permissions.remove(*group.permissions.filter(codename="view_subscriber"))
    url = reverse("admin:subscriptions_subscriber_preview", args=[ada.pk])
    assert client.get(url).status_code == 403
    assert Subscriber.objects.count() == 1


@pytest.mark.django_db
def test_a_moderator_cannot_fetch_sources_now(django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    client = moderator_client()
    source = Source.objects.create(name="Daily", url="http://127.0.0.1:9/papers")
    url = reverse("admin:digest_source_changelist")
    assert "fetch_now" not in available_actions(client.get(url))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = action(client, url, "fetch_now", [source.pk])
    assert response.status_code == 200  # "No action selected": the forged action is refused
    assert callbacks == []


@pytest.mark.django_db
def test_the_filter_admin_applies_the_public_rules_and_never_moves_a_filter() -> None:
    from digest.matching.query import MAX_FILTERS
    from digest.models import BlockedTerm
    from subscriptions.models import Filter

    client = moderator_client()
    ada = make_subscriber("ada@example.org", ["mamba"])
    eve = make_subscriber("eve@example.org", ["diffusion"])
    BlockedTerm.objects.create(term="casino")
    item = ada.filters.get()
    change = reverse("admin:subscriptions_filter_change", args=[item.pk])

    for query, error in [
        ('vision "transformer', "unclosed quote (character 8)"),
        ("casino bonus", "is not allowed in filters here"),
        ("x" * 301, "at most 300 characters"),
    ]:
        response = client.post(change, {"query": query, "subscriber": str(eve.pk)})
        assert response.status_code == 200, query
        assert error in response.content.decode(), query
    item.refresh_from_db()
    assert (item.query, item.subscriber_id) == ("mamba", ada.pk)

    # A valid change keeps the filter with its subscriber, whatever the post says.
    response = client.post(change, {"query": "state space", "subscriber": str(eve.pk)})
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.query, item.subscriber_id) == ("state space", ada.pk)

    # Adding (superusers only): the subscriber's filter limit and duplicates hold too.
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.org", PASSWORD))
    Filter.objects.bulk_create(
        Filter(subscriber=eve, query=f"word{n}") for n in range(MAX_FILTERS - 1)
    )
    add = reverse("admin:subscriptions_filter_add")
    response = client.post(add, {"query": "one more", "subscriber": str(eve.pk)})
    assert f"you already have {MAX_FILTERS} filters" in response.content.decode()
    response = client.post(add, {"query": "Mamba", "subscriber": str(ada.pk)})
    assert response.status_code == 302
    response = client.post(add, {"query": "mambas", "subscriber": str(ada.pk)})
    assert "same as filter" in response.content.decode()
    assert eve.filters.count() == MAX_FILTERS


# --- Client addresses behind proxies and lockouts across addresses ----------------------


def _login_from(address: str, username: str, password: str, **meta: str):  # type: ignore[no-untyped-def]
    return Client().post(
        reverse("admin:login"),
        {"username": username, "password": password},
        REMOTE_ADDR=address,
        **meta,
    )


@pytest.mark.django_db
def test_forty_guesses_from_ten_addresses_lock_the_account() -> None:
    make_moderator("mona")
    for guess in range(40):
        _login_from(f"198.51.100.{guess % 10 + 1}", "mona", f"guess-{guess}")
    # Each address tried only 4 times, under the per-pair limit; the username is locked.
    locked = _login_from("198.51.100.99", "mona", PASSWORD)
    assert locked.status_code == 200
    assert "Too many failed logins" in locked.content.decode()


@pytest.mark.django_db
def test_one_address_guessing_many_usernames_is_locked() -> None:
    make_moderator("mona")
    for guess in range(40):
        _login_from("198.51.100.7", f"user{guess % 10}", "wrong")
    assert (
        "Too many failed logins" in _login_from("198.51.100.7", "mona", PASSWORD).content.decode()
    )
    assert _login_from("198.51.100.8", "mona", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_a_forged_forwarded_for_entry_does_not_change_the_client(settings) -> None:  # type: ignore[no-untyped-def]
    from django.test import RequestFactory

    from subscriptions.throttle import client_ip

    def ip(**meta: str) -> str:
        return client_ip(RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", **meta))

    # No proxy: the header is the client's own writing and is ignored.
    assert ip(HTTP_X_FORWARDED_FOR="6.6.6.6") == "10.0.0.2"
    # One proxy appends the address it was reached from: that entry, never one the
    # client wrote before it.
    settings.TRUSTED_PROXY_COUNT = 1
    assert ip(HTTP_X_FORWARDED_FOR="203.0.113.7") == "203.0.113.7"
    assert ip(HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7") == "203.0.113.7"
    assert ip(HTTP_X_FORWARDED_FOR="1.1.1.1, 2.2.2.2, 203.0.113.7") == "203.0.113.7"
    # Two proxies (a CDN, then ours): the second entry from the right.
    settings.TRUSTED_PROXY_COUNT = 2
    assert ip(HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7, 192.0.2.50") == "203.0.113.7"
    assert ip(HTTP_X_FORWARDED_FOR="2001:db8::1, 192.0.2.50") == "2001:db8::/64"


@pytest.mark.django_db
def test_rotating_forged_addresses_behind_a_proxy_does_not_escape_the_lockout(settings) -> None:  # type: ignore[no-untyped-def]
    settings.TRUSTED_PROXY_COUNT = 1
    make_moderator("mona")
    for guess in range(5):
        _login_from("10.0.0.2", "mona", "wrong", HTTP_X_FORWARDED_FOR=f"6.6.6.{guess}, 203.0.113.7")
    locked = _login_from("10.0.0.2", "mona", PASSWORD, HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.7")
    assert "Too many failed logins" in locked.content.decode()
