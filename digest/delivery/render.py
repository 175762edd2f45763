"""Digest rendering for thousands of recipients: CSS inlined once per batch, not per email.

Inlining CSS with premailer costs about 10 ms per email. A digest is a layout (header,
intro, footer) around one card per paper, and the only per-subscriber values are the
address, the unsubscribe, settings and "view in browser" links, each paper's reason, its
number and its "more / less like this" links. So each piece is
rendered from its template once, with *slots* — marker strings — where those values go,
and inlined once: the layout once per (kind, paper count, frequency, edition), each
paper card once, placed inside the layout so that every CSS rule applies to it exactly
as in a whole email. An email is then the pieces joined with the values, escaped, in
the slots. The result is the HTML that inlining each email on its own gives
(:func:`render_digest`, the reference); ``tests/test_render_fast.py`` holds the two
together.

Each card shows what is known of its paper and nothing false (:func:`card_view`); a
digest that would be larger than ``DIGEST_MAX_BYTES`` — Gmail clips a message past
102 KB, hiding the unsubscribe footer — gets shorter summaries, then fewer cards, and
says so (:func:`fit_digest`).

Limits of the method, checked by that test: card styles may not depend on a card's
position (``:first-child``, sibling selectors), and a slot inside an ``href`` takes only
URLs of plain ASCII characters (which is what ``unsubscribe_url`` makes).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import date
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from digest.delivery.compose import as_text, base_context, inline_css
from subscriptions import schedule

__all__ = [
    "SHORT_SUMMARY_CHARS",
    "SHOWN_AUTHORS",
    "SUMMARY_CHARS",
    "FeedbackLinks",
    "PaperCard",
    "Parts",
    "Piece",
    "Recipient",
    "Renderer",
    "authors_line",
    "card_view",
    "cut_at_sentence",
    "edition_label",
    "fit_digest",
    "preheader",
    "render_digest",
    "render_nothing",
]

Parts = tuple[str, str, str]
"""``(subject, text body, inlined HTML body)``."""

FeedbackLinks = Callable[[int], tuple[str, str]]
"""A paper's id → the recipient's ``("more like this" URL, "less like this" URL)`` for
it, plain ASCII (:func:`subscriptions.tokens.feedback_url`)."""


SUMMARY_CHARS = 300
"""A card's summary or abstract is cut at a sentence end within this many characters."""
SHORT_SUMMARY_CHARS = 120
"""…and within this many when the digest must shrink to stay under ``DIGEST_MAX_BYTES``."""
SHOWN_AUTHORS = 3
ARXIV_ABS, ARXIV_PDF = "https://arxiv.org/abs/", "https://arxiv.org/pdf/"
HF_PAPER = "https://huggingface.co/papers/"


@dataclass(frozen=True)
class PaperCard:
    """What a digest shows of one paper; the whole value keys the card cache of a
    :class:`Renderer`.

    ``url`` is the paper's page (its Hugging Face page, or a search for its title).
    ``upvotes`` is ``None`` when no page showed a count (unknown, not zero);
    ``gained`` the upvotes won since the previous edition (``None`` when unknown) and
    ``gained_label`` when that was ("today", "this week"). ``authors`` holds the first
    names only (at most ``SHOWN_AUTHORS``), ``authors_count`` all of them.
    ``github_repo`` and ``project_page`` are http(s) URLs or ``""`` (checked at
    ingest). ``short`` asks for the shorter summary of a digest that must shrink.
    ``origin`` says where the paper came from (``Hugging Face · arXiv``).
    ``suggested``: a "you may also like" paper, shown in its own section after the
    matches (docs/relevance.md).
    """

    id: int
    title: str
    url: str
    abstract: str
    upvotes: int | None = None
    published_on: date | None = None
    authors_count: int | None = None
    authors: tuple[str, ...] = ()
    gained: int | None = None
    gained_label: str = ""
    arxiv_id: str | None = None
    github_repo: str = ""
    project_page: str = ""
    ai_summary: str = ""
    short: bool = False
    origin: str = ""
    suggested: bool = False

    def __hash__(self) -> int:
        # A card keys the renderer's cache and is looked up several times an email:
        # hash its fields once (the instance dict bypasses the frozen setattr).
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = self.__dict__["_hash"] = hash(tuple(self.__dict__[f] for f in _CARD_FIELDS))
        return cached  # type: ignore[no-any-return]


_CARD_FIELDS = tuple(f.name for f in fields(PaperCard))


@dataclass(frozen=True)
class Recipient:
    """Who an email goes to and the links that are theirs alone: besides the papers and
    their reasons, the only values that differ between two subscribers' emails of one
    edition. Each field is a template variable (and a slot) of the same name."""

    email: str
    unsubscribe_url: str
    manage_url: str
    web_url: str
    # When the next scheduled digest goes out, as the subscriber reads it ("Monday 7
    # December, 08:00 (Europe/Berlin)"): said by the editions outside the schedule.
    next_digest: str = ""


# Slots look like absolute URLs so that premailer, which makes relative links absolute,
# leaves them alone in ``href`` attributes; the nonce keeps paper text from forging one.
_NONCE = secrets.token_hex(6)
_SLOT_RE = re.compile(r"https://slot\.invalid/" + _NONCE + r"/([a-z_]+)/")
_URL_SAFE = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")


def slot(name: str) -> str:
    """The marker standing for the value ``name`` in a piece's template context."""
    return f"https://slot.invalid/{_NONCE}/{name}/"


def _as_is(value: str) -> str:
    return value


def _escape_text(value: str) -> str:
    # Exactly what lxml's HTML serialiser (inside premailer) writes for a text node.
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_attribute(value: str) -> str:
    # lxml writes attribute values double-quoted, with these four escaped.
    return _escape_text(value).replace('"', "&quot;")


def _escape_url(value: str) -> str:
    # lxml also percent-escapes some characters of URL attributes; plain ASCII URLs pass
    # through it unchanged, and only those are accepted here.
    if not _URL_SAFE.fullmatch(value) or '"' in value:
        raise ValueError(f"a URL slot takes plain ASCII URLs only, not {value!r}")
    return _escape_attribute(value)


@dataclass(frozen=True)
class Piece:
    """Rendered text cut at its slots: ``literals[0] slot[0] literals[1] … literals[n]``.

    Each slot has the escaping its place needs: none in text emails and for ``raw``
    slots (already rendered HTML), text-node escaping in HTML text, attribute escaping
    in HTML attributes.
    """

    literals: tuple[str, ...]
    slots: tuple[tuple[str, Callable[[str], str]], ...]
    octets: int = -1
    """The literals' length in UTF-8 (computed once, so a filled piece is measured
    without encoding it)."""

    def __post_init__(self) -> None:
        if self.octets < 0:
            object.__setattr__(self, "octets", sum(map(_octets, self.literals)))

    @classmethod
    def parse(cls, rendered: str, *, html: bool, raw: frozenset[str] = frozenset()) -> Piece:
        """Cut ``rendered`` at its slot markers. Raises ValueError for a slot inside a URL
        attribute other than at its very start (the value could not be escaped alike)."""
        literals: list[str] = []
        slots: list[tuple[str, Callable[[str], str]]] = []
        start = 0
        for match in _SLOT_RE.finditer(rendered):
            before = rendered[start : match.start()]
            literals.append(before)
            name = match.group(1)
            slots.append((name, _escape_for(rendered, match.start(), name, html, raw)))
            start = match.end()
        literals.append(rendered[start:])
        return cls(tuple(literals), tuple(slots))

    def fill(self, values: Mapping[str, str]) -> str:
        """The piece with ``values`` (by slot name) in its slots. Raises KeyError for a
        missing value."""
        out = [self.literals[0]]
        for (name, escape), literal in zip(self.slots, self.literals[1:], strict=True):
            out.append(escape(values[name]))
            out.append(literal)
        return "".join(out)

    def fill_measured(
        self, values: Mapping[str, str], octets: Mapping[str, int] | None = None
    ) -> tuple[str, int]:
        """:meth:`fill` and the result's length in UTF-8; ``octets`` gives the length of
        values already measured (cards inside a layout)."""
        known = octets or {}
        out = [self.literals[0]]
        size = self.octets
        for (name, escape), literal in zip(self.slots, self.literals[1:], strict=True):
            value = escape(values[name])
            size += known[name] if name in known else _octets(value)
            out.append(value)
            out.append(literal)
        return "".join(out), size


def _octets(text: str) -> int:
    """Length of ``text`` in UTF-8."""
    return len(text) if text.isascii() else len(text.encode())


def _escape_for(
    rendered: str, at: int, name: str, html: bool, raw: frozenset[str]
) -> Callable[[str], str]:
    if not html or name in raw:
        return _as_is
    opened, closed = rendered.rfind("<", 0, at), rendered.rfind(">", 0, at)
    if opened <= closed:
        return _escape_text
    tag = rendered[opened:at]
    if re.search(r"""\b(href|src)=["']$""", tag):
        return _escape_url
    if re.search(r"""\b(href|src)=["'][^"']*$""", tag):
        raise ValueError(f"slot {name!r} is inside a URL; it must be the whole URL")
    return _escape_attribute


# --- What a card and a digest show -------------------------------------------------------

# A sentence ends at ".", "!" or "?" (and a closing quote or bracket) before a space and
# a capital or digit, so "e.g. a" and "et al. (2024)" are not ends.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?(?=\s+[A-Z0-9\"'(])")


def cut_at_sentence(text: str, limit: int) -> tuple[str, bool]:
    """``(text, was it cut)``: ``text`` with its white space collapsed, whole when it
    has at most ``limit`` characters; else up to its last sentence end within ``limit``
    when that keeps at least a third of it; else up to its last whole word and "…"."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text, False
    ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, limit + 1) if m.end() <= limit]
    if ends and ends[-1] >= limit // 3:
        return text[: ends[-1]], True
    head = text[: limit - 1]
    if " " in head:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(",;:-–— ") + "…", True


def authors_line(names: Sequence[str], count: int | None) -> str:
    """``"Ada Lovelace, Alan Turing, Grace Hopper et al. · 17 authors"``; the names alone
    when they are all; ``"17 authors"`` without names; ``""`` when nothing is known."""
    names = list(names[:SHOWN_AUTHORS])
    total = max(count or 0, len(names))
    if not names:
        return f"{total} author{'s' if total != 1 else ''}" if total else ""
    if total > len(names):
        return f"{', '.join(names)} et al. · {total} authors"
    return ", ".join(names)


def card_view(paper: PaperCard) -> dict[str, Any]:
    """The values a card's templates show, all plain text or http(s) URLs:

    ``authors`` (:func:`authors_line`), ``facts`` (``"10 Mar 2025 · ▲ 42 · +18 today ·
    via Hugging Face"``: the date and upvotes when known, growth when positive, where
    the paper came from), ``links`` (label, URL) in a
    fixed order — arXiv, PDF, Code, Project page, Hugging Face — each when known,
    ``summary`` (the source's AI summary when it gives one, else the abstract; cut by
    :func:`cut_at_sentence` at ``SUMMARY_CHARS``, or ``SHORT_SUMMARY_CHARS`` for a
    short card), ``is_ai_summary``, and ``more_url`` when there is more to read
    (the arXiv abstract page, else the paper's page), else ``""``."""
    facts = []
    if paper.published_on:
        facts.append(f"{paper.published_on.day} {paper.published_on:%b %Y}")
    if paper.upvotes is not None:
        facts.append(f"▲ {paper.upvotes}")
        if paper.gained and paper.gained > 0:
            facts.append(f"+{paper.gained} {paper.gained_label}".rstrip())
    if paper.origin:
        facts.append(f"via {paper.origin}")
    links = []
    if paper.arxiv_id:
        links += [("arXiv", ARXIV_ABS + paper.arxiv_id), ("PDF", ARXIV_PDF + paper.arxiv_id)]
    if paper.github_repo:
        links.append(("Code", paper.github_repo))
    if paper.project_page:
        links.append(("Project page", paper.project_page))
    if paper.arxiv_id:
        links.append(("Hugging Face", HF_PAPER + paper.arxiv_id))
    source = paper.ai_summary or paper.abstract
    summary, cut = cut_at_sentence(source, SHORT_SUMMARY_CHARS if paper.short else SUMMARY_CHARS)
    more = cut or bool(paper.ai_summary and paper.abstract)
    return {
        "authors": authors_line(paper.authors, paper.authors_count),
        "facts": " · ".join(facts),
        "links": links,
        "summary": summary,
        "is_ai_summary": bool(paper.ai_summary),
        "more_url": (ARXIV_ABS + paper.arxiv_id if paper.arxiv_id else paper.url) if more else "",
    }


def edition_label(period: str) -> str:
    """A period as people write it: ``"2026-W49"`` → ``"Week of 30 November 2026"`` (its
    Monday, ISO 8601 weeks), ``"2026-11-30"`` → ``"Monday 30 November 2026"``,
    ``"welcome"`` → ``"Welcome edition"``, ``"now-2026113015"`` → ``"On request, Monday 30
    November 2026"``; any other text as it is."""
    if period == schedule.WELCOME:
        return "Welcome edition"
    if period.startswith(schedule.ON_REQUEST):
        day_text = period.removeprefix(schedule.ON_REQUEST)[:8]
        try:
            day = date(int(day_text[:4]), int(day_text[4:6]), int(day_text[6:8]))
        except ValueError:
            return period
        return f"On request, {day:%A} {day.day} {day:%B %Y}"
    try:
        if "-W" in period:
            year, week = period.split("-W")
            monday = date.fromisocalendar(int(year), int(week), 1)
            return f"Week of {monday.day} {monday:%B %Y}"
        day = date.fromisoformat(period)
    except ValueError:
        return period
    return f"{day:%A} {day.day} {day:%B %Y}"


def preheader(papers: Sequence[PaperCard], limit: int = 140) -> str:
    """The preview text mail clients show after the subject: the first titles, joined
    by " · ", at most ``limit`` characters."""
    text = " · ".join(p.title for p in papers[:3])
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _size(parts: Parts) -> int:
    """Octets of the text and HTML bodies in UTF-8."""
    return _octets(parts[1]) + _octets(parts[2])


def fit_digest(
    compose: Callable[[Sequence[PaperCard], Sequence[str]], tuple[Parts, int]],
    papers: Sequence[PaperCard],
    reasons: Sequence[str],
    max_bytes: int | None,
) -> Parts:
    """``compose(papers, reasons)`` — which returns the parts and the octets of their
    text and HTML bodies — made to fit in ``max_bytes`` octets when it does not: first
    with every card's summary shortened
    (``SHORT_SUMMARY_CHARS``), then without the last cards until it fits (one card is
    always kept). The layout says how many matched and how many are shown. Gmail clips
    a message whose HTML is over 102 KB (hiding the footer with the unsubscribe link);
    ``DIGEST_MAX_BYTES`` keeps a whole digest under 90 KB."""
    parts, size = compose(papers, reasons)
    if max_bytes is None or size <= max_bytes:
        return parts
    short = [replace(p, short=True) for p in papers]
    shown = len(short)
    parts, size = compose(short, reasons)
    while size > max_bytes and shown > 1:
        # Drop about as many cards as the excess holds, at least one (cards vary).
        per_card = max(size // (shown + 2), 1)
        shown = max(1, shown - max(1, (size - max_bytes) // per_card))
        parts, size = compose(short[:shown], reasons[:shown])
    return parts


# --- The reference: one email rendered and inlined on its own ---------------------------


def _card_context(
    paper: PaperCard, reason: str, number: int | str, more_url: str = "", less_url: str = ""
) -> dict[str, Any]:
    return {
        "p": paper,
        "c": card_view(paper),
        "reason": reason,
        "number": number,
        "more_url": more_url,
        "less_url": less_url,
    }


def _feedback_of(feedback: FeedbackLinks | None, paper: PaperCard) -> tuple[str, str]:
    return feedback(paper.id) if feedback else ("", "")


def _digest_context(
    matched: int,
    shown: int,
    frequency: str,
    edition: str,
    limit: int | None = None,
    suggested: int = 0,
) -> dict[str, Any]:
    # Planning keeps at most the subscriber's papers per digest (``limit``; the site's
    # DIGEST_MAX_PAPERS when not given): more may have matched than were kept.
    limit = settings.DIGEST_MAX_PAPERS if limit is None else limit
    return {
        **base_context(),
        "count": shown,
        "matched": matched,
        "suggested": suggested,
        "capped": matched > 1 and matched >= limit,
        "welcome": edition == schedule.WELCOME,
        "on_request": edition.startswith(schedule.ON_REQUEST),
        "dropped": matched - shown,
        "frequency": frequency,
        "edition": edition,
        "edition_label": edition_label(edition),
    }


def render_digest(
    papers: Sequence[PaperCard],
    reasons: Sequence[str],
    *,
    recipient: Recipient,
    frequency: str,
    edition: str,
    fit: bool = True,
    limit: int | None = None,
    feedback: FeedbackLinks | None = None,
) -> Parts:
    """A digest email rendered and inlined on its own (one premailer run, ~10 ms; more
    when it must shrink to fit).

    ``reasons[i]`` says why ``papers[i]`` was chosen; ``frequency`` is ``daily`` or
    ``weekly``; ``edition`` is the period (``2026-11-21``, ``2026-W47``, or
    ``schedule.WELCOME`` …). With ``fit`` the email is kept within ``DIGEST_MAX_BYTES``
    (:func:`fit_digest`). ``limit`` is the subscriber's papers per digest (default
    ``DIGEST_MAX_PAPERS``): a digest that carries that many says "your N best matches".
    With ``feedback`` each card carries the recipient's "More like this" and "Less like
    this" links; without it, none. Suggested papers (``PaperCard.suggested``, which come
    last) make a section of their own.
    """
    matched = sum(not p.suggested for p in papers)

    def compose(papers: Sequence[PaperCard], reasons: Sequence[str]) -> tuple[Parts, int]:
        parts = _render_digest(
            papers, reasons, matched, recipient, frequency, edition, limit, feedback
        )
        return parts, _size(parts)

    return fit_digest(compose, papers, reasons, settings.DIGEST_MAX_BYTES if fit else None)


def _render_digest(
    papers: Sequence[PaperCard],
    reasons: Sequence[str],
    matched: int,
    recipient: Recipient,
    frequency: str,
    edition: str,
    limit: int | None = None,
    feedback: FeedbackLinks | None = None,
) -> Parts:
    numbered = list(enumerate(zip(papers, reasons, strict=True), 1))
    sections: dict[str, str] = {}
    for name, in_section in (("cards", False), ("suggestions", True)):
        chosen = [(n, p, r) for n, (p, r) in numbered if p.suggested is in_section]
        contexts = [_card_context(p, r, n, *_feedback_of(feedback, p)) for n, p, r in chosen]
        for kind in ("html", "txt"):
            sections[f"{name}_{'text' if kind == 'txt' else kind}"] = "".join(
                render_to_string(f"emails/digest-paper.{kind}", c) for c in contexts
            )
    suggested = sum(p.suggested for p in papers)
    ctx = {
        **_digest_context(matched, len(papers) - suggested, frequency, edition, limit, suggested),
        "first_title": papers[0].title if papers else "",
        "preheader": preheader(papers),
        **asdict(recipient),
    }
    subject = " ".join(
        render_to_string("emails/digest-subject.txt", {**ctx, "count": matched}).split()
    )
    text = as_text(
        render_to_string(
            "emails/digest-body.txt",
            {
                **ctx,
                "cards_text": sections["cards_text"],
                "suggestions_text": sections["suggestions_text"],
            },
        )
    )
    body = render_to_string(
        "emails/digest-body.html",
        {
            **ctx,
            "cards_html": mark_safe(sections["cards_html"]),
            "suggestions_html": mark_safe(sections["suggestions_html"]),
        },
    )
    return subject, text, inline_css(body)


def render_nothing(*, recipient: Recipient, frequency: str, edition: str) -> Parts:
    """The "nothing matched" note (``emails/nothing-*``) rendered and inlined on its own."""
    ctx = {**_digest_context(0, 0, frequency, edition), **asdict(recipient)}
    subject = " ".join(render_to_string("emails/nothing-subject.txt", ctx).split())
    text = as_text(render_to_string("emails/nothing-body.txt", ctx))
    return subject, text, inline_css(render_to_string("emails/nothing-body.html", ctx))


# --- The fast path ----------------------------------------------------------------------


def _site() -> tuple[str, str, int]:
    """What every cached piece also depends on (:func:`digest.delivery.compose.base_context`)."""
    return settings.SITE_NAME, settings.SITE_URL, settings.DIGEST_MAX_PAPERS


_CARDS = frozenset({"cards_html", "cards_text", "suggestions_html", "suggestions_text"})
_CARD_START, _CARD_END = slot("card_start"), slot("card_end")


class Renderer:
    """Renders many digests, inlining each layout and each paper card once.

    Pieces are cached by what they show: a card by the whole :class:`PaperCard` (a
    paper whose title, abstract or upvotes changed gets a new card), a layout by (paper
    count, frequency, edition), all of them by ``SITE_NAME`` and ``SITE_URL``. So one
    renderer may serve a worker process for its lifetime (delivery keeps one:
    :func:`digest.delivery.shared_renderer`), as long as the templates do not change
    under it. Each cache holds at most ``max_pieces`` entries, emptied when full.
    Not thread-safe.
    """

    def __init__(self, max_pieces: int = 4096) -> None:
        self.max_pieces = max_pieces
        self._layouts: dict[tuple[object, ...], tuple[Piece, Piece]] = {}
        self._cards: dict[tuple[object, ...], tuple[Piece, Piece]] = {}
        self._subjects: dict[tuple[object, ...], str] = {}

    def clear(self) -> None:
        """Forget every cached piece."""
        self._layouts.clear()
        self._cards.clear()
        self._subjects.clear()

    def _room(self, cache: dict[tuple[object, ...], Any]) -> None:
        if len(cache) >= self.max_pieces:
            cache.clear()

    def digest(
        self,
        papers: Sequence[PaperCard],
        reasons: Sequence[str],
        *,
        recipient: Recipient,
        frequency: str,
        edition: str,
        fit: bool = True,
        limit: int | None = None,
        feedback: FeedbackLinks | None = None,
    ) -> Parts:
        """The same ``(subject, text, html)`` as :func:`render_digest`, composed from
        cached pieces (microseconds once the pieces exist)."""
        matched = sum(not p.suggested for p in papers)

        def compose(papers: Sequence[PaperCard], reasons: Sequence[str]) -> tuple[Parts, int]:
            return self._digest(
                papers, reasons, matched, recipient, frequency, edition, limit, feedback
            )

        return fit_digest(compose, papers, reasons, settings.DIGEST_MAX_BYTES if fit else None)

    def _digest(
        self,
        papers: Sequence[PaperCard],
        reasons: Sequence[str],
        matched: int,
        recipient: Recipient,
        frequency: str,
        edition: str,
        limit: int | None = None,
        feedback: FeedbackLinks | None = None,
    ) -> tuple[Parts, int]:
        """The parts and the octets of their text and HTML bodies (measured piece by
        piece, not by encoding the whole email)."""
        suggested = sum(p.suggested for p in papers)
        html_layout, text_layout = self._layout(
            "digest", matched, len(papers) - suggested, frequency, edition, limit, suggested
        )
        voting = feedback is not None
        self.prepare(papers, voting=voting)
        site = _site()
        html_cards: dict[str, list[str]] = {"cards_html": [], "suggestions_html": []}
        text_cards: dict[str, list[str]] = {"cards_text": [], "suggestions_text": []}
        html_octets = dict.fromkeys(html_cards, 0)
        text_octets = dict.fromkeys(text_cards, 0)
        for number, (paper, reason) in enumerate(zip(papers, reasons, strict=True), 1):
            section = "suggestions" if paper.suggested else "cards"
            html_card, text_card = self._cards[(site, paper, voting)]
            values = {"reason": reason, "number": str(number)}
            if feedback is not None:
                values["more_url"], values["less_url"] = feedback(paper.id)
            html_card_text, size = html_card.fill_measured(values)
            html_cards[f"{section}_html"].append(html_card_text)
            html_octets[f"{section}_html"] += size
            text_card_text, size = text_card.fill_measured(values)
            text_cards[f"{section}_text"].append(text_card_text)
            text_octets[f"{section}_text"] += size
        values = {**vars(recipient), "preheader": preheader(papers)}
        html, html_size = html_layout.fill_measured(
            {**values, **{k: "".join(v) for k, v in html_cards.items()}}, html_octets
        )
        text, text_size = text_layout.fill_measured(
            {**values, **{k: "".join(v) for k, v in text_cards.items()}}, text_octets
        )
        return (self._subject(matched, papers), text, html), html_size + text_size

    def nothing(self, *, recipient: Recipient, frequency: str, edition: str) -> Parts:
        """The same as :func:`render_nothing`, from cached pieces."""
        html_layout, text_layout = self._layout("nothing", 0, 0, frequency, edition)
        values = {**vars(recipient), "preheader": ""}
        key = (_site(), "nothing", frequency, edition)
        if key not in self._subjects:
            self._room(self._subjects)
            ctx = _digest_context(0, 0, frequency, edition)
            self._subjects[key] = " ".join(
                render_to_string("emails/nothing-subject.txt", ctx).split()
            )
        return self._subjects[key], text_layout.fill(values), html_layout.fill(values)

    def _layout(
        self,
        kind: str,
        matched: int,
        shown: int,
        frequency: str,
        edition: str,
        limit: int | None = None,
        suggested: int = 0,
    ) -> tuple[Piece, Piece]:
        key = (_site(), kind, matched, shown, frequency, edition, limit, suggested)
        if key not in self._layouts:
            self._room(self._layouts)
            ctx = self._layout_context(matched, shown, frequency, edition, limit, suggested)
            html = inline_css(render_to_string(f"emails/{kind}-body.html", ctx))
            text = render_to_string(f"emails/{kind}-body.txt", ctx)
            self._layouts[key] = (
                Piece.parse(html, html=True, raw=_CARDS),
                Piece.parse(text, html=False),
            )
        return self._layouts[key]

    @staticmethod
    def _layout_context(
        matched: int,
        shown: int,
        frequency: str,
        edition: str,
        limit: int | None = None,
        suggested: int = 0,
    ) -> dict[str, Any]:
        return {
            **_digest_context(matched, shown, frequency, edition, limit, suggested),
            **{f.name: slot(f.name) for f in fields(Recipient)},
            "preheader": slot("preheader"),
            "cards_html": mark_safe(slot("cards_html")),
            "cards_text": slot("cards_text"),
            "suggestions_html": mark_safe(slot("suggestions_html")),
            "suggestions_text": slot("suggestions_text"),
        }

    def prepare(self, papers: Iterable[PaperCard], *, voting: bool = True) -> None:
        """Make sure the cards of all ``papers`` are cached, inlining those that are not
        in one premailer run (one run costs ~10 ms and a little more per card: a batch's
        ~60 new cards cost ~0.1 s instead of ~0.6 s). :meth:`digest` calls it for its own
        papers; a caller about to render many digests passes all their papers first.
        ``voting`` asks for cards with "more / less like this" links (as sent), or
        without (a moderator's preview)."""
        site = _site()
        wanted = {(site, p, voting): p for p in papers}
        new = [p for key, p in wanted.items() if key not in self._cards]
        if not new:
            return
        if len(self._cards) + len(new) > self.max_pieces:
            self._cards.clear()  # and inline every wanted card, cached or not before
            new = list(wanted.values())
        links = (slot("more_url"), slot("less_url")) if voting else ("", "")
        contexts = [_card_context(p, slot("reason"), slot("number"), *links) for p in new]
        # Inline the cards inside a real layout, side by side as in an email, so rules
        # on their ancestors apply too; then cut each out between its two markers.
        frame = self._layout_context(len(new), len(new), "daily", "")
        frame["cards_html"] = mark_safe(
            "".join(
                _CARD_START + render_to_string("emails/digest-paper.html", ctx) + _CARD_END
                for ctx in contexts
            )
        )
        inlined = inline_css(render_to_string("emails/digest-body.html", frame))
        at = 0
        for paper, ctx in zip(new, contexts, strict=True):
            start = inlined.index(_CARD_START, at) + len(_CARD_START)
            at = inlined.index(_CARD_END, start)
            text = render_to_string("emails/digest-paper.txt", ctx)
            self._cards[(site, paper, voting)] = (
                Piece.parse(inlined[start:at], html=True),
                Piece.parse(text, html=False),
            )

    def _subject(self, matched: int, papers: Sequence[PaperCard]) -> str:
        key = (_site(), "digest", matched, papers[0].title if papers else None)
        if key not in self._subjects:
            self._room(self._subjects)
            ctx = {
                **base_context(),
                "count": matched,
                "first_title": papers[0].title if papers else "",
            }
            self._subjects[key] = " ".join(
                render_to_string("emails/digest-subject.txt", ctx).split()
            )
        return self._subjects[key]
