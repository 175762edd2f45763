"""The pages a subscriber uses without a password.

Signing up sends a double opt-in email; its single-use link confirms the address and
opens the settings page. Later, a single-use magic link (in every digest, or emailed on
request) opens the settings page again; using a link starts a browser session for that
subscriber. Emailed links only show a page with a button on GET (mail scanners open
links); a POST acts. Answers never depend on whether an address is known.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache, wraps
from typing import Any

import markdown
from django.conf import settings
from django.contrib import messages
from django.core import signing
from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
    require_safe,
)

from digest.delivery.message import digest_message
from digest.matching import preview
from digest.matching.preview import PREVIEW_DAYS
from digest.matching.query import QueryError, parse_query
from digest.models import Digest, Paper, archive_cutoff
from digest.relevance.vectors import from_bytes

from . import erasure, tasks, throttle
from .forms import EmailLinkForm, FilterForm, QueryProblem, ScheduleForm, SignupForm, TopicsForm
from .middleware import email_html_policy
from .models import SESSION_KEY, Filter, State, Subscriber
from .tokens import (
    CONFIRM,
    MANAGE,
    UNSUBSCRIBE,
    digest_web_url,
    read_digest_token,
    read_link_token,
    read_token,
)

SESSION_COUNTER = "subscriptions.link_counter"
SAMPLE_PAPERS = 3


# ---------------------------------------------------------------------------------------
# Helpers


def too_many(request: HttpRequest) -> HttpResponse:
    return render(request, "subscriptions/too_many.html", status=429)


def bad_link(request: HttpRequest, reason: str) -> HttpResponse:
    """400 page for a link that is ``invalid``, ``expired`` or ``used``, with the form
    to ask for a new one."""
    return render(
        request,
        "subscriptions/bad_link.html",
        {"reason": reason, "link_form": EmailLinkForm()},
        status=400,
    )


def start_session(request: HttpRequest, subscriber: Subscriber) -> None:
    """Sign this browser in as ``subscriber`` with a fresh session key (no fixation),
    until they sign out of every browser (:meth:`Subscriber.sign_out_everywhere`)."""
    request.session.flush()
    request.session[SESSION_KEY] = str(subscriber.uuid)
    request.session[SESSION_COUNTER] = subscriber.link_counter
    request.session.save()  # gives it its key, kept to be deleted with the subscriber
    subscriber.remember_session(str(request.session.session_key))


def session_subscriber(request: HttpRequest) -> Subscriber | None:
    """The subscriber this browser is signed in as, or None (also when they signed out
    of every browser since)."""
    value = request.session.get(SESSION_KEY)
    if not value:
        return None
    subscriber = Subscriber.objects.filter(uuid=value).first()
    # A session from before counters were kept counts as made at counter 0.
    if subscriber is None or request.session.get(SESSION_COUNTER, 0) != subscriber.link_counter:
        return None
    return subscriber


def subscriber_required(
    view: Callable[..., HttpResponse],
) -> Callable[..., HttpResponse]:
    """Pass the session's subscriber as ``subscriber``, or send the browser to the
    "email me my link" page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        subscriber = session_subscriber(request)
        if subscriber is None:
            request.session.pop(SESSION_KEY, None)
            return redirect("email_link")
        return view(request, subscriber, *args, **kwargs)

    return wrapper


def preview_of(text: str) -> dict[str, Any]:
    """The server-rendered preview of a valid query text
    (:func:`digest.matching.preview.preview`)."""
    count, papers = preview.preview(text)
    return {"query": text, "count": count, "papers": papers, "days": PREVIEW_DAYS}


# ---------------------------------------------------------------------------------------
# Signup and confirmation


@require_http_methods(["GET", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    """What the service sends, a sample digest, and the signup form.

    A valid signup always answers with the same redirect to "check your inbox", whatever
    the address, after the same work: the signup is handed to a task
    (:func:`subscriptions.signup.sign_up` says what each address gets).
    """
    form = SignupForm(request.POST or None)
    if request.method == "POST":
        if not throttle.allow("signup-ip", throttle.client_ip(request)):
            return too_many(request)
        if form.is_valid():
            data = form.cleaned_data
            tasks.sign_up.delay(
                {
                    "email": data["email"],
                    "frequency": data["frequency"],
                    "timezone": data["timezone"],
                    "filters": data["filters"],
                    "topics": [topic.pk for topic in data["topics"]],
                }
            )
            return redirect("signup_sent")
    sample = list(preview.recent()[:SAMPLE_PAPERS]) or list(
        Paper.objects.visible().order_by(F("upvotes").desc(nulls_last=True), "-id")[:SAMPLE_PAPERS]
    )
    status = 400 if form.is_bound else 200
    context = {"form": form, "sample": sample, "max_papers": settings.DIGEST_MAX_PAPERS}
    return render(request, "subscriptions/home.html", context, status=status)


@require_GET
def signup_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "subscriptions/signup_sent.html")


def _linked_subscriber(
    request: HttpRequest, token: str, purpose: str, max_age: int
) -> tuple[Subscriber | None, int, HttpResponse | None]:
    """The subscriber a link names and its counter, or the 400 page."""
    try:
        subscriber_uuid, counter = read_link_token(token, purpose, max_age)
    except signing.SignatureExpired:
        return None, 0, bad_link(request, "expired")
    except signing.BadSignature:
        return None, 0, bad_link(request, "invalid")
    subscriber = Subscriber.objects.filter(uuid=subscriber_uuid).first()
    if subscriber is None:
        return None, 0, bad_link(request, "invalid")
    if subscriber.link_counter != counter:
        # A confirmation link works once; a settings link until "sign out of every browser".
        return None, 0, bad_link(request, "used" if purpose == CONFIRM else "signed_out")
    return subscriber, counter, None


@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The double opt-in link: GET shows a button, POST confirms, spends the link, signs
    the browser in and lands on the settings page."""
    subscriber, counter, error = _linked_subscriber(
        request, token, CONFIRM, settings.CONFIRM_LINK_MAX_AGE
    )
    if error:
        return error
    assert subscriber is not None
    if request.method == "GET":
        return render(request, "subscriptions/confirm.html", {"subscriber": subscriber})
    if not subscriber.use_link(counter):
        return bad_link(request, "used")
    subscriber.confirm()
    start_session(request, subscriber)
    messages.success(request, "Your address is confirmed. Welcome aboard!")
    return redirect("manage")


# ---------------------------------------------------------------------------------------
# Magic links


@require_http_methods(["GET", "POST"])
def email_link(request: HttpRequest) -> HttpResponse:
    """ "Email me my link": the same answer, after the same work, whether or not the
    address is known: the request is handed to a task
    (:func:`subscriptions.signup.email_link_for` says what each address gets).
    """
    form = EmailLinkForm(request.POST or None)
    if request.method == "POST":
        if not throttle.allow("link-ip", throttle.client_ip(request)):
            return too_many(request)
        if form.is_valid():
            tasks.email_link.delay(form.cleaned_data["email"])
            return redirect("email_link_sent")
    status = 400 if form.is_bound else 200
    return render(request, "subscriptions/email_link.html", {"form": form}, status=status)


@require_GET
def email_link_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "subscriptions/email_link_sent.html")


@require_http_methods(["GET", "POST"])
def manage_link(request: HttpRequest, token: str) -> HttpResponse:
    """The settings link from a digest or the "your link" email, good for its whole
    lifetime (``MANAGE_LINK_MAX_AGE``) until the subscriber signs out of every browser.
    A browser already signed in as that subscriber goes straight to the settings; else
    GET shows a button (mail scanners open links) and POST signs the browser in."""
    subscriber, _, error = _linked_subscriber(request, token, MANAGE, settings.MANAGE_LINK_MAX_AGE)
    if error:
        return error
    assert subscriber is not None
    signed_in = session_subscriber(request)
    if signed_in is not None and signed_in.pk == subscriber.pk:
        return redirect("manage")
    if request.method == "GET":
        return render(request, "subscriptions/manage_link.html", {"subscriber": subscriber})
    start_session(request, subscriber)
    return redirect("manage")


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    return redirect("home")


@require_POST
@subscriber_required
def sign_out_everywhere(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    """Sign every browser out and void every settings link sent so far."""
    subscriber.sign_out_everywhere()
    request.session.flush()
    messages.success(
        request, "Every browser is signed out, and the settings links sent so far no longer work."
    )
    return redirect("email_link")


# ---------------------------------------------------------------------------------------
# The settings page


def numbered_filters(subscriber: Subscriber) -> list[tuple[int, Filter]]:
    return list(enumerate(subscriber.filters.order_by("id"), start=1))


def _focus(form: FilterForm) -> None:
    """Put the cursor back in the filter just saved with an error or previewed: the page
    comes back at that row's anchor (the forms post to ``…#filter-N``)."""
    form.fields["query"].widget.attrs["autofocus"] = True


def manage_page(
    request: HttpRequest,
    subscriber: Subscriber,
    *,
    status: int = 200,
    add_form: FilterForm | None = None,
    add_preview: dict[str, Any] | None = None,
    edit: tuple[int, FilterForm, dict[str, Any] | None] | None = None,
    topics_form: TopicsForm | None = None,
    schedule_form: ScheduleForm | None = None,
) -> HttpResponse:
    """Render the settings page; a bound form passed in replaces the fresh one (errors
    and previews shown in place)."""
    rows = []
    for number, item in numbered_filters(subscriber):
        form = FilterForm(initial={"query": item.query}, prefix=f"f{item.pk}")
        preview = None
        if edit and edit[0] == item.pk:
            form, preview = edit[1], edit[2]
            _focus(form)
        rows.append({"number": number, "filter": item, "form": form, "preview": preview})
    if add_form is not None:
        _focus(add_form)
    context = {
        "subscriber": subscriber,
        "rows": rows,
        "add_form": add_form or FilterForm(prefix="new"),
        "add_preview": add_preview,
        "topics_form": topics_form or TopicsForm(initial={"topics": list(subscriber.topics.all())}),
        "schedule_form": schedule_form or ScheduleForm(instance=subscriber),
        "feed_url": (
            settings.SITE_URL + reverse("feed", args=[subscriber.feed_secret])
            if subscriber.feed_secret
            else ""
        ),
        "digests": [
            (d, digest_web_url(d))
            for d in subscriber.digests.filter(status=Digest.SENT).order_by("-sent_at")[:5]
        ],
    }
    return render(request, "subscriptions/manage.html", context, status=status)


@require_GET
@subscriber_required
def manage(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    return manage_page(request, subscriber)


def _filter_action(request: HttpRequest) -> str:
    return str(request.POST.get("action", "save"))


@require_POST
@subscriber_required
def add_filter(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    """Add a filter (``action=save``) or only show its preview (``action=preview``)."""
    others = [(n, f.query) for n, f in numbered_filters(subscriber)]
    form = FilterForm(request.POST, prefix="new", others=others, adding=True)
    if not form.is_valid():
        return manage_page(request, subscriber, add_form=form, status=400)
    query = form.cleaned_data["query"]
    if _filter_action(request) == "preview":
        if not throttle.allow("preview-ip", throttle.client_ip(request)):
            return too_many(request)
        return manage_page(request, subscriber, add_form=form, add_preview=preview_of(query))
    Filter.objects.create(subscriber=subscriber, query=query)
    messages.success(request, "Filter added.")
    return redirect(reverse("manage") + "#filters")


@require_POST
@subscriber_required
def edit_filter(request: HttpRequest, subscriber: Subscriber, pk: int) -> HttpResponse:
    """Change (``save``), preview (``preview``) or delete (``remove``) one filter."""
    item = get_object_or_404(Filter, pk=pk, subscriber=subscriber)
    action = _filter_action(request)
    if action == "remove":
        item.delete()
        messages.success(request, "Filter removed.")
        return redirect(reverse("manage") + "#filters")
    others = [(n, f.query) for n, f in numbered_filters(subscriber) if f.pk != item.pk]
    form = FilterForm(request.POST, prefix=f"f{item.pk}", others=others, adding=False)
    if not form.is_valid():
        return manage_page(request, subscriber, edit=(item.pk, form, None), status=400)
    query = form.cleaned_data["query"]
    if action == "preview":
        if not throttle.allow("preview-ip", throttle.client_ip(request)):
            return too_many(request)
        return manage_page(request, subscriber, edit=(item.pk, form, preview_of(query)))
    item.query = query
    item.save(update_fields=["query"])
    messages.success(request, "Filter saved.")
    return redirect(reverse("manage") + "#filters")


@require_POST
@subscriber_required
def save_topics(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    form = TopicsForm(request.POST)
    if not form.is_valid():
        return manage_page(request, subscriber, topics_form=form, status=400)
    subscriber.topics.set(form.cleaned_data["topics"])
    messages.success(request, "Topics saved.")
    return redirect(reverse("manage") + "#topics")


@require_POST
@subscriber_required
def save_schedule(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    """Frequency, weekday, hour and timezone; the next digest moves to the new slot."""
    form = ScheduleForm(request.POST, instance=subscriber)
    if not form.is_valid():
        subscriber.refresh_from_db()
        return manage_page(request, subscriber, schedule_form=form, status=400)
    subscriber = form.save()
    subscriber.reschedule()
    messages.success(request, "Schedule saved.")
    return redirect(reverse("manage") + "#schedule")


def _state_action(
    verb: Callable[[Subscriber], Any], message: str
) -> Callable[[HttpRequest], HttpResponse]:
    @require_POST
    @subscriber_required
    def view(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
        verb(subscriber)
        messages.success(request, message)
        return redirect(reverse("manage") + "#status")

    return view


pause = _state_action(Subscriber.pause, "Digests paused. Resume whenever you like.")
resume = _state_action(Subscriber.resume, "Digests resumed.")
unsubscribe_here = _state_action(
    Subscriber.unsubscribe, "You are unsubscribed. You can subscribe again here at any time."
)


@require_POST
@subscriber_required
def reset_feed(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    """Make (or replace) the secret feed address; the old one stops working."""
    had_one = bool(subscriber.feed_secret)
    subscriber.reset_feed_secret()
    messages.success(
        request, "Your feed has a new address." if had_one else "Your feed address is ready."
    )
    return redirect(reverse("manage") + "#feed")


@require_GET
@subscriber_required
def download_data(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    """Everything stored about the subscriber, as a JSON attachment."""
    digests = subscriber.digests.order_by("created_at").prefetch_related("items__paper")
    data = {
        "email": subscriber.email,
        "state": subscriber.state,
        "created_at": subscriber.created_at.isoformat(),
        "confirmed_at": subscriber.confirmed_at and subscriber.confirmed_at.isoformat(),
        "paused_at": subscriber.paused_at and subscriber.paused_at.isoformat(),
        "unsubscribed_at": subscriber.unsubscribed_at and subscriber.unsubscribed_at.isoformat(),
        "schedule": {
            "frequency": subscriber.frequency,
            "weekday": subscriber.get_weekday_display(),
            "hour": subscriber.hour,
            "timezone": subscriber.timezone,
            "next_digest_at": subscriber.next_digest_at and subscriber.next_digest_at.isoformat(),
        },
        "filters": [
            {"query": f.query, "created_at": f.created_at.isoformat()}
            for f in subscriber.filters.order_by("id")
        ],
        "topics": [{"name": t.name, "slug": t.slug} for t in subscriber.topics.all()],
        "digests": [
            {
                "period": d.period,
                "status": d.status,
                "sent_at": d.sent_at and d.sent_at.isoformat(),
                "papers": [
                    {
                        "title": i.paper.title,
                        "url": i.paper.url,
                        "reason": i.reason,
                        "suggested": i.suggested,
                    }
                    for i in d.items.all()
                ],
            }
            for d in digests
        ],
        # The learned profile (docs/relevance.md): the values themselves, as stored.
        "relevance_profile": {
            "updated_at": subscriber.profile_updated_at
            and subscriber.profile_updated_at.isoformat(),
            "float32_values": from_bytes(subscriber.profile or b"").tolist(),
        },
    }
    response = HttpResponse(
        json.dumps(data, indent=2, ensure_ascii=False), content_type="application/json"
    )
    response["Content-Disposition"] = 'attachment; filename="my-digest-data.json"'
    return response


@require_http_methods(["GET", "POST"])
@subscriber_required
def delete_me(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    """GET asks; POST erases the address, filters and digests, keeping anonymous counts."""
    if request.method == "GET":
        return render(request, "subscriptions/delete.html", {"subscriber": subscriber})
    erasure.erase(subscriber)
    request.session.flush()
    return render(request, "subscriptions/deleted.html")


# ---------------------------------------------------------------------------------------
# Preview, digest in the browser


@require_GET
def preview_json(request: HttpRequest) -> JsonResponse:
    """``GET /preview.json?q=QUERY`` → ``{"ok": true, "count", "days", "papers": [{"title",
    "url", "upvotes", "published_on"}]}`` for the recent papers the query matches, or
    ``{"ok": false, "error": {"message", "position", "column"}}`` for a query that does
    not parse (``position`` 0-based, ``column`` 1-based). 429 when throttled."""
    if not throttle.allow("preview-ip", throttle.client_ip(request)):
        return JsonResponse({"ok": False, "error": {"message": "too many requests"}}, status=429)
    text = request.GET.get("q", "").strip()
    try:
        parse_query(text)
    except QueryError as error:
        problem = QueryProblem.of(text, error)
        return JsonResponse(
            {
                "ok": False,
                "error": {
                    "message": problem.message,
                    "position": problem.position,
                    "column": problem.column,
                },
            }
        )
    count, papers = preview.preview(text)
    return JsonResponse(
        {
            "ok": True,
            "count": count,
            "days": PREVIEW_DAYS,
            "papers": [
                {
                    "title": p.title,
                    "url": p.url,
                    "upvotes": p.upvotes,
                    "published_on": p.published_on and p.published_on.isoformat(),
                }
                for p in papers
            ],
        }
    )


@require_GET
def digest_web(request: HttpRequest, token: str) -> HttpResponse:
    """A sent digest as its email's HTML part ("view in browser"), without anything of
    the subscriber's: no address (the footer names "the recipient") and no link that
    acts for them (its unsubscribe and settings links lead to the "email me my link"
    page), since anyone given this address can open it. 404 once the subscriber
    unsubscribed or was suppressed, and ``DIGEST_WEB_MAX_AGE`` seconds after sending."""
    try:
        digest_id = read_digest_token(token)
    except signing.BadSignature:
        return bad_link(request, "invalid")
    digest = Digest.objects.select_related("subscriber").filter(pk=digest_id).first()
    if digest is None or digest.status != Digest.SENT or digest.sent_at is None:
        raise Http404("no such digest")
    if digest.subscriber.state not in (State.ACTIVE, State.PAUSED):
        raise Http404("no such digest")
    if digest.sent_at is None or digest.sent_at < archive_cutoff():
        raise Http404("this digest is older than the archive keeps")
    if (timezone.now() - digest.sent_at).total_seconds() > settings.DIGEST_WEB_MAX_AGE:
        raise Http404("no such digest")
    message = digest_message(
        digest, personal_links=False, links={"email": "the recipient"}, fit=False
    )
    html = next(content for content, mimetype in message.alternatives if mimetype == "text/html")
    response = HttpResponse(html)
    response["Content-Security-Policy"] = email_html_policy()
    response["X-Robots-Tag"] = "noindex"
    response["Cache-Control"] = "private"
    return response


# ---------------------------------------------------------------------------------------
# One-click unsubscribe


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """The ``List-Unsubscribe`` URL.

    GET shows a page with a button (mail scanners open links, so a GET changes
    nothing). POST unsubscribes at once — the RFC 8058 one-click POST with body
    ``List-Unsubscribe=One-Click`` as well as the button — with no cookie, login, CSRF
    token or redirect. A tampered, foreign or expired token gets a 400 page. Once
    unsubscribed, the link says so and offers a one-click undo (a POST with ``undo``).
    """
    try:
        subscriber_uuid = read_token(token, UNSUBSCRIBE, settings.UNSUBSCRIBE_LINK_MAX_AGE)
        subscriber = Subscriber.objects.get(uuid=subscriber_uuid)
    except (signing.BadSignature, Subscriber.DoesNotExist):
        return bad_link(request, "invalid")
    if request.method == "POST" and request.POST.get("undo"):
        # The undo button of the "unsubscribed" page: the same signed link, so only
        # someone who got the email can press it. A suppression is not lifted here.
        if subscriber.state == State.UNSUBSCRIBED:
            subscriber.resume()
        return render(request, "subscriptions/resubscribed.html", {"subscriber": subscriber})
    if request.method == "POST":
        subscriber.unsubscribe()
        return render(request, "subscriptions/unsubscribed.html", {"subscriber": subscriber})
    if subscriber.state == State.UNSUBSCRIBED:
        context = {"subscriber": subscriber, "already": True}
        return render(request, "subscriptions/unsubscribed.html", context)
    return render(request, "subscriptions/unsubscribe.html", {"subscriber": subscriber})


@cache
def _filter_help_html() -> str:
    """``docs/query-language.md`` up to its developers' section, as HTML (Python-Markdown,
    tables extension). The file is the project's own text; raw HTML in it is escaped."""
    text = (settings.BASE_DIR / "docs" / "query-language.md").read_text(encoding="utf-8")
    text = text.split("\n## For developers", 1)[0]
    md = markdown.Markdown(extensions=["tables"], output_format="html")
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    return md.convert(text)


@require_safe
def filter_help(request: HttpRequest) -> HttpResponse:
    """The filter language, for subscribers: every rule with examples."""
    return render(
        request, "subscriptions/filter_help.html", {"help_html": mark_safe(_filter_help_html())}
    )
