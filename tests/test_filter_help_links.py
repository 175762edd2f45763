"""Every email that talks about filters links to the filter language's help page."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client

from digest.delivery.pipeline import deliver

from .conftest import make_subscriber
from .test_signup import add_paper, read_eml, sent, signup_data

HELP = "https://papers.example.org/help/filters/"


@pytest.fixture(autouse=True)
def _empty_throttles() -> None:
    cache.clear()


def assert_links_help(message) -> None:  # type: ignore[no-untyped-def]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert HELP in text
    assert f'<a href="{HELP}"' in html and "ow filters work</a>" in html


@pytest.mark.django_db
def test_the_confirmation_email_links_to_the_filter_help(client: Client, outbox: Path) -> None:
    client.post("/", signup_data())
    [message] = sent(outbox, "confirm")
    assert_links_help(message)
    # The page it links to exists.
    assert client.get("/help/filters/").status_code == 200


@pytest.mark.django_db
def test_digests_and_notes_link_to_the_filter_help(settings, outbox: Path) -> None:  # type: ignore[no-untyped-def]
    settings.DIGEST_SEND_EMPTY = True
    add_paper("Diffusion", "diffusion", 3)
    ada = make_subscriber("ada@example.org", ["diffusion"])
    bo = make_subscriber("bo@example.org", ["nothing-matches"])
    results = {r.email: r for r in deliver([ada.pk, bo.pk])}
    for result in results.values():
        assert result.status == "sent"
        assert_links_help(read_eml(outbox / f"digest-{result.digest_id}.eml"))
