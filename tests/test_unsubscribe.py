"""One-click unsubscribe (RFC 8058) and its confirmation page."""

from __future__ import annotations

import pytest
from django.test import Client

from subscriptions.models import Subscriber
from subscriptions.tokens import UNSUBSCRIBE, make_token, unsubscribe_url

from .conftest import make_subscriber


def path_of(url: str) -> str:
    return url.removeprefix("https://papers.example.org")


@pytest.mark.django_db
def test_a_get_shows_a_button_and_changes_nothing(client: Client) -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    response = client.get(path_of(unsubscribe_url(ada.uuid)))
    assert response.status_code == 200
    assert b'<form method="post">' in response.content
    ada.refresh_from_db()
    assert ada.unsubscribed_at is None


@pytest.mark.django_db
def test_the_one_click_post_unsubscribes_without_cookie_or_csrf() -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        path_of(unsubscribe_url(ada.uuid)),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200  # no redirect
    ada.refresh_from_db()
    assert ada.state == "unsubscribed"
    # A second POST is harmless.
    again = client.post(
        path_of(unsubscribe_url(ada.uuid)),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert again.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # tampered signature
        lambda t: "not-a-token",
    ],
)
def test_a_tampered_token_gets_a_400_page(client: Client, mangle) -> None:  # type: ignore[no-untyped-def]
    ada = make_subscriber("ada@example.org", ["mamba"])
    token = make_token(ada.uuid, UNSUBSCRIBE)
    response = client.post(f"/unsubscribe/{mangle(token)}/")
    assert response.status_code == 400
    assert b"This link is not valid" in response.content
    assert Subscriber.objects.get(pk=ada.pk).unsubscribed_at is None


@pytest.mark.django_db
def test_a_token_made_for_another_purpose_is_refused(client: Client) -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    token = make_token(ada.uuid, "subscriptions.confirm")
    assert client.post(f"/unsubscribe/{token}/").status_code == 400
    assert Subscriber.objects.get(pk=ada.pk).unsubscribed_at is None


@pytest.mark.django_db
def test_an_already_unsubscribed_link_says_so_and_undoes_in_one_click() -> None:
    ada = make_subscriber("ada@example.org", ["mamba"])
    path = path_of(unsubscribe_url(ada.uuid))
    client = Client(enforce_csrf_checks=True)
    client.post(
        path, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    page = client.get(path)
    assert b"You are already unsubscribed" in page.content and b'name="undo"' in page.content
    back = client.post(path, {"undo": "1"})
    assert back.status_code == 200 and b"Welcome back" in back.content
    ada.refresh_from_db()
    assert ada.state == "active" and ada.next_digest_at is not None
    assert list(ada.filters.values_list("query", flat=True)) == ["mamba"]


@pytest.mark.django_db
def test_undo_does_not_lift_a_suppression(client: Client) -> None:
    from django.utils import timezone

    ada = make_subscriber("ada@example.org", ["mamba"], suppressed_at=timezone.now())
    page = client.post(path_of(unsubscribe_url(ada.uuid)), {"undo": "1"})
    assert b"Nothing changed" in page.content
    ada.refresh_from_db()
    assert ada.state == "suppressed"
