"""The landing page, double opt-in signup, confirmation links and "email me my link"."""

from __future__ import annotations

import email
import re
from datetime import timedelta
from email import policy
from pathlib import Path

import pytest
import time_machine
from django.core.cache import cache
from django.core.mail import BadHeaderError
from django.test import Client
from django.utils import timezone

from digest.delivery.compose import make_email
from digest.delivery.pipeline import deliver
from digest.ingest.parsers import normalise_title
from digest.models import Paper, Topic
from subscriptions.models import Subscriber
from subscriptions.tokens import UNSUBSCRIBE, confirm_url, make_token

from .conftest import TEST_BROKER_URL, make_subscriber

SITE = "https://papers.example.org"


# --- helpers shared by the web tests ---------------------------------------------------


def read_eml(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[return-value]


def sent(outbox: Path, kind: str | None = None) -> list[email.message.EmailMessage]:
    """Messages in the outbox (optionally of one ``X-Email-Kind``), oldest first."""
    if not outbox.exists():
        return []
    messages = [read_eml(p) for p in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime)]
    return [m for m in messages if kind is None or m["X-Email-Kind"] == kind]


def link_in(message: email.message.EmailMessage, path_prefix: str) -> str:
    """The one absolute link to ``path_prefix`` in the text part; asserts it is in the
    HTML part too."""
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    links = set(re.findall(re.escape(SITE + path_prefix) + r"[^\s\"<>]+", text))
    assert len(links) == 1, links
    [link] = links
    assert f'href="{link}"' in html
    return link


def path_of(url: str) -> str:
    assert url.startswith(SITE), url
    return url.removeprefix(SITE)


def add_paper(title: str, abstract: str = "", upvotes: int = 0, **fields: object) -> Paper:
    return Paper.objects.create(
        title=title, title_key=normalise_title(title), abstract=abstract, upvotes=upvotes, **fields
    )


def signup_data(email: str = "ada@example.org", **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "email": email,
        "filters": "diffusion\n\n  vision transformer  \n",
        "frequency": "weekly",
        "timezone": "Europe/Paris",
    }
    data.update(overrides)
    return data


@pytest.fixture(autouse=True)
def _empty_throttles() -> None:
    cache.clear()


# --- the landing page ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_home_page_shows_the_form_topics_and_an_escaped_sample_digest(client: Client) -> None:
    add_paper("<script>alert(1)</script> Diffusion & friends", "An <img src=x> abstract.", 50)
    Topic.objects.create(name="Robotics <b>", slug="robotics", query="robot", description="Arms")
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="csrfmiddlewaretoken"' in html
    for name in ("email", "filters", "frequency", "timezone", "topics"):
        assert f'name="{name}"' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Diffusion &amp; friends" in html
    assert "<script>alert" not in html and "<img src=x>" not in html
    assert "Robotics &lt;b&gt;" in html
    # Only our own script file, loaded by URL, never inline.
    assert re.findall(r"<script[^>]*>", html) == [
        '<script src="/static/subscriptions/site.js" defer>'
    ]
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy


@pytest.mark.django_db
def test_the_page_loads_its_css_and_js_from_static_files(client: Client) -> None:
    from django.contrib.staticfiles import finders

    assert finders.find("subscriptions/site.css")
    assert finders.find("subscriptions/site.js")


# --- signing up ------------------------------------------------------------------------


@pytest.mark.django_db
@time_machine.travel(timezone.now(), tick=False)  # the link below is made again, same second
def test_signing_up_stores_the_choices_and_sends_only_a_confirmation(
    client: Client, outbox: Path
) -> None:
    topic = Topic.objects.create(name="Robotics", slug="robotics", query="robot")
    response = client.post("/", signup_data(topics=[topic.pk]))
    assert response.status_code == 302 and response["Location"] == "/check-your-inbox/"
    ada = Subscriber.objects.get(email="ada@example.org")
    assert ada.state == "unconfirmed" and ada.next_digest_at is None
    assert [f.query for f in ada.filters.all()] == ["diffusion", "vision transformer"]
    assert list(ada.topics.all()) == [topic]
    assert (ada.frequency, ada.timezone) == ("weekly", "Europe/Paris")

    [message] = sent(outbox)
    assert message["X-Email-Kind"] == "confirm"
    assert message["To"] == "ada@example.org"
    assert message["Subject"] == "Confirm your subscription to Trending papers"
    link = link_in(message, "/confirm/")
    assert link == confirm_url(ada.uuid)
    assert "works once, for 3 days" in message.get_body(("plain",)).get_content()
    assert client.get("/check-your-inbox/").status_code == 200


@pytest.mark.django_db
def test_an_unconfirmed_address_gets_no_digest(client: Client, outbox: Path) -> None:
    add_paper("Diffusion everywhere", "diffusion", 3)
    client.post("/", signup_data())
    ada = Subscriber.objects.get(email="ada@example.org")
    [result] = deliver([ada.pk], force=True)
    assert result.status == "skipped"
    assert [m["X-Email-Kind"] for m in sent(outbox)] == ["confirm"]


@pytest.mark.django_db
def test_the_answer_is_the_same_whether_or_not_the_address_is_known(
    client: Client, outbox: Path
) -> None:
    grace = make_subscriber("grace@example.org", ["mamba"])
    make_subscriber("bounced@example.org", ["mamba"], suppressed_at=timezone.now())
    eve = make_subscriber("eve@example.org", ["mamba"])
    eve.suspend()
    answers = []
    for address in (
        "new@example.org",
        "Grace@Example.org",
        "bounced@example.org",
        "eve@example.org",
    ):
        response = client.post("/", signup_data(address), follow=True)
        answers.append((response.status_code, response.redirect_chain, response.content))
    assert answers[0] == answers[1] == answers[2] == answers[3]
    # The subscribed address got its manage link instead, and nothing of it changed; a
    # bounced address may opt in again; a suspended one gets nothing.
    kinds = {(m["To"], m["X-Email-Kind"]) for m in sent(outbox)}
    assert kinds == {
        ("new@example.org", "confirm"),
        ("grace@example.org", "manage-link"),
        ("bounced@example.org", "confirm"),
    }
    assert [f.query for f in grace.filters.all()] == ["mamba"]
    assert Subscriber.objects.get(pk=grace.pk).frequency == "daily"


@pytest.mark.django_db
def test_signing_up_again_while_unconfirmed_replaces_the_choices(
    client: Client, outbox: Path
) -> None:
    client.post("/", signup_data(filters="mamba"))
    client.post("/", signup_data(filters="segmentation", frequency="daily"))
    ada = Subscriber.objects.get(email="ada@example.org")
    assert [f.query for f in ada.filters.all()] == ["segmentation"]
    assert ada.frequency == "daily"
    assert len(sent(outbox, "confirm")) == 2


@pytest.mark.django_db
def test_an_unsubscribed_address_signs_up_again_through_a_new_opt_in(
    client: Client, outbox: Path
) -> None:
    ada = make_subscriber(
        "ada@example.org", ["mamba"], unsubscribed_at=timezone.now(), frequency="daily"
    )
    client.post("/", signup_data(filters="segmentation", frequency="weekly"))
    ada.refresh_from_db()
    # Until the address confirms, a stranger's signup changes nothing of what ada kept.
    assert ada.state == "unsubscribed"
    assert [f.query for f in ada.filters.all()] == ["mamba"]
    assert ada.frequency == "daily"
    [message] = sent(outbox, "confirm")
    client.post(path_of(link_in(message, "/confirm/")))
    ada.refresh_from_db()
    assert ada.state == "active" and ada.next_digest_at is not None
    assert [f.query for f in ada.filters.all()] == ["segmentation"]
    assert ada.frequency == "weekly" and ada.pending_signup is None


@pytest.mark.django_db
def test_a_bounced_address_is_lifted_only_by_its_own_confirmation(
    client: Client, outbox: Path
) -> None:
    ada = make_subscriber(
        "ada@example.org",
        ["mamba"],
        suppressed_at=timezone.now(),
        suppressed_reason="spam complaint (Postmark)",
    )
    client.post("/", signup_data(filters="segmentation"))
    ada.refresh_from_db()
    assert ada.state == "suppressed" and [f.query for f in ada.filters.all()] == ["mamba"]
    [message] = sent(outbox, "confirm")
    client.post(path_of(link_in(message, "/confirm/")))
    ada.refresh_from_db()
    assert ada.state == "active" and ada.suppressed_reason == ""
    assert [f.query for f in ada.filters.all()] == ["segmentation"]


@pytest.mark.django_db
def test_a_suspended_address_cannot_lift_its_suspension_by_signing_up(
    client: Client, outbox: Path
) -> None:
    eve = make_subscriber("eve@example.org", ["mamba"])
    eve.suspend("abuse")
    client.post("/", signup_data("eve@example.org"))
    assert sent(outbox) == []
    # Even a confirmation link made for the address leaves the suspension alone.
    client.post(path_of(confirm_url(eve.uuid)))
    eve.refresh_from_db()
    assert eve.state == "suppressed" and eve.suppressed_reason.startswith("suspended")


@pytest.mark.django_db
def test_an_invalid_filter_is_shown_with_its_position(client: Client, outbox: Path) -> None:
    response = client.post("/", signup_data(filters='diffusion\nvision "transformer'))
    assert response.status_code == 400
    html = response.content.decode()
    assert "Unclosed quote" in html and "in filter 2, at character 8" in html
    assert "<mark>&quot;</mark>transformer" in html
    assert not Subscriber.objects.exists() and sent(outbox) == []


@pytest.mark.django_db
def test_a_duplicate_filter_is_refused(client: Client) -> None:
    response = client.post("/", signup_data(filters="Transformers\ntransformer"))
    assert response.status_code == 400
    assert "Same as filter 1" in response.content.decode()


@pytest.mark.django_db
def test_signup_needs_a_filter_or_a_topic(client: Client) -> None:
    response = client.post("/", signup_data(filters=""))
    assert response.status_code == 400
    assert "Write at least one filter or pick a topic." in response.content.decode()
    topic = Topic.objects.create(name="Robotics", slug="robotics", query="robot")
    assert client.post("/", signup_data(filters="", topics=[topic.pk])).status_code == 302


@pytest.mark.django_db
def test_an_unknown_timezone_is_refused(client: Client) -> None:
    response = client.post("/", signup_data(timezone="Mars/Olympus_Mons"))
    assert response.status_code == 400
    assert "Use an IANA timezone name" in response.content.decode()
    assert not Subscriber.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "address",
    ["ada@example.org\nBcc: eve@example.org", "ada@example.org\r\nBcc: eve@example.org", "ada"],
)
def test_an_address_that_could_inject_headers_is_refused(
    client: Client, outbox: Path, address: str
) -> None:
    response = client.post("/", signup_data(address))
    assert response.status_code == 400
    assert "Enter a valid email address." in response.content.decode()
    assert not Subscriber.objects.exists() and sent(outbox) == []


def test_the_mail_api_refuses_newlines_in_an_address() -> None:
    message = make_email(
        "confirm",
        {"email": "x", "confirm_url": "https://x/", "days": 3},
        "ada@example.org\nBcc: eve@example.org",
    )
    with pytest.raises(BadHeaderError):
        message.message()


@pytest.mark.django_db
def test_posting_without_a_csrf_token_is_forbidden() -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.post("/", signup_data()).status_code == 403
    assert client.post("/link/", {"email": "ada@example.org"}).status_code == 403
    assert not Subscriber.objects.exists()


# --- confirmation links ----------------------------------------------------------------


def signed_up(client: Client, outbox: Path, address: str = "ada@example.org") -> str:
    """Sign up through the form; the confirmation link's path."""
    assert client.post("/", signup_data(address)).status_code == 302
    return path_of(link_in(sent(outbox, "confirm")[-1], "/confirm/"))


@pytest.mark.django_db
def test_a_get_of_the_confirmation_link_only_shows_a_button(client: Client, outbox: Path) -> None:
    path = signed_up(client, outbox)
    response = client.get(path)
    assert response.status_code == 200
    assert b'<form method="post"' in response.content and b"Yes, confirm" in response.content
    assert Subscriber.objects.get().state == "unconfirmed"


@pytest.mark.django_db
def test_confirming_schedules_digests_and_opens_the_settings_page(
    client: Client, outbox: Path
) -> None:
    path = signed_up(client, outbox)
    response = client.post(path)
    assert response.status_code == 302 and response["Location"] == "/manage/"
    ada = Subscriber.objects.get()
    assert ada.state == "active"
    assert ada.next_digest_at == ada.compute_next_digest_at(ada.confirmed_at)
    page = client.get("/manage/")
    assert page.status_code == 200 and b"ada@example.org" in page.content
    assert b"Your address is confirmed" in page.content


@pytest.mark.django_db
def test_a_confirmation_link_works_once(client: Client, outbox: Path) -> None:
    path = signed_up(client, outbox)
    assert client.post(path).status_code == 302
    other = Client()
    for response in (other.get(path), other.post(path)):
        assert response.status_code == 400
        assert b"it was already used" in response.content
    # The second browser was not signed in.
    assert other.get("/manage/")["Location"] == "/link/"


@pytest.mark.django_db
def test_an_expired_confirmation_link_is_refused(client: Client, outbox: Path) -> None:
    path = signed_up(client, outbox)
    with time_machine.travel(timezone.now() + timedelta(days=3, minutes=1)):
        response = client.post(path)
    assert response.status_code == 400 and b"it has expired" in response.content
    assert Subscriber.objects.get().state == "unconfirmed"


@pytest.mark.django_db
def test_a_tampered_or_foreign_confirmation_link_is_refused(client: Client, outbox: Path) -> None:
    path = signed_up(client, outbox)
    token = path.split("/")[2]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    ada = Subscriber.objects.get()
    foreign = make_token(ada.uuid, UNSUBSCRIBE)
    for bad in (tampered, foreign, "nonsense"):
        response = client.post(f"/confirm/{bad}/")
        assert response.status_code == 400 and b"This link is not valid" in response.content
    assert Subscriber.objects.get().state == "unconfirmed"


# --- "email me my link" ----------------------------------------------------------------


@pytest.mark.django_db
def test_asking_for_a_link_answers_the_same_for_any_address(client: Client, outbox: Path) -> None:
    make_subscriber("grace@example.org", ["mamba"])
    Subscriber.objects.create(email="pending@example.org")
    answers = []
    for address in ("grace@example.org", "nobody@example.org", "pending@example.org"):
        response = client.post("/link/", {"email": address}, follow=True)
        answers.append((response.status_code, response.redirect_chain, response.content))
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][1] == [("/link/sent/", 302)]
    kinds = sorted((m["To"], m["X-Email-Kind"]) for m in sent(outbox))
    assert kinds == [("grace@example.org", "manage-link"), ("pending@example.org", "confirm")]
    [message] = sent(outbox, "manage-link")
    assert link_in(message, "/manage/link/")


@pytest.mark.django_db
def test_the_link_form_shows_errors_inline(client: Client) -> None:
    assert client.get("/link/").status_code == 200
    response = client.post("/link/", {"email": "not an address"})
    assert response.status_code == 400
    assert b"Enter a valid email address." in response.content


# --- throttling ------------------------------------------------------------------------


@pytest.mark.django_db
def test_signups_from_one_ip_are_throttled(client: Client, settings, outbox: Path) -> None:  # type: ignore[no-untyped-def]
    settings.THROTTLES = {**settings.THROTTLES, "signup-ip": (2, 3600)}
    for n in range(2):
        assert client.post("/", signup_data(f"p{n}@example.org")).status_code == 302
    response = client.post("/", signup_data("p3@example.org"))
    assert response.status_code == 429 and b"Too many requests" in response.content
    assert not Subscriber.objects.filter(email="p3@example.org").exists()
    # Another client address is not affected.
    other = client.post("/", signup_data("p4@example.org"), REMOTE_ADDR="192.0.2.7")
    assert other.status_code == 302


@pytest.mark.django_db
def test_one_address_gets_no_more_than_the_limit_of_emails(
    client: Client, settings, outbox: Path
) -> None:  # type: ignore[no-untyped-def]
    settings.THROTTLES = {**settings.THROTTLES, "signup-address": (2, 3600)}
    for n in range(4):  # from different IPs, so only the per-address limit applies
        response = client.post("/", signup_data(), REMOTE_ADDR=f"192.0.2.{n + 1}")
        assert response.status_code == 302  # the same answer, quietly
    assert len(sent(outbox, "confirm")) == 2


@pytest.mark.django_db
def test_link_requests_are_throttled_per_ip_and_per_address(
    client: Client, settings, outbox: Path
) -> None:  # type: ignore[no-untyped-def]
    make_subscriber("grace@example.org", ["mamba"])
    settings.THROTTLES = {**settings.THROTTLES, "link-ip": (3, 3600), "link-address": (1, 3600)}
    for _ in range(3):
        assert client.post("/link/", {"email": "grace@example.org"}).status_code == 302
    assert client.post("/link/", {"email": "grace@example.org"}).status_code == 429
    assert len(sent(outbox, "manage-link")) == 1


@pytest.mark.django_db
def test_ipv6_clients_are_counted_per_64_network(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.THROTTLES = {**settings.THROTTLES, "link-ip": (1, 3600)}
    first = client.post("/link/", {"email": "a@example.org"}, REMOTE_ADDR="2001:db8:1:2::1")
    second = client.post("/link/", {"email": "b@example.org"}, REMOTE_ADDR="2001:db8:1:2::ff")
    assert (first.status_code, second.status_code) == (302, 429)


@pytest.mark.django_db
def test_throttles_count_in_redis_across_clients(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": TEST_BROKER_URL,
            "KEY_PREFIX": "test-web-throttle",
        }
    }
    settings.THROTTLES = {**settings.THROTTLES, "signup-ip": (2, 3600)}
    cache.clear()
    try:
        # Two clients (two web processes, as far as the cache can tell) share the count.
        assert Client().post("/", signup_data("a@example.org")).status_code == 302
        assert Client().post("/", signup_data("b@example.org")).status_code == 302
        assert Client().post("/", signup_data("c@example.org")).status_code == 429
        import redis

        keys = redis.Redis.from_url(TEST_BROKER_URL).keys("test-web-throttle:*throttle:signup-ip:*")
        assert len(keys) == 1 and b"127.0.0.1" not in keys[0]  # hashed, not in clear
    finally:
        cache.clear()


@pytest.mark.django_db
def test_a_filter_with_a_blocked_term_is_refused_at_signup(client) -> None:  # type: ignore[no-untyped-def]
    from digest.models import BlockedTerm
    from subscriptions.forms import SignupForm

    BlockedTerm.objects.create(term="crypto scam")
    form = SignupForm(
        data={
            "email": "ada@example.org",
            "filters": "diffusion\nCrypto-Scams OR mamba",
            "frequency": "daily",
            "timezone": "UTC",
        }
    )
    assert not form.is_valid()
    assert form.errors["filters"] == [
        "“crypto scam” is not allowed in filters here (filter 2, character 1)"
    ]


@pytest.mark.django_db
def test_a_filter_with_a_blocked_term_is_refused_on_the_manage_page() -> None:
    from digest.models import BlockedTerm
    from subscriptions.forms import FilterForm

    BlockedTerm.objects.create(term="casino")
    form = FilterForm(data={"query": "online casinos"})
    assert not form.is_valid()
    assert form.errors["query"] == ["“casino” is not allowed in filters here (character 1)"]
    assert FilterForm(data={"query": "diffusion"}).is_valid()


@pytest.mark.django_db
def test_signup_takes_a_timezone_as_people_type_it_and_offers_the_list(client: Client) -> None:
    page = client.get("/").content.decode()
    assert 'list="iana-timezones"' in page and '<option value="Europe/Berlin">' in page
    response = client.post("/", signup_data(timezone="berlin"))
    assert response.status_code == 302
    assert Subscriber.objects.get(email="ada@example.org").timezone == "Europe/Berlin"


@pytest.mark.django_db
def test_the_filter_language_has_a_help_page_linked_from_signup(client: Client) -> None:
    home = client.get("/").content.decode()
    assert 'href="/help/filters/"' in home
    page = client.get("/help/filters/")
    assert page.status_code == 200
    html = page.content.decode()
    # The rules of docs/query-language.md, as HTML, without its developers' section.
    assert "<table>" in html and "Singular and plural" in html
    assert "For developers" not in html


# --- Timing: the request does the same work whatever the address ---------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "task", "data"),
    [
        ("/", "sign_up", signup_data),
        ("/link/", "email_link", lambda address: {"email": address}),
    ],
    ids=["signup", "email me my link"],
)
def test_known_and_unknown_addresses_run_the_same_queries_and_enqueue_one_task(
    client: Client, monkeypatch: pytest.MonkeyPatch, url: str, task: str, data
) -> None:  # type: ignore[no-untyped-def]
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from subscriptions import tasks

    make_subscriber("grace@example.org", ["mamba"])
    make_subscriber("paused@example.org", ["mamba"], paused_at=timezone.now())
    make_subscriber("bounced@example.org", ["mamba"], suppressed_at=timezone.now())
    enqueued: list[tuple] = []
    monkeypatch.setattr(getattr(tasks, task), "delay", lambda *args: enqueued.append(args))
    work = []
    for address in (
        "grace@example.org",
        "nobody@example.org",
        "paused@example.org",
        "bounced@example.org",
    ):
        with CaptureQueriesContext(connection) as queries:
            response = client.post(url, data(address))
        assert response.status_code == 302
        work.append([q["sql"] for q in queries.captured_queries])
    assert work[0] == work[1] == work[2] == work[3]
    assert not any("subscriptions_subscriber" in sql for sql in work[0])
    assert [args[0] if task == "email_link" else args[0]["email"] for args in enqueued] == [
        "grace@example.org",
        "nobody@example.org",
        "paused@example.org",
        "bounced@example.org",
    ]


# --- Look-alike addresses ---------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("address", ["ırıs@example.org", "iriſ@example.org", "bıll@example.org"])
def test_look_alike_local_parts_are_refused_with_a_clear_error(
    client: Client, outbox: Path, address: str
) -> None:
    make_subscriber("iris@example.org", ["mamba"])
    response = client.post("/", signup_data(address))
    assert response.status_code == 400
    assert (
        "Internationalized characters before the @-sign are not supported"
        in response.content.decode()
    )
    link = client.post("/link/", {"email": address})
    assert link.status_code == 400
    assert Subscriber.objects.count() == 1 and sent(outbox) == []


@pytest.mark.django_db
def test_one_mailbox_is_throttled_whatever_the_spelling(client: Client, outbox: Path) -> None:
    spellings = ["iris@example.org", "IRIS@example.org", "Iris@EXAMPLE.ORG", "iris@Example.org."]
    for address in spellings * 3:
        client.post("/", signup_data(address))
    assert len(sent(outbox)) == 3  # THROTTLE_SIGNUP_PER_ADDRESS
    assert Subscriber.objects.count() == 1


@pytest.mark.django_db
def test_an_internationalised_domain_is_one_mailbox_in_either_spelling(
    client: Client, outbox: Path
) -> None:
    client.post("/", signup_data("bill@exämple.org"))
    client.post("/", signup_data("Bill@xn--exmple-cua.org"))
    bill = Subscriber.objects.get()
    assert bill.email == "bill@xn--exmple-cua.org"
    assert bill.email_key == "bill@xn--exmple-cua.org"
    assert [m["To"] for m in sent(outbox)] == ["bill@xn--exmple-cua.org"] * 2


@pytest.mark.django_db
def test_the_database_keeps_one_row_per_canonical_key() -> None:
    from django.db import IntegrityError, transaction

    make_subscriber("iris@example.org", ["mamba"])
    with pytest.raises(IntegrityError), transaction.atomic():
        # A look-alike stored past the forms (NFKC turns ſ into s) still collides.
        Subscriber.objects.create(email="IRIſ@example.org")
    assert Subscriber.objects.with_address("Iris@Example.ORG").count() == 1
