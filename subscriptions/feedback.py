"""A subscriber's relevance feedback as the web pages record it: votes from a digest's
"more / less like this" links, papers picked by hand on the settings page, and the
paper references ("papers like these") a subscriber pastes.

The votes are :class:`digest.models.Feedback` rows, one per (subscriber, paper); what
the digests learn from them is :mod:`digest.relevance`'s part.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from urllib.parse import unquote, urlsplit

from django.db.models import F, Q, QuerySet, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from digest.ingest.parsers.base import normalise_arxiv_id
from digest.models import Feedback, Paper

from .models import Subscriber

__all__ = [
    "PICK_LIST_SIZE",
    "RECENT_DAYS",
    "arxiv_id_of",
    "record_vote",
    "recent_papers",
]

RECENT_DAYS = 7
"""The settings page offers papers first seen within this many days."""
PICK_LIST_SIZE = 10
"""…at most this many, newest and most upvoted first."""

# Hosts whose paper pages are named by the arXiv id in their path: arXiv itself (abs,
# pdf, html, format and export mirrors) and Hugging Face's papers pages.
_PAPER_HOSTS = re.compile(
    r"^(?:www\.|export\.|browse\.)?(?:arxiv\.org|huggingface\.co|hf\.co|alphaxiv\.org)$", re.I
)
_PATH_PREFIX = re.compile(r"^/(?:abs|pdf|html|format|papers|overview)/", re.I)
_NEW_STYLE_IN_TEXT = re.compile(r"(?<![\d.])(\d{4}\.\d{4,5})(?:v\d+)?(?![\d])")


def arxiv_id_of(text: str) -> str | None:
    """The arXiv id a pasted reference names, without its version, or ``None``.

    Takes an id (``2401.01234``, ``2401.01234v2``, ``arXiv:2401.01234``,
    ``hep-th/9901001``) or a URL of an arXiv page (``https://arxiv.org/abs/2401.01234v2``,
    ``…/pdf/2401.01234.pdf``, ``…/html/…``, ``export.arxiv.org``) or of a Hugging Face
    papers page (``https://huggingface.co/papers/2401.01234``, ``hf.co/papers/…``), with
    or without the scheme, a query or a fragment; white space and angle brackets around
    it are ignored. Ids as https://info.arxiv.org/help/arxiv_identifier.html defines
    them (:func:`digest.ingest.parsers.base.normalise_arxiv_id`). A URL of any other
    site names no paper (``None``), even when its path holds an id-like number.
    """
    text = text.strip().strip("<>\"'").strip()
    if not text or len(text) > 500:
        return None
    direct = normalise_arxiv_id(text)
    if direct:
        return direct
    url = text if "://" in text else "https://" + text
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return None
    if not _PAPER_HOSTS.match(host):
        return None
    path = unquote(parts.path)
    path = _PATH_PREFIX.sub("", path).strip("/")
    path = re.sub(r"\.pdf$", "", path, flags=re.I)
    found = normalise_arxiv_id(path)
    if found:
        return found
    # A page below the paper's (``/papers/2401.01234/community``).
    match = _NEW_STYLE_IN_TEXT.search(path)
    return match.group(1) if match else None


def record_vote(
    subscriber: Subscriber,
    paper: Paper,
    vote: int,
    source: str = Feedback.EMAIL,
    now: datetime | None = None,
) -> Feedback:
    """Record ``subscriber``'s ``vote`` (``Feedback.MORE`` or ``Feedback.LESS``) on
    ``paper`` from ``source``: a first vote creates the row, a later one replaces its
    vote and source and moves ``updated_at`` (``created_at`` stays). Safe when two
    arrive at once: the unique (subscriber, paper) constraint leaves one row.
    Raises ValueError for a vote other than those two."""
    if vote not in (Feedback.MORE, Feedback.LESS):
        raise ValueError(f"a vote is {Feedback.MORE} or {Feedback.LESS}, not {vote!r}")
    now = now or timezone.now()
    row, created = Feedback.objects.update_or_create(
        subscriber=subscriber,
        paper=paper,
        # A vote that arrives at once with the first may have read the clock before the
        # first was created: it never moves updated_at before created_at.
        defaults={
            "vote": vote,
            "source": source,
            "updated_at": Greatest(Value(now), F("created_at")),
        },
        create_defaults={"vote": vote, "source": source, "created_at": now, "updated_at": now},
    )
    if not created:
        row.refresh_from_db(fields=["updated_at"])
    return row


def recent_papers(
    search: str = "", *, now: datetime | None = None, limit: int = PICK_LIST_SIZE
) -> QuerySet[Paper]:
    """Papers first seen within :data:`RECENT_DAYS` and not hidden, whose title or arXiv
    id contains ``search`` (case-insensitive; every word must appear), most upvoted
    first, then newest; at most ``limit``."""
    since = (now or timezone.now()) - timedelta(days=RECENT_DAYS)
    papers = Paper.objects.filter(first_seen_at__gte=since, hidden_at__isnull=True)
    for word in search.split()[:8]:
        papers = papers.filter(Q(title__icontains=word) | Q(arxiv_id__icontains=word))
    return papers.order_by(F("upvotes").desc(nulls_last=True), "-first_seen_at", "-id")[:limit]
