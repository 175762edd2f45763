"""An AlternativeEmail composes the same message Django's email package would build, and
the SMTP backend sends those bytes."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage as ParsedMessage

import pytest
from django.core.mail import BadHeaderError
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from digest.delivery.compose import AlternativeEmail, make_email
from digest.delivery.pipeline import deliver
from digest.ingest.store import ingest_source
from digest.mail import SmtpEmailBackend, message_bytes
from tests.support.smtp import SmtpSink

from .conftest import PAGE_004, make_subscriber

LINESEPS = ["\r\n", "\n"]


def parse(raw: bytes) -> ParsedMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def summary(raw: bytes) -> dict[str, object]:
    """What a reader of the message sees: decoded headers (folding undone, the multipart
    boundary aside) and each part's type, charset, transfer encoding and content."""
    message = parse(raw)
    assert not message.defects, message.defects
    headers = sorted(
        (name, " ".join(str(value).split()))
        for name, value in message.items()
        if name != "Content-Type"
    )
    parts = [
        (
            part.get_content_type(),
            part.get_content_charset(),
            part["Content-Transfer-Encoding"],
            part.get_content(),
        )
        for part in message.iter_parts()
    ]
    return {"type": message.get_content_type(), "headers": headers, "parts": parts}


def assert_same_message(message: AlternativeEmail, linesep: str) -> bytes:
    composed = message.to_bytes(linesep)
    django = message.message().as_bytes(linesep=linesep)
    assert summary(composed) == summary(django)
    lines = composed.split(linesep.encode())
    assert all(len(line) <= 998 for line in lines)  # RFC 5322 section 2.1.1
    assert not any(b"\r" in line or b"\n" in line for line in lines)  # one kind of line end
    return composed


def email_of(subject: str, text: str, html: str, to: str = "ada@example.org") -> AlternativeEmail:
    message = AlternativeEmail(
        subject=subject,
        body=text,
        to=[to],
        headers={
            "Date": "Sat, 21 Nov 2026 07:00:00 -0000",  # Django's is of its own second
            "Message-ID": "<1.2.3@papers.example.org>",
            "List-Unsubscribe": "<https://papers.example.org/unsubscribe/" + "t" * 90 + "/>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "X-Digest-ID": "42",
        },
    )
    message.attach_alternative(html, "text/html")
    return message


@pytest.mark.django_db
@pytest.mark.parametrize("linesep", LINESEPS)
def test_a_real_digest_composes_to_the_message_django_builds(settings, linesep: str) -> None:  # type: ignore[no-untyped-def]
    ingest_source(str(PAGE_004))
    subscriber = make_subscriber("ada@example.org", ["transformer"])
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from django.core import mail

    [result] = deliver([subscriber.pk])
    assert result.status == "sent"
    sent = list(mail.outbox)  # type: ignore[attr-defined]
    [message] = sent
    assert isinstance(message, AlternativeEmail)
    composed = assert_same_message(message, linesep)
    # Every paper of the digest, its reasons and the personal links come through.
    html = parse(composed).get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert html.count("https://huggingface.co/papers") >= result.papers
    assert message.extra_headers["List-Unsubscribe"][1:-1] in html
    # The list, feedback and auto-submission headers, alike in Django's message.
    ours, djangos = parse(composed), parse(message.message().as_bytes(linesep=linesep))
    assert (
        ours["List-Id"]
        == djangos["List-Id"]
        == '"Trending papers digests" <digests.papers.example.org>'
    )
    assert ours["Feedback-ID"] == djangos["Feedback-ID"] == "digest:papers.example.org"
    assert ours["Auto-Submitted"] == djangos["Auto-Submitted"] == "auto-generated"
    assert ours["Date"] == djangos["Date"] and ours["Date"].endswith(" +0000")


@pytest.mark.django_db
def test_a_confirmation_is_not_list_mail_but_says_its_kind() -> None:
    message = make_email(
        "confirm",
        {"email": "ada@example.org", "confirm_url": "https://x/c/", "days": 3},
        "ada@example.org",
    )
    for linesep in LINESEPS:
        ours = parse(assert_same_message(message, linesep))
        assert ours["List-Id"] is None and ours["Feedback-ID"] == "confirm:papers.example.org"
        assert ours["Auto-Submitted"] == "auto-generated" and ours["Date"].endswith(" +0000")


@pytest.mark.parametrize(
    "subject",
    [
        "10 new papers for you: Mamba",
        "10 new papers for you: D-Former: A U-shaped Dilated Transformer for 3D Medical Segment…",
        "Ünïcödé " * 20,
        "word " * 40,
        "",
    ],
)
def test_subjects_ascii_or_not_short_or_long(subject: str) -> None:
    assert_same_message(email_of(subject, "text\n", "<p>html</p>\n"), "\r\n")


def test_an_international_address_is_encoded_as_django_does() -> None:
    composed = assert_same_message(email_of("Hi", "text", "<p>h</p>", to="ada@exämple.org"), "\n")
    assert b"To: ada@xn--exmple-cua.org" in composed


def test_a_line_longer_than_998_octets_is_left_to_django() -> None:
    message = email_of("Hi", "short\n", "<p>" + "é" * 600 + "</p>\n")
    composed = message.to_bytes("\r\n")
    assert parse(composed).get_body(("html",))["Content-Transfer-Encoding"] == (  # type: ignore[index]
        "quoted-printable"
    )
    assert summary(composed) == summary(message.message().as_bytes(linesep="\r\n"))


def test_a_newline_in_a_header_is_refused_as_django_refuses_it() -> None:
    with pytest.raises(BadHeaderError):
        email_of("Hi\nBcc: victim@example.org", "text", "<p>h</p>").to_bytes()
    message = email_of("Hi", "text", "<p>h</p>")
    message.extra_headers["X-Digest-ID"] = "1\r\nBcc: victim@example.org"
    with pytest.raises(BadHeaderError):
        message.to_bytes()


def test_messages_outside_the_fast_path_are_serialised_by_django() -> None:
    message = email_of("Hi", "text", "<p>h</p>")
    message.attach("notes.txt", "attached", "text/plain")
    assert parse(message.to_bytes()).get_content_type() == "multipart/mixed"
    for name in ("Cc", "Reply-To", "From", "To"):
        message = email_of("Hi", "text", "<p>h</p>")
        message.extra_headers[name] = "other@example.org"
        assert_same_message(message, "\r\n")
    plain = AlternativeEmail(subject="Hi", body="only text", to=["ada@example.org"])
    assert parse(plain.to_bytes()).get_content() == "only text"


lines = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=120,
)
bodies = st.lists(st.one_of(lines, st.sampled_from([".", "..", "From here", "", " "])), max_size=12)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=lines,
    text=bodies,
    html=bodies,
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    linesep=st.sampled_from(LINESEPS),
)
def test_any_subject_and_bodies_compose_to_what_django_builds(
    subject: str, text: list[str], html: list[str], newline: str, linesep: str
) -> None:
    body = newline.join(text) or "x"
    message = email_of(subject, body, newline.join(html) or "<p></p>")
    assert_same_message(message, linesep)


@pytest.mark.django_db
def test_the_smtp_backend_sends_the_composed_bytes(settings) -> None:  # type: ignore[no-untyped-def]
    message = email_of("Your papers…", "text ü\n", "<p>html ü</p>\n")
    with SmtpSink(keep_contents=True) as sink:
        backend = SmtpEmailBackend(host="127.0.0.1", port=sink.port, timeout=5)
        assert backend.send_messages([message]) == 1
    [received] = sink.received
    assert received.message_id == "<1.2.3@papers.example.org>"
    assert received.digest_id == "42" and received.to == ("ada@example.org",)
    [content] = sink.contents
    assert summary(content) == summary(message_bytes(message, "\r\n"))
    assert summary(content) == summary(message.message().as_bytes(linesep="\r\n"))


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    address=st.from_regex(
        r"\A[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,12}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,8}){0,2}"
        r"@[A-Za-z0-9]([A-Za-z0-9-]{0,8}[A-Za-z0-9])?(\.[A-Za-z0-9]{1,8}){1,3}\Z"
    )
)
def test_plain_addresses_skip_sanitize_address_because_it_returns_them_unchanged(
    address: str,
) -> None:
    from django.core.mail.message import sanitize_address

    from digest.mail import _PLAIN_ADDRESS, _sanitize

    assert _PLAIN_ADDRESS.fullmatch(address)
    assert _sanitize(address, "utf-8") == sanitize_address(address, "utf-8") == address


@pytest.mark.parametrize(
    "address",
    [
        "Ada Lovelace <ada@example.org>",
        "ada@exämple.org",
        '"odd..local"@example.org',
        "a..b@example.org",
        "ünï@example.org",
        "ada@localhost",
    ],
)
def test_other_addresses_go_through_sanitize_address(address: str) -> None:
    from django.core.mail.message import sanitize_address

    from digest.mail import _sanitize

    assert _sanitize(address, "utf-8") == sanitize_address(address, "utf-8")


@pytest.mark.parametrize(
    "separator", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
)
def test_a_line_separator_in_the_subject_never_cuts_the_header(separator: str) -> None:
    from digest.delivery.compose import AlternativeEmail

    message = AlternativeEmail(subject=f"0{separator}0", body="text", to=["ada@example.org"])
    message.attach_alternative("<p>html</p>", "text/html")
    for raw in (message.to_bytes("\r\n"), message.message().as_bytes(linesep="\r\n")):
        parsed = parse(raw)
        assert not parsed.defects and parsed["Subject"] == "0 0"
