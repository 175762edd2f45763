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
from zoneinfo import ZoneInfo

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

from digest import tasks as digest_tasks
from digest.delivery.extra import TooSoon, ask_for_digest
from digest.delivery.message import digest_message
from digest.delivery.render import SUMMARY_CHARS, authors_line, cut_at_sentence, edition_label
from digest.matching import preview
from digest.matching.preview import PREVIEW_DAYS
from digest.matching.query import QueryError, parse_query, query_warnings
from digest.models import Digest, Feedback, Paper, archive_cutoff
from digest.relevance.vectors import from_bytes

from . import erasure, signup, tasks, throttle
from .feedback import RECENT_DAYS, arxiv_id_of, recent_papers, record_vote
from .forms import (
    DigestChoicesForm,
    EmailLinkForm,
    FilterForm,
    PickPaperForm,
    QueryProblem,
    ScheduleForm,
    SignupForm,
    SuggestionsForm,
    TopicsForm,
)
from .middleware import email_html_policy
from .models import SESSION_KEY, Filter, State, Subscriber
from .tokens import (
    CONFIRM,
    MANAGE,
    UNSUBSCRIBE,
    digest_web_url,
    feedback_url,
    offer_fingerprint,
    read_digest_token,
    read_feedback_token,
    read_link_token,
    read_offer_token,
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
    result = preview.preview_result(text)
    return {
        "query": text,
        "count": result.count,
        "papers": result.papers,
        "days": PREVIEW_DAYS,
        "phrase": result.phrase,
        "together": result.together,
        "as_phrase": result.as_phrase,
        "warnings": result.warnings,
    }


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
            # Said for the filters alone, the same whatever the address.
            for warning in form.query_warnings:
                messages.warning(request, warning + ".")
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
    # The first digest at once, from the last days' papers (once per subscriber, ever).
    digest_tasks.send_extra_digest.delay_on_commit(subscriber.pk, Digest.WELCOME)
    start_session(request, subscriber)
    messages.success(
        request,
        "Your address is confirmed. Welcome aboard! A first digest of the last days' "
        "papers is on its way.",
    )
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
    # From a digest opened in the browser: its links cannot act for anyone (say why).
    wanted = request.GET.get("for", "")
    from_browser = request.GET.get("from") == "browser"
    context = {
        "form": form,
        "from_browser": from_browser,
        "wanted": wanted if wanted in ("unsubscribe", "settings") else "settings",
    }
    if request.method == "POST":
        if not throttle.allow("link-ip", throttle.client_ip(request)):
            return too_many(request)
        if form.is_valid():
            tasks.email_link.delay(form.cleaned_data["email"])
            return redirect("email_link_sent")
    status = 400 if form.is_bound else 200
    return render(request, "subscriptions/email_link.html", context, status=status)


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


@require_http_methods(["GET", "POST"])
def accept_offer(request: HttpRequest, token: str) -> HttpResponse:
    """The button in the settings-link email sent when a subscribed address signed up
    again: GET shows the new choices beside the current ones with two buttons; POST
    replaces the filters, topics and schedule with them (``replace``) or adds their
    filters and topics (``add``), signs the browser in and opens the settings. Only the
    latest offer's link works, until it is used or the subscriber signs out of every
    browser, for ``MANAGE_LINK_MAX_AGE`` seconds."""
    try:
        subscriber_uuid, counter, fingerprint = read_offer_token(
            token, settings.MANAGE_LINK_MAX_AGE
        )
    except signing.SignatureExpired:
        return bad_link(request, "expired")
    except signing.BadSignature:
        return bad_link(request, "invalid")
    subscriber = Subscriber.objects.filter(uuid=subscriber_uuid).first()
    if subscriber is None:
        return bad_link(request, "invalid")
    if subscriber.link_counter != counter:
        return bad_link(request, "signed_out")
    if (
        subscriber.offered_signup is None
        or offer_fingerprint(subscriber.offered_signup) != fingerprint
    ):
        return bad_link(request, "offer_gone")
    if request.method == "GET":
        context = {
            "subscriber": subscriber,
            "filters": list(subscriber.filters.order_by("pk").values_list("query", flat=True)),
            "topics": list(subscriber.topics.order_by("name").values_list("name", flat=True)),
            "schedule": signup.schedule_text(subscriber),
            **signup.offer_context(subscriber),
        }
        return render(request, "subscriptions/accept_offer.html", context)
    how = request.POST.get("how")
    if how not in ("replace", "add"):
        return HttpResponse("Choose replace or add.", status=400, content_type="text/plain")
    if not subscriber.accept_offer(replace=how == "replace"):
        return bad_link(request, "offer_gone")
    start_session(request, subscriber)
    messages.success(
        request,
        "Your filters, topics and schedule are now the new ones."
        if how == "replace"
        else "The new filters and topics are added to yours.",
    )
    return redirect(reverse("manage") + "#filters")


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


# Every filter row and the "add" row share one form (``filter-rows`` in manage.html):
# whichever button is pressed, the browser sends every row's text, so edits made in other
# rows are saved with it (or kept on the page with their errors), never dropped.
NEW_FILTER_KEY = "subscriptions.new_filter"


def _row_edits(
    request: HttpRequest, subscriber: Subscriber, *, skip: int | None = None
) -> dict[int, FilterForm]:
    """The rows (filter id → bound form) whose text the request changed, other than
    filter ``skip``. Each is checked against the other rows as they will be: their new
    text where changed, else the stored one."""
    rows = [(n, f) for n, f in numbered_filters(subscriber) if f.pk != skip]
    sent = {f.pk: request.POST.get(f"f{f.pk}-query") for _, f in rows}
    intended = {f.pk: (sent[f.pk] if sent[f.pk] is not None else f.query) for _, f in rows}
    if skip is not None and request.POST.get(f"f{skip}-query") is not None:
        intended[skip] = request.POST[f"f{skip}-query"]
    numbers = {f.pk: n for n, f in numbered_filters(subscriber)}
    edits = {}
    for _, item in rows:
        text = sent[item.pk]
        if text is None or text.strip() == item.query:
            continue
        others = [(numbers[pk], q) for pk, q in intended.items() if pk != item.pk]
        edits[item.pk] = FilterForm(request.POST, prefix=f"f{item.pk}", others=others, adding=False)
    return edits


def _keep_new_filter(request: HttpRequest) -> None:
    """Carry the text typed in "Add a filter" over a redirect: a row's button does not
    add it, and does not drop it either."""
    text = str(request.POST.get("new-query", "")).strip()
    if text:
        request.session[NEW_FILTER_KEY] = text[:1000]


def _save_edits(edits: dict[int, FilterForm]) -> list[int]:
    """Save the valid ``edits``; returns the ids of the filters changed."""
    changed = []
    for pk, form in edits.items():
        Filter.objects.filter(pk=pk).update(query=form.cleaned_data["query"])
        changed.append(pk)
    return changed


def _saved_message(base: str, subscriber: Subscriber, changed: list[int]) -> str:
    numbers = {f.pk: n for n, f in numbered_filters(subscriber)}
    shown = sorted(numbers[pk] for pk in changed if pk in numbers)
    if not shown:
        return base
    names = ", ".join(str(n) for n in shown)
    return f"{base} Your changes to filter{'s' if len(shown) > 1 else ''} {names} were saved too."


def manage_page(
    request: HttpRequest,
    subscriber: Subscriber,
    *,
    status: int = 200,
    add_form: FilterForm | None = None,
    add_preview: dict[str, Any] | None = None,
    edit: tuple[int, FilterForm, dict[str, Any] | None] | None = None,
    kept: dict[int, FilterForm] | None = None,
    topics_form: TopicsForm | None = None,
    schedule_form: ScheduleForm | None = None,
    choices_form: DigestChoicesForm | None = None,
    pick_form: PickPaperForm | None = None,
    suggestions_form: SuggestionsForm | None = None,
) -> HttpResponse:
    """Render the settings page; a bound form passed in replaces the fresh one (errors
    and previews shown in place). ``kept`` holds other rows' edits, shown as typed
    (with their errors, if any) and not saved."""
    rows = []
    for number, item in numbered_filters(subscriber):
        form = FilterForm(initial={"query": item.query}, prefix=f"f{item.pk}")
        preview = None
        if edit and edit[0] == item.pk:
            form, preview = edit[1], edit[2]
            _focus(form)
        elif kept and item.pk in kept:
            form = kept[item.pk]
        form.fields["query"].widget.attrs["form"] = "filter-rows"
        unsaved = form.is_bound and form.data.get(f"f{item.pk}-query", "").strip() != item.query
        rows.append(
            {
                "number": number,
                "filter": item,
                "form": form,
                "preview": preview,
                "unsaved": unsaved,
            }
        )
    if add_form is not None:
        _focus(add_form)
    else:
        add_form = FilterForm(
            prefix="new", initial={"query": request.session.pop(NEW_FILTER_KEY, "")}
        )
    add_form.fields["query"].widget.attrs["form"] = "filter-rows"
    context = {
        "subscriber": subscriber,
        "rows": rows,
        "add_form": add_form,
        "add_preview": add_preview,
        "topics_form": topics_form or TopicsForm(initial={"topics": list(subscriber.topics.all())}),
        "schedule_form": schedule_form or ScheduleForm(instance=subscriber),
        "choices_form": choices_form or DigestChoicesForm(instance=subscriber),
        "feed_url": (
            settings.SITE_URL + reverse("feed", args=[subscriber.feed_secret])
            if subscriber.feed_secret
            else ""
        ),
        "digests": [
            (d, digest_web_url(d), edition_label(d.period))
            for d in subscriber.digests.filter(status=Digest.SENT).order_by("-sent_at")[:5]
        ],
        **likes_context(request, subscriber, pick_form, suggestions_form),
    }
    return render(request, "subscriptions/manage.html", context, status=status)


@require_GET
@subscriber_required
def manage(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    return manage_page(request, subscriber)


# ---------------------------------------------------------------------------------------
# Relevance feedback: votes from a digest's links, and "papers like these" by hand

VOTES_SHOWN = 200


def likes_context(
    request: HttpRequest,
    subscriber: Subscriber,
    pick_form: PickPaperForm | None,
    suggestions_form: SuggestionsForm | None,
) -> dict[str, Any]:
    """The settings page's "papers like these" section (``subscriptions/_likes.html``):
    the subscriber's votes, newest first (at most :data:`VOTES_SHOWN`), the recent
    papers to pick from, searched by ``?papers=WORDS``, and the two forms."""
    search = request.GET.get("papers", "")[:200].strip()
    votes = subscriber.feedback.select_related("paper").order_by("-updated_at", "-id")
    voted = set(subscriber.feedback.values_list("paper_id", flat=True))
    return {
        "votes": votes[:VOTES_SHOWN],
        "votes_count": len(voted),
        "pick_search": search,
        "pick_papers": [(p, p.pk in voted) for p in recent_papers(search)],
        "pick_days": RECENT_DAYS,
        "pick_form": pick_form or PickPaperForm(),
        "suggestions_form": suggestions_form or SuggestionsForm(instance=subscriber),
    }


def _likes_anchor() -> str:
    return reverse("manage") + "#likes"


@require_POST
@subscriber_required
def pick_paper(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    """Add a paper the subscriber likes, as a "more like this" vote picked by hand: by
    its id from the recent papers list (``paper``), or by a pasted arXiv id, arXiv URL
    or Hugging Face papers link (``reference``). An unknown paper is a 400 with the
    typed text kept in the field."""
    form = PickPaperForm(request.POST)
    paper = None
    if form.is_valid():
        paper_id, reference = form.cleaned_data["paper"], form.cleaned_data["reference"]
        if paper_id:
            paper = Paper.objects.filter(pk=paper_id, hidden_at__isnull=True).first()
            if paper is None:
                form.add_error(None, "That paper is no longer available. Pick another one.")
        else:
            arxiv_id = arxiv_id_of(reference)
            if arxiv_id is None:
                form.add_error(
                    "reference",
                    "That is not an arXiv id or a link to an arXiv or Hugging Face paper page. "
                    "Paste something like 2401.01234 or https://huggingface.co/papers/2401.01234.",
                )
            else:
                paper = Paper.objects.filter(arxiv_id=arxiv_id, hidden_at__isnull=True).first()
                if paper is None:
                    form.add_error(
                        "reference",
                        f"We have no paper arXiv:{arxiv_id} yet: only papers that appeared on "
                        "the pages we follow can be added. Try again in a few days, or pick "
                        "one of the recent papers below.",
                    )
    if paper is None:
        return manage_page(request, subscriber, pick_form=form, status=400)
    record_vote(subscriber, paper, Feedback.MORE, source=Feedback.PICKED)
    messages.success(request, f"Added “{paper.title}” to the papers you like.")
    return redirect(_likes_anchor())


@require_POST
@subscriber_required
def undo_vote(request: HttpRequest, subscriber: Subscriber, pk: int) -> HttpResponse:
    """Forget one of the subscriber's votes (404 for anyone else's)."""
    row = get_object_or_404(Feedback.objects.select_related("paper"), pk=pk, subscriber=subscriber)
    row.delete()
    messages.success(request, f"Forgot your vote on “{row.paper.title}”.")
    return redirect(_likes_anchor())


@require_POST
@subscriber_required
def save_suggestions(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    """How many "you may also like" papers a digest may add (0–10)."""
    form = SuggestionsForm(request.POST, instance=subscriber)
    if not form.is_valid():
        subscriber.refresh_from_db()
        return manage_page(request, subscriber, suggestions_form=form, status=400)
    form.save()
    messages.success(request, "Suggestions saved.")
    return redirect(_likes_anchor())


@require_http_methods(["GET", "HEAD", "POST"])
def feedback(request: HttpRequest, token: str) -> HttpResponse:
    """A digest's "More like this" / "Less like this" link
    (:func:`subscriptions.tokens.feedback_url`).

    GET (and HEAD) only shows the paper, the vote the link casts and one button: mail scanners
    (Microsoft Safe Links fetches every link of a message, twice) must not vote. The
    button POSTs (CSRF-protected) and records the vote, replacing an earlier one on the
    same paper; then the page comes back (POST/redirect/GET) saying so. A tampered,
    foreign or expired link, a subscriber who is gone, unsubscribed or suppressed, and a
    paper no longer kept or hidden get a 400 page, and nothing is recorded. The link
    acts for the subscriber it names, whoever is signed in in this browser.
    """
    try:
        subscriber_uuid, paper_id, vote = read_feedback_token(token)
    except signing.SignatureExpired:
        return bad_link(request, "expired")
    except signing.BadSignature:
        return bad_link(request, "invalid")
    subscriber = Subscriber.objects.filter(uuid=subscriber_uuid).first()
    if subscriber is None:
        return bad_link(request, "invalid")
    if subscriber.state not in (State.ACTIVE, State.PAUSED):
        return bad_link(request, "not_subscribed")
    paper = Paper.objects.filter(pk=paper_id, hidden_at__isnull=True).first()
    if paper is None:
        return bad_link(request, "paper_gone")
    if request.method == "POST":
        record_vote(subscriber, paper, vote)
        return redirect(request.path + "?voted=1")
    current = Feedback.objects.filter(subscriber=subscriber, paper=paper).first()
    signed_in = session_subscriber(request)
    summary, _ = cut_at_sentence(paper.abstract, SUMMARY_CHARS)
    context = {
        "paper": paper,
        "authors": authors_line([str(a) for a in paper.authors or ()], paper.authors_count),
        "summary": summary,
        "vote": vote,
        "vote_label": dict(Feedback.VOTES)[vote],
        "current": current,
        "just_voted": bool(request.GET.get("voted")) and current is not None,
        "other_url": feedback_url(subscriber.uuid, paper.pk, -vote),
        "signed_in": signed_in is not None and signed_in.pk == subscriber.pk,
    }
    response = render(request, "subscriptions/feedback.html", context)
    response["X-Robots-Tag"] = "noindex"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _filter_action(request: HttpRequest) -> str:
    return str(request.POST.get("action", "save"))


@require_POST
@subscriber_required
def add_filter(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    """Add a filter (``action=save``) or only show its preview (``action=preview``); the
    other rows' edits sent with it are saved too (or kept, with their errors). Enter in
    any filter field (``action=enter``, the form's first button) saves every row and
    adds the new filter when one was typed."""
    edits = _row_edits(request, subscriber)
    action = _filter_action(request)
    if action == "enter" and not str(request.POST.get("new-query", "")).strip():
        if not all(f.is_valid() for f in edits.values()):
            return manage_page(request, subscriber, kept=edits, status=400)
        changed = _save_edits(edits)
        numbers = sorted(n for n, f in numbered_filters(subscriber) if f.pk in changed)
        messages.success(
            request,
            f"Filter{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))} saved."
            if numbers
            else "Nothing changed.",
        )
        return redirect(reverse("manage") + "#filters")
    intended = [
        (n, edits[f.pk].data.get(f"f{f.pk}-query", f.query) if f.pk in edits else f.query)
        for n, f in numbered_filters(subscriber)
    ]
    form = FilterForm(request.POST, prefix="new", others=intended, adding=True)
    if action == "preview":
        if not form.is_valid():
            return manage_page(request, subscriber, add_form=form, kept=edits, status=400)
        if not throttle.allow("preview-ip", throttle.client_ip(request)):
            return too_many(request)
        query = form.cleaned_data["query"]
        return manage_page(
            request, subscriber, add_form=form, add_preview=preview_of(query), kept=edits
        )
    valid = [f.is_valid() for f in (form, *edits.values())]
    if not all(valid):
        return manage_page(request, subscriber, add_form=form, kept=edits, status=400)
    changed = _save_edits(edits)
    query = form.cleaned_data["query"]
    Filter.objects.create(subscriber=subscriber, query=query)
    messages.success(request, _saved_message("Filter added.", subscriber, changed))
    for warning in query_warnings(query):
        messages.warning(request, f"Filter “{query}”: {warning}.")
    return redirect(reverse("manage") + "#filters")


@require_POST
@subscriber_required
def edit_filter(request: HttpRequest, subscriber: Subscriber, pk: int) -> HttpResponse:
    """Change (``save``), preview (``preview``) or delete (``remove``) one filter. The
    other rows' edits sent with it are saved with a save or a removal, all or none
    (an error keeps every edit on the page, with the error at its row), and kept on the
    page by a preview; text typed in "Add a filter" is kept, not added."""
    item = get_object_or_404(Filter, pk=pk, subscriber=subscriber)
    action = _filter_action(request)
    if action == "remove":
        number = dict((f.pk, n) for n, f in numbered_filters(subscriber))[item.pk]
        item.delete()
        edits = _row_edits(request, subscriber)
        if not all(f.is_valid() for f in edits.values()):
            messages.success(request, f"Filter {number} removed.")
            return manage_page(request, subscriber, kept=edits, status=400)
        changed = _save_edits(edits)
        _keep_new_filter(request)
        messages.success(request, _saved_message("Filter removed.", subscriber, changed))
        return redirect(reverse("manage") + "#filters")
    edits = _row_edits(request, subscriber, skip=item.pk)
    numbers = {f.pk: n for n, f in numbered_filters(subscriber)}
    others = [
        (numbers[f.pk], edits[f.pk].data.get(f"f{f.pk}-query") if f.pk in edits else f.query)
        for _, f in numbered_filters(subscriber)
        if f.pk != item.pk
    ]
    form = FilterForm(request.POST, prefix=f"f{item.pk}", others=others, adding=False)
    if action == "preview":
        if not form.is_valid():
            return manage_page(
                request, subscriber, edit=(item.pk, form, None), kept=edits, status=400
            )
        if not throttle.allow("preview-ip", throttle.client_ip(request)):
            return too_many(request)
        query = form.cleaned_data["query"]
        return manage_page(request, subscriber, edit=(item.pk, form, preview_of(query)), kept=edits)
    valid = [f.is_valid() for f in (form, *edits.values())]
    if not all(valid):
        return manage_page(request, subscriber, edit=(item.pk, form, None), kept=edits, status=400)
    item.query = form.cleaned_data["query"]
    item.save(update_fields=["query"])
    changed = _save_edits(edits)
    _keep_new_filter(request)
    messages.success(request, _saved_message("Filter saved.", subscriber, changed))
    for warning in query_warnings(item.query):
        messages.warning(request, f"Filter “{item.query}”: {warning}.")
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


@require_POST
@subscriber_required
def save_choices(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    """What each digest carries: papers per digest, strong matches only, the "nothing
    matched" note, feed only. Applies from the next digest planned."""
    form = DigestChoicesForm(request.POST, instance=subscriber)
    if not form.is_valid():
        subscriber.refresh_from_db()
        return manage_page(request, subscriber, choices_form=form, status=400)
    subscriber = form.save()
    if subscriber.feed_only and not subscriber.feed_secret:
        subscriber.reset_feed_secret()
    messages.success(
        request,
        "Saved. Your digests now go to your private feed only, with no email."
        if subscriber.feed_only
        else "Saved. Your next digest follows these choices.",
    )
    return redirect(reverse("manage") + "#choices")


@require_POST
@subscriber_required
def send_now(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    """ "Send me one now": a digest of the last days' papers not sent yet, at once. Once
    an hour per subscriber (:func:`digest.delivery.extra.ask_for_digest`) and
    ``THROTTLES["send-now"]`` for the whole site; the scheduled digest still comes."""
    if subscriber.state != State.ACTIVE:
        messages.error(request, "Digests are not being sent to you now; resume them first.")
        return redirect(reverse("manage") + "#send-now")
    try:
        digest = ask_for_digest(subscriber)
    except TooSoon as exc:
        again = timezone.localtime(exc.again_at, ZoneInfo(subscriber.timezone))
        messages.error(
            request,
            "You asked for a digest less than an hour ago. You can ask again after "
            f"{again:%H:%M} ({subscriber.timezone}).",
        )
        return redirect(reverse("manage") + "#send-now")
    if not throttle.allow("send-now", "site"):
        digest.delete()  # not sent: the subscriber may ask again
        messages.error(
            request,
            "Many people asked for a digest this hour; please try again later. "
            "Your scheduled digest comes as usual.",
        )
        return redirect(reverse("manage") + "#send-now")
    digest_tasks.send_extra_digest.delay_on_commit(subscriber.pk, digest.period)
    where = "your feed" if subscriber.feed_only else "your inbox"
    messages.success(
        request,
        f"A digest of the last days' papers you have not had yet is on its way to {where}; "
        "it takes a minute or two.",
    )
    return redirect(reverse("manage") + "#send-now")


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
        "digest_choices": {
            "max_papers": subscriber.max_papers,
            "strong_only": subscriber.strong_only,
            "send_empty": subscriber.send_empty,
            "feed_only": subscriber.feed_only,
        },
        # Choices of a later signup of this address, waiting for the owner's button.
        "offered_signup": subscriber.offered_signup,
        "suggestions": subscriber.suggestions,
        "votes": [
            {
                "paper": v.paper.title,
                "arxiv_id": v.paper.arxiv_id,
                "url": v.paper.url,
                "vote": "more" if v.vote == Feedback.MORE else "less",
                "source": v.source,
                "created_at": v.created_at.isoformat(),
                "updated_at": v.updated_at.isoformat(),
            }
            for v in subscriber.feedback.select_related("paper").order_by("created_at", "id")
        ],
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
    not parse (``position`` 0-based, ``column`` 1-based). A valid query's answer also
    has ``warnings`` (sentences, :func:`digest.matching.query.query_warnings`), and for
    a filter of plain words ``phrase`` (it in quotes), ``together`` (how many matches
    hold its words together, as the phrase or within a few words; they are listed first)
    and ``as_phrase`` (how many hold the phrase itself), else ``null``, 0 and 0. 429
    when throttled."""
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
    result = preview.preview_result(text)
    papers = result.papers
    return JsonResponse(
        {
            "ok": True,
            "count": result.count,
            "days": PREVIEW_DAYS,
            "phrase": result.phrase,
            "together": result.together,
            "as_phrase": result.as_phrase,
            "warnings": list(result.warnings),
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
