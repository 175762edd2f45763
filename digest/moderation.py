"""What moderators do from the admin, as plain functions over the models.

* blocked terms: :func:`blocked_terms_in` (used by the signup and preference forms) and
  :func:`flag_filters_containing` (run when a term is blocked);
* papers: :func:`merge_papers` folds a duplicate row into the one kept;
* topics: :func:`preview_topic_query` counts what a query would match before it is
  saved, :func:`retag_topic` re-tags recent papers after it is;
* subscribers: :func:`resend_digest` and :func:`preview_next_digest`, both through
  :mod:`digest.delivery`;
* roles: :func:`ensure_moderators_group`;
* the admin login: failed attempts are counted per client address and username in
  Django's cache and lock that pair out (:class:`ThrottledAdminLoginForm`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.management import create_permissions
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.utils import timezone

from subscriptions.models import Filter, Subscriber
from subscriptions.schedule import WEEKLY
from subscriptions.throttle import client_ip

from . import delivery
from .engine import PaperText, tag_papers
from .models import BlockedTerm, Digest, DigestItem, Paper, Sighting, Topic
from .query import QueryError, fold, parse_query, tokens, word_key

log = logging.getLogger(__name__)

__all__ = [
    "MODERATORS",
    "PREVIEW_DAYS",
    "DigestPreview",
    "ThrottledAdminLoginForm",
    "TopicPreview",
    "blocked_terms_in",
    "clear_login_failures",
    "ensure_moderators_group",
    "flag_filters_containing",
    "login_locked",
    "merge_papers",
    "preview_next_digest",
    "preview_topic_query",
    "query_error_text",
    "record_login_failure",
    "resend_digest",
    "retag_topic",
]

MODERATORS = "Moderators"
PREVIEW_DAYS = 7
"""A topic preview counts the papers seen on the pages in this many past days."""


# ---------------------------------------------------------------------------------------
# Blocked terms


def _keys(text: str) -> list[str]:
    # The same folding as the filter language (digest.query), so "NSFW", "nsfw" and
    # "Nsfws" are one term, and "state-space" is "state space".
    return [word_key(t) for t in tokens(fold(text))]


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    return n > 0 and any(
        list(haystack[i : i + n]) == list(needle) for i in range(len(haystack) - n + 1)
    )


def blocked_terms_in(query_text: str, terms: Sequence[str] | None = None) -> list[str]:
    """The blocked terms that ``query_text`` contains, as the moderators wrote them.

    A term is contained when its words appear consecutively among the query's words,
    compared as the filter language compares words (:func:`digest.query.fold`,
    :func:`~digest.query.tokens`, :func:`~digest.query.word_key`: case, accents,
    punctuation and a plural ending do not matter). Operators and field names are words
    like any other here, and a term is found even under a ``-``: a filter may not
    mention it at all. ``terms`` defaults to every :class:`BlockedTerm`.
    """
    words = _keys(query_text)
    if terms is None:
        terms = list(BlockedTerm.objects.values_list("term", flat=True))
    return [term for term in terms if _contains(words, _keys(term))]


def flag_filters_containing(term: str) -> int:
    """Flag every subscriber filter that contains ``term`` for review; returns how many
    were newly flagged. Reads the filters in chunks (a term is blocked rarely)."""
    needle = _keys(term)
    if not needle:
        return 0
    hits = [
        pk
        for pk, query in Filter.objects.filter(flagged_for_review=False)
        .values_list("pk", "query")
        .iterator(chunk_size=2000)
        if _contains(_keys(query), needle)
    ]
    flagged = 0
    for start in range(0, len(hits), 1000):
        flagged += Filter.objects.filter(pk__in=hits[start : start + 1000]).update(
            flagged_for_review=True
        )
    if flagged:
        log.info("blocked_term term=%r filters_flagged=%s", term, flagged)
    return flagged


# ---------------------------------------------------------------------------------------
# Papers


# Moderation state and identity of the row kept are never taken from the duplicate.
_NOT_FILLED = {"id", "title", "title_key", "arxiv_id", "hidden_at", "hidden_reason", "pinned_at"}


@transaction.atomic
def merge_papers(keep: Paper, drop: Paper) -> Paper:
    """Fold ``drop`` into ``keep`` (two rows that are the same paper) and delete ``drop``.

    ``keep`` keeps its id, title and moderation state, and gains: ``drop``'s arXiv id
    when it has none, the higher upvotes, the earlier first-seen and later last-seen
    times, any detail it lacks (abstract, authors, dates...), ``drop``'s topics, its
    sightings and its digest items. Where both rows have a sighting in the same ingest
    run, or both went to the same subscriber (a paper goes to a subscriber once), the
    duplicate's row is dropped. A pin on ``drop`` carries over unless ``keep`` is
    hidden. Returns ``keep`` refreshed. Raises ValueError when both are the same row.
    """
    if keep.pk == drop.pk:
        raise ValueError("cannot merge a paper with itself")
    keep, drop = (
        Paper.objects.select_for_update().get(pk=keep.pk),
        Paper.objects.select_for_update().get(pk=drop.pk),
    )
    Sighting.objects.filter(
        paper=drop, run_id__in=Sighting.objects.filter(paper=keep).values("run_id")
    ).delete()
    Sighting.objects.filter(paper=drop).update(paper=keep)
    DigestItem.objects.filter(
        paper=drop,
        subscriber_id__in=DigestItem.objects.filter(paper=keep).values("subscriber_id"),
    ).delete()
    DigestItem.objects.filter(paper=drop).update(paper=keep)
    keep.topics.add(*drop.topics.all())

    if drop.arxiv_id and not keep.arxiv_id:
        keep.arxiv_id = drop.arxiv_id
        drop.arxiv_id = None
        drop.save(update_fields=["arxiv_id"])  # the column is unique
    keep.upvotes = max(keep.upvotes, drop.upvotes)
    keep.first_seen_at = min(keep.first_seen_at, drop.first_seen_at)
    keep.last_seen_at = max(keep.last_seen_at, drop.last_seen_at)
    if drop.pinned_at and not keep.pinned_at and not keep.hidden_at:
        keep.pinned_at = drop.pinned_at
    for f in Paper._meta.concrete_fields:
        if f.name in _NOT_FILLED or f.name in {"upvotes", "first_seen_at", "last_seen_at"}:
            continue
        if getattr(keep, f.attname) in (None, "", [], {}) and getattr(drop, f.attname) not in (
            None,
            "",
            [],
            {},
        ):
            setattr(keep, f.attname, getattr(drop, f.attname))
    drop.delete()
    keep.save()
    log.info("papers_merged kept=%s dropped=%s", keep.pk, drop.pk)
    return keep


# ---------------------------------------------------------------------------------------
# Topics


def query_error_text(query: str, error: QueryError) -> str:
    """A query error for a form: the message, the 1-based character position and the
    query with a marker where the problem starts (``unclosed quote at character 8:
    vision ⟦"transformer``)."""
    return (
        f"{error.message} at character {error.position + 1}: "
        f"{query[: error.position]}⟦{query[error.position :]}"
    )


def _paper_texts(since: datetime) -> list[PaperText]:
    rows = Paper.objects.filter(last_seen_at__gte=since).values_list(
        "id", "title", "abstract", "authors"
    )
    return [
        PaperText(id=pk, title=title, abstract=abstract, authors=tuple(authors or ()))
        for pk, title, abstract, authors in rows
    ]


@dataclass
class TopicPreview:
    """What a topic query would match: ``papers`` seen in the last :data:`PREVIEW_DAYS`
    days (``sample``: up to 10 of their titles, most upvoted first), and ``subscribers``,
    the deliverable subscribers following the topic, who would get them."""

    query: str
    papers: int = 0
    subscribers: int = 0
    sample: list[str] = field(default_factory=list)
    error: str = ""


def preview_topic_query(
    query_text: str, topic: Topic | None = None, now: datetime | None = None
) -> TopicPreview:
    """Count what ``query_text`` would match, without saving anything.

    ``topic`` is the topic being edited (None for a new one: nobody follows it yet).
    A query that does not parse gives a preview with ``error`` set
    (:func:`query_error_text`) and zero counts.
    """
    preview = TopicPreview(query=query_text)
    try:
        parse_query(query_text)
    except QueryError as error:
        preview.error = query_error_text(query_text, error)
        return preview
    now = now or timezone.now()
    matched = tag_papers({0: query_text}, _paper_texts(now - timedelta(days=PREVIEW_DAYS)))[0]
    preview.papers = len(matched)
    preview.sample = list(
        Paper.objects.filter(pk__in=matched)
        .order_by("-upvotes", "-id")
        .values_list("title", flat=True)[:10]
    )
    if topic is not None and topic.pk:
        preview.subscribers = topic.subscribers.deliverable().count()
    return preview


def retag_topic(topic: Topic, now: datetime | None = None) -> tuple[int, int]:
    """Re-tag with ``topic`` the papers that can still go out in a digest (seen within
    the widest delivery window, :func:`digest.delivery.window`), after its query changed.

    Returns ``(added, removed)`` tag counts. Older papers keep their tags. Raises
    :class:`~digest.query.QueryError` when the query does not parse.
    """
    parse_query(topic.query)
    now = now or timezone.now()
    papers = _paper_texts(now - delivery.window(WEEKLY))
    matched = tag_papers({topic.pk: topic.query}, papers)[topic.pk]
    recent = {p.id for p in papers}
    through = Paper.topics.through
    tagged = set(
        through.objects.filter(topic=topic, paper_id__in=recent).values_list("paper_id", flat=True)
    )
    with transaction.atomic():
        removed, _ = through.objects.filter(topic=topic, paper_id__in=tagged - matched).delete()
        through.objects.bulk_create(
            [through(topic=topic, paper_id=pid) for pid in matched - tagged],
            ignore_conflicts=True,
        )
    return len(matched - tagged), removed


# ---------------------------------------------------------------------------------------
# Subscribers


def resend_digest(
    digest: Digest, *, connection: BaseEmailBackend | None = None, now: datetime | None = None
) -> bool:
    """Send an already sent digest again, through :func:`digest.delivery.send_digest`.

    The digest goes ``sent → pending`` with a conditional UPDATE (so two moderators
    clicking at once send it once), then the normal send path claims and sends it, with
    a new Message-ID. Only
    to an active subscriber. Returns False when nothing was sent: the digest is not
    ``sent`` or the subscriber is not active. On a send error the digest is marked
    ``sent`` again (it was, once) with the error recorded, and the exception propagates.
    """
    if digest.subscriber.state != "active":
        return False
    # A new Message-ID (send_digest makes one when there is none): mail services drop
    # a message whose Message-ID they already delivered.
    reopened = Digest.objects.filter(pk=digest.pk, status=Digest.SENT).update(
        status=Digest.PENDING, message_id=""
    )
    if not reopened:
        return False
    digest.message_id = ""
    connection = connection or get_connection()
    try:
        with connection:
            return delivery.send_digest(digest, connection, now or timezone.now())
    except Exception:
        Digest.objects.filter(pk=digest.pk, status=Digest.PENDING).update(status=Digest.SENT)
        raise


@dataclass
class DigestPreview:
    """A subscriber's next digest as it would be sent: the edition (``period``),
    ``status`` the planning gave (``pending`` with papers, ``empty``, or ``sent``/
    ``sending`` when that edition already went out), the papers as
    ``(title, reason)`` pairs in rank order, and the rendered ``subject``, ``text`` and
    ``html`` when there is something to send."""

    at: datetime
    period: str
    status: str
    deliverable: bool
    papers: list[tuple[str, str]] = field(default_factory=list)
    subject: str = ""
    text: str = ""
    html: str = ""


def preview_next_digest(subscriber: Subscriber, now: datetime | None = None) -> DigestPreview:
    """Plan and render ``subscriber``'s next digest exactly as delivery would, then undo.

    The plan runs at the subscriber's next send time (or ``now`` when that has passed)
    through :func:`digest.delivery.plan_digest` and :func:`~digest.delivery.digest_message`
    inside a transaction that is rolled back: no digest row is claimed and nothing is
    sent. While it runs, a worker planning the same edition waits for it.
    """
    now = now or timezone.now()
    at = (
        subscriber.next_digest_at
        if subscriber.next_digest_at and subscriber.next_digest_at > now
        else now
    )
    with transaction.atomic():
        digest = delivery.plan_digest(subscriber, at)
        preview = DigestPreview(
            at=at,
            period=digest.period,
            status=digest.status,
            deliverable=subscriber.state == "active",
            papers=[(i.paper.title, i.reason) for i in digest.items.select_related("paper")],
        )
        if digest.status == Digest.PENDING:
            message = delivery.digest_message(digest)
            preview.subject, preview.text = message.subject, message.body
            preview.html = next(
                (content for content, mime in message.alternatives if mime == "text/html"), ""
            )
        transaction.set_rollback(True)
    return preview


# ---------------------------------------------------------------------------------------
# Roles

# Model → actions a moderator may take. Everything else (deleting subscribers, changing
# sources, exporting addresses) is for superusers only.
MODERATOR_PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "digest": {
        "paper": ("view", "change"),
        "topic": ("view", "add", "change", "delete"),
        "blockedterm": ("view", "add", "change", "delete"),
        "sighting": ("view",),
        "source": ("view",),
        "ingestrun": ("view",),
        "digest": ("view",),
        "digestitem": ("view",),
        "deliveryevent": ("view",),
    },
    "subscriptions": {
        "subscriber": ("view",),
        # Filters flagged for review are kept (flag cleared) or removed by moderators.
        "filter": ("view", "change", "delete"),
    },
}


def ensure_moderators_group(apps: Any = None) -> Any:
    """Create or update the "Moderators" group with exactly the permissions of
    :data:`MODERATOR_PERMISSIONS`; returns the group.

    ``apps`` is a migration's app registry (``RunPython(lambda apps, schema_editor:
    ensure_moderators_group(apps))``) or None for the live one. Permissions Django has
    not created yet (it creates them after ``migrate``) are created first; those of
    models that do not exist yet are skipped.
    """
    registry = apps or django_apps
    for label in MODERATOR_PERMISSIONS:
        config = registry.get_app_config(label)
        # A migration's app configs carry no models module, which create_permissions
        # needs to see before it does anything.
        stub = getattr(config, "models_module", None) is None
        if stub:
            config.models_module = True
        create_permissions(config, verbosity=0, apps=registry)
        if stub:
            config.models_module = None
    group_model = registry.get_model("auth", "Group")
    permission_model = registry.get_model("auth", "Permission")
    group, _ = group_model.objects.get_or_create(name=MODERATORS)
    wanted = [
        (app, f"{action}_{model}")
        for app, models in MODERATOR_PERMISSIONS.items()
        for model, actions in models.items()
        for action in actions
    ]
    found = []
    for app, codename in wanted:
        found.extend(
            permission_model.objects.filter(content_type__app_label=app, codename=codename)
        )
    group.permissions.set(found)
    return group


# ---------------------------------------------------------------------------------------
# Admin login throttling


def _login_key(ip: str, username: str) -> str:
    digest = hashlib.sha256(f"{ip}\n{username.casefold()}".encode()).hexdigest()
    return f"admin-login-failures:{digest}"


def login_locked(ip: str, username: str) -> bool:
    """Whether ``username`` from ``ip`` has failed ``ADMIN_LOGIN_MAX_FAILURES`` times
    and is locked out (for ``ADMIN_LOGIN_LOCKOUT_SECONDS`` after the last failure)."""
    return cache.get(_login_key(ip, username), 0) >= settings.ADMIN_LOGIN_MAX_FAILURES


def record_login_failure(ip: str, username: str) -> int:
    """Count one failed login of ``username`` from ``ip``; returns the count so far.

    The count expires ``ADMIN_LOGIN_LOCKOUT_SECONDS`` after the latest failure.
    """
    key, timeout = _login_key(ip, username), settings.ADMIN_LOGIN_LOCKOUT_SECONDS
    cache.add(key, 0, timeout)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout)
        count = 1
    cache.touch(key, timeout)
    if count >= settings.ADMIN_LOGIN_MAX_FAILURES:
        log.warning("admin_login_locked ip=%s username=%r failures=%s", ip, username, count)
    return count


def clear_login_failures(ip: str, username: str) -> None:
    """Forget the failures of ``username`` from ``ip`` (after a successful login)."""
    cache.delete(_login_key(ip, username))


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    """The admin login form, refusing a client address and username pair for
    ``ADMIN_LOGIN_LOCKOUT_SECONDS`` after ``ADMIN_LOGIN_MAX_FAILURES`` failed attempts
    (wrong password, or an account that may not use the admin). While locked out even
    the right password is refused, without being checked."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "locked": "Too many failed logins. Try again in %(minutes)s minutes.",
    }

    def clean(self) -> dict[str, Any]:
        ip = client_ip(self.request) if self.request else "unknown"
        username = self.cleaned_data.get("username") or ""
        if login_locked(ip, username):
            raise ValidationError(
                self.error_messages["locked"],
                code="locked",
                params={"minutes": max(1, settings.ADMIN_LOGIN_LOCKOUT_SECONDS // 60)},
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            record_login_failure(ip, username)
            raise
        clear_login_failures(ip, username)
        return cleaned
