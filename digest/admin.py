from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, F, OuterRef, QuerySet, Subquery
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from digest.matching.blocked import flag_filters_containing
from digest.matching.query import QueryError, parse_query
from digest.matching.topics import (
    PREVIEW_DAYS,
    preview_similarity,
    preview_topic_query,
    retag_topic,
)
from digest.matching.trend import upvote_growth
from digest.models import (
    BlockedTerm,
    DeliveryEvent,
    Digest,
    DigestItem,
    IngestRun,
    Paper,
    Sighting,
    Source,
    Topic,
)
from subscriptions.models import Filter

# --- Moderation: papers, topics, blocked terms ------------------------------------------
# Styles of the state badges and the dashboard; a stylesheet, since the Content Security
# Policy refuses inline styles.
MODERATION_CSS = {"all": ["admin-dashboard/moderation.css"]}


class PaperStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("visible", "Visible"), ("pinned", "Pinned"), ("hidden", "Hidden")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Paper]) -> QuerySet[Paper]:
        if self.value() == "visible":
            return queryset.filter(hidden_at__isnull=True)
        if self.value() == "pinned":
            return queryset.filter(hidden_at__isnull=True, pinned_at__isnull=False)
        if self.value() == "hidden":
            return queryset.filter(hidden_at__isnull=False)
        return queryset


class PaperSourceFilter(admin.SimpleListFilter):
    """Papers seen at least once on a configured source."""

    title = "source"
    parameter_name = "source"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(str(pk), name) for pk, name in Source.objects.values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Paper]) -> QuerySet[Paper]:
        if self.value():
            return queryset.filter(
                pk__in=Sighting.objects.filter(run__from_source_id=self.value()).values("paper_id")
            )
        return queryset


class HideForm(forms.Form):
    reason = forms.CharField(
        max_length=200,
        help_text="Kept with the paper and shown to other moderators.",
        widget=forms.TextInput(attrs={"size": 60, "autofocus": True}),
    )


class AuthorsField(forms.CharField):
    """A list of author names edited as text, one name per line."""

    widget = forms.Textarea(attrs={"rows": 6, "cols": 60})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        return [line.strip() for line in str(value or "").splitlines() if line.strip()]


class PaperForm(forms.ModelForm):
    authors = AuthorsField(required=False, help_text="One name per line, in the paper's order.")

    class Meta:
        model = Paper
        fields = ["title", "abstract", "authors", "topics"]


def _state_badge(state: str, text: str | None = None) -> str:
    return format_html('<span class="mod-badge mod-badge--{}">{}</span>', state, text or state)


@admin.register(Paper)
class PaperAdmin(admin.ModelAdmin):
    form = PaperForm
    list_display = (
        "short_title",
        "state_badge",
        "upvotes",
        "growth",
        "recipients",
        "topic_names",
        "published_on",
        "first_seen_at",
        "link",
    )
    list_display_links = ("short_title",)
    # Pinned papers lead every digest: they lead this list too.
    ordering = (F("pinned_at").desc(nulls_last=True), "-first_seen_at", "-pk")
    search_fields = ("title", "arxiv_id")
    list_filter = (
        PaperStateFilter,
        PaperSourceFilter,
        ("first_seen_at", admin.DateFieldListFilter),
        "published_on",
        "topics",
    )
    list_per_page = 50
    actions = ["hide_papers", "unhide_papers", "pin_papers", "unpin_papers", "merge_two_papers"]
    fieldsets = [
        (None, {"fields": ["title", "abstract", "authors", "topics"]}),
        (
            "Moderation",
            {"fields": ["state_badge", "hidden_at", "hidden_reason", "pinned_at"]},
        ),
        (
            "Identity and sightings",
            {
                "fields": [
                    "arxiv_id",
                    "title_key",
                    "links",
                    "upvotes",
                    "published_on",
                    "first_seen_at",
                    "last_seen_at",
                ]
            },
        ),
        (
            "From Hugging Face and arXiv",
            {
                "fields": [
                    "origins",
                    "ai_summary",
                    "categories",
                    "arxiv_version",
                    "comment",
                    "journal_ref",
                    "doi",
                ]
            },
        ),
    ]
    readonly_fields = (
        "state_badge",
        "hidden_at",
        "hidden_reason",
        "pinned_at",
        "arxiv_id",
        "title_key",
        "links",
        "upvotes",
        "first_seen_at",
        "last_seen_at",
        "origins",
        "ai_summary",
        "categories",
        "arxiv_version",
        "comment",
        "journal_ref",
        "doi",
    )
    filter_horizontal = ("topics",)

    class Media:
        css = MODERATION_CSS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Paper]:
        sent_to = (
            DigestItem.objects.filter(paper=OuterRef("pk"))
            .order_by()
            .values("paper")
            .annotate(n=Count("pk"))
            .values("n")[:1]
        )
        return (
            super()
            .get_queryset(request)
            .annotate(n_recipients=Subquery(sent_to))
            .prefetch_related("topics")
        )

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        # Upvotes gained between each listed paper's last two sightings: a few queries for
        # the page, not per row.
        gained = upvote_growth(p.pk for p in changelist.result_list)
        for paper in changelist.result_list:
            paper.gained = gained.get(paper.pk, 0)
        return changelist

    @admin.display(description="title", ordering="title")
    def short_title(self, paper: Paper) -> str:
        return format_html(
            '<span class="mod-title" title="{}">{}</span>',
            paper.title,
            Truncator(paper.title).chars(90),
        )

    @admin.display(description="growth")
    def growth(self, paper: Paper) -> str:
        gained = getattr(paper, "gained", 0)
        return f"+{gained}" if gained > 0 else str(gained) if gained else "–"

    @admin.display(description="sent to", ordering="n_recipients")
    def recipients(self, paper: Paper) -> int:
        return paper.n_recipients or 0  # type: ignore[attr-defined]

    @admin.display(description="topics")
    def topic_names(self, paper: Paper) -> str:
        return ", ".join(t.name for t in paper.topics.all()) or "–"

    @admin.display(description="link")
    def link(self, paper: Paper) -> str:
        return format_html('<a href="{}" rel="noopener" target="_blank">open</a>', paper.url)

    def response_change(self, request: HttpRequest, obj: Paper) -> Any:
        """The paper page's own Hide, Show again, Pin and Unpin buttons."""
        if "_hide" in request.POST:
            reason = request.POST.get("hide_reason", "").strip()
            if not reason:
                self.message_user(request, "Give a reason to hide a paper.", messages.ERROR)
                return HttpResponseRedirect(request.path)
            obj.hide(reason)
            self.log_change(request, obj, f"Hidden: {reason[:200]}")
            self.message_user(request, f"Hidden from all digests: {reason[:200]}", messages.SUCCESS)
            return HttpResponseRedirect(request.path)
        if "_unhide" in request.POST:
            obj.unhide()
            self.log_change(request, obj, "Shown again")
            self.message_user(request, "May go out in digests again.", messages.SUCCESS)
            return HttpResponseRedirect(request.path)
        if "_pin" in request.POST:
            try:
                obj.pin()
            except ValueError:
                self.message_user(request, "A hidden paper cannot be pinned.", messages.ERROR)
            else:
                self.log_change(request, obj, "Pinned")
                self.message_user(
                    request, "Pinned to the top of the next digests.", messages.SUCCESS
                )
            return HttpResponseRedirect(request.path)
        if "_unpin" in request.POST:
            obj.unpin()
            self.log_change(request, obj, "Unpinned")
            self.message_user(request, "Unpinned.", messages.SUCCESS)
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):  # type: ignore[no-untyped-def]
        form = super().get_form(request, obj, change, **kwargs)
        if "title" in form.base_fields:
            form.base_fields["title"].help_text = (
                "Correct a title here. The paper keeps its identity key (the title as the "
                "pages show it), so the next ingest still finds this row."
            )
        return form

    @admin.display(description="state", ordering="hidden_at")
    def state_badge(self, paper: Paper) -> str:
        if paper.hidden_at:
            return format_html(
                '{}<span class="mod-note">{}</span>', _state_badge("hidden"), paper.hidden_reason
            )
        return _state_badge(paper.state)

    @admin.display(description="links")
    def links(self, paper: Paper) -> str:
        return format_html(
            '<a href="{}" rel="noopener" target="_blank">{}</a>', paper.url, paper.url
        )

    @admin.action(description="Hide from all digests…", permissions=["change"])
    def hide_papers(
        self, request: HttpRequest, queryset: QuerySet[Paper]
    ) -> TemplateResponse | None:
        form = HideForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            reason = form.cleaned_data["reason"]
            papers = list(queryset)
            for paper in papers:
                paper.hide(reason)
                self.log_change(request, paper, f"Hidden: {reason}")
            self.message_user(request, f"Hid {len(papers)} paper(s): {reason}", messages.SUCCESS)
            return None
        return TemplateResponse(
            request,
            "admin/digest/paper/hide_papers.html",
            {
                **self.admin_site.each_context(request),
                "title": "Hide papers from all digests",
                "opts": self.opts,
                "form": form,
                "papers": queryset,
                "action": "hide_papers",
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.action(description="Show again in digests", permissions=["change"])
    def unhide_papers(self, request: HttpRequest, queryset: QuerySet[Paper]) -> None:
        papers = list(queryset.filter(hidden_at__isnull=False))
        for paper in papers:
            paper.unhide()
            self.log_change(request, paper, "Shown again")
        self.message_user(request, f"{len(papers)} paper(s) may go out again.", messages.SUCCESS)

    @admin.action(description="Pin to the top of the next digests", permissions=["change"])
    def pin_papers(self, request: HttpRequest, queryset: QuerySet[Paper]) -> None:
        pinned = skipped = 0
        for paper in queryset:
            try:
                paper.pin()
            except ValueError:
                skipped += 1
                continue
            pinned += 1
            self.log_change(request, paper, "Pinned")
        self.message_user(request, f"Pinned {pinned} paper(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} hidden paper(s) not pinned: show them first.", messages.WARNING
            )

    @admin.action(description="Unpin", permissions=["change"])
    def unpin_papers(self, request: HttpRequest, queryset: QuerySet[Paper]) -> None:
        papers = list(queryset.filter(pinned_at__isnull=False))
        for paper in papers:
            paper.unpin()
            self.log_change(request, paper, "Unpinned")
        self.message_user(request, f"Unpinned {len(papers)} paper(s).", messages.SUCCESS)

    @admin.action(description="Merge two rows that are the same paper…", permissions=["change"])
    def merge_two_papers(
        self, request: HttpRequest, queryset: QuerySet[Paper]
    ) -> TemplateResponse | None:
        papers = list(
            queryset.annotate(n_sightings=Count("sightings", distinct=True)).order_by("pk")
        )
        if len(papers) != 2:
            self.message_user(request, "Select exactly two papers to merge.", messages.ERROR)
            return None
        by_id = {str(p.pk): p for p in papers}
        keep_id = request.POST.get("keep") if "apply" in request.POST else None
        if keep_id in by_id:
            keep = by_id.pop(keep_id)
            [drop] = by_id.values()
            dropped = f"{drop.title} (#{drop.pk})"
            keep.merge(drop)
            self.log_change(request, keep, f"Merged {dropped} into this paper")
            self.message_user(request, f"Merged {dropped} into “{keep.title}”.", messages.SUCCESS)
            return None
        items = dict(
            DigestItem.objects.filter(paper__in=papers)
            .values("paper_id")
            .annotate(n=Count("pk"))
            .values_list("paper_id", "n")
        )
        for paper in papers:
            paper.n_items = items.get(paper.pk, 0)  # type: ignore[attr-defined]
        return TemplateResponse(
            request,
            "admin/digest/paper/merge_papers.html",
            {
                **self.admin_site.each_context(request),
                "title": "Merge two papers",
                "opts": self.opts,
                "papers": papers,
                "error": "Choose the paper to keep." if "apply" in request.POST else "",
                "action": "merge_two_papers",
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )


class TopicForm(forms.ModelForm):
    class Meta:
        model = Topic
        fields = ["name", "slug", "description", "query", "examples", "similarity"]
        widgets = {"query": forms.TextInput(attrs={"size": 80})}
        help_texts = {
            "query": "In the filter language (see the README); blank for a topic defined "
            "by its description and examples only. Saving re-tags the papers of the last "
            "days; use Preview first to see what it would match.",
            "similarity": "Papers at least this cosine-similar to the description and "
            "examples join the topic (docs/relevance.md); blank turns it off. The preview "
            "lists the papers around it.",
        }

    def clean_query(self) -> str:
        text = self.cleaned_data["query"]
        if not text.strip():
            return ""
        try:
            parse_query(text)
        except QueryError as error:
            raise forms.ValidationError(error.describe(text), code="query") from None
        return text

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        semantic = data.get("similarity") is not None
        if not data.get("query") and not semantic and "query" not in self.errors:
            raise forms.ValidationError(
                "Give the topic a query, or a similarity threshold with a description or "
                "example papers.",
                code="empty_topic",
            )
        if semantic and not (data.get("description", "").strip() or data.get("examples")):
            raise forms.ValidationError(
                "A similarity threshold needs a description or example papers.",
                code="semantic_without_text",
            )
        return data


def _float_or_none(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if -1.0 <= value <= 1.0 else None


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    form = TopicForm
    list_display = ("name", "query", "paper_count", "follower_count", "created_at")
    search_fields = ("name", "query")
    prepopulated_fields = {"slug": ("name",)}
    raw_id_fields = ("examples",)
    change_form_template = "admin/digest/topic/change_form.html"

    class Media:
        css = MODERATION_CSS
        js = ["admin-dashboard/topic-preview.js"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Topic]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_papers=Count("papers", distinct=True),
                n_followers=Count("subscribers", distinct=True),
            )
        )

    @admin.display(description="papers", ordering="n_papers")
    def paper_count(self, topic: Topic) -> int:
        return topic.n_papers  # type: ignore[attr-defined]

    @admin.display(description="followers", ordering="n_followers")
    def follower_count(self, topic: Topic) -> int:
        return topic.n_followers  # type: ignore[attr-defined]

    def get_urls(self):  # type: ignore[no-untyped-def]
        return [
            path(
                "preview/",
                self.admin_site.admin_view(self.preview_view),
                name="digest_topic_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest) -> TemplateResponse:
        """What the query in the form would match: papers of the last days and the
        subscribers following the topic. POST (the change form's fields); saves nothing."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])  # type: ignore[return-value]
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        topic = None
        if request.POST.get("topic_id", "").isdigit():
            topic = Topic.objects.filter(pk=int(request.POST["topic_id"])).first()
        query = request.POST.get("query", "")
        preview = preview_topic_query(query, topic) if query.strip() else None
        similarity = None
        threshold = _float_or_none(request.POST.get("similarity", ""))
        examples = [int(pk) for pk in request.POST.get("examples", "").split(",") if pk.isdigit()]
        description = request.POST.get("description", "")
        if threshold is not None or (not query.strip() and (description.strip() or examples)):
            similarity = preview_similarity(description, examples, threshold)
        return TemplateResponse(
            request,
            "admin/digest/topic/preview.html",
            {
                **self.admin_site.each_context(request),
                "title": "Topic preview",
                "opts": self.opts,
                "preview": preview,
                "similarity": similarity,
                "days": PREVIEW_DAYS,
                "topic": topic,
            },
        )

    def save_model(
        self, request: HttpRequest, obj: Topic, form: forms.ModelForm, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool
    ) -> None:
        # After the examples are saved: the semantic part reads them.
        super().save_related(request, form, formsets, change)
        obj = form.instance
        retagged = {"query", "description", "examples", "similarity"}
        if not change or retagged & set(form.changed_data):
            added, removed = retag_topic(obj)
            self.message_user(
                request,
                f"Re-tagged recent papers with “{obj.name}”: {added} added, {removed} removed.",
                messages.INFO,
            )


@admin.register(BlockedTerm)
class BlockedTermAdmin(admin.ModelAdmin):
    list_display = ("term", "note", "created_at")
    search_fields = ("term", "note")
    fields = ("term", "note")

    def save_model(
        self, request: HttpRequest, obj: BlockedTerm, form: forms.ModelForm, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        flag_filters_containing(obj.term)
        flagged = Filter.objects.filter(flagged_for_review=True).count()
        if flagged:
            url = reverse("admin:subscriptions_filter_changelist") + "?flagged_for_review__exact=1"
            self.message_user(
                request,
                format_html(
                    '{} filter(s) are flagged for review: <a href="{}">review them</a>.',
                    flagged,
                    url,
                ),
                messages.WARNING,
            )


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "url",
        "format",
        "categories",
        "enabled",
        "interval",
        "next_fetch_at",
        "last_fetched_at",
        "last_status",
    )
    list_filter = ("enabled", "last_status")
    search_fields = ("name", "url")
    readonly_fields = ("etag", "last_modified", "last_fetched_at", "last_status")
    actions = ["fetch_now"]

    def save_model(
        self, request: HttpRequest, obj: Source, form: ModelForm[Source], change: bool
    ) -> None:
        if change and "url" in form.changed_data:
            # Validators belong to the URL they came from.
            obj.etag = obj.last_modified = ""
        super().save_model(request, obj, form, change)

    # Enqueues fetches: a change, so not for roles that only view sources.
    @admin.action(description="Fetch now", permissions=["change"])
    def fetch_now(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        from digest.tasks import fetch_source

        ids = list(queryset.values_list("pk", flat=True))
        for source_id in ids:
            transaction.on_commit(lambda source_id=source_id: fetch_source.delay(source_id))
        self.message_user(
            request, f"Fetching {len(ids)} source(s); see Ingest runs.", messages.SUCCESS
        )


class RecordAdmin(admin.ModelAdmin):
    """A record of what happened (an ingest run, a digest, an ESP event): shown, filtered
    and searched, never added, edited or deleted by hand; actions may still act on it."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(IngestRun)
class IngestRunAdmin(RecordAdmin):
    list_display = (
        "source",
        "from_source",
        "format",
        "status",
        "papers_parsed",
        "papers_new",
        "papers_updated",
        "started_at",
        "seconds",
    )
    list_filter = ("status", "format", "from_source")
    list_select_related = ("from_source",)
    readonly_fields = ("seconds",)

    @admin.display(description="Seconds")
    def seconds(self, run: IngestRun) -> str:
        return "" if run.duration is None else f"{run.duration:.2f}"


# --- Moderation: digests and delivery events -------------------------------------------
# anymail's normalised event types (docs/sending/tracking.rst) worth a moderator's look.
PROBLEM_EVENTS = ("bounced", "complained", "rejected", "failed")


class ReadOnlyInline(admin.TabularInline):
    """A record shown under another (what a digest carried, what the ESP reported):
    its ``fields`` are read-only, and nothing is added or deleted from here."""

    extra = 0
    max_num = 0
    can_delete = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DigestItemInline(ReadOnlyInline):
    model = DigestItem
    fields = ("rank", "paper", "reason")


class DigestEventInline(ReadOnlyInline):
    model = DeliveryEvent
    fk_name = "digest"
    fields = ("timestamp", "event_type", "recipient", "reject_reason", "description")
    ordering = ("-timestamp",)


@admin.register(Digest)
class DigestAdmin(RecordAdmin):
    list_display = (
        "subscriber",
        "period",
        "status_badge",
        "paper_count",
        "problem_count",
        "attempts",
        "sent_at",
        "error_excerpt",
    )
    list_filter = ("status", ("sent_at", admin.DateFieldListFilter), "subscriber__frequency")
    search_fields = ("subscriber__email", "period", "message_id")
    list_select_related = ("subscriber",)
    inlines = [DigestItemInline, DigestEventInline]
    raw_id_fields = ("subscriber",)
    readonly_fields = ("message_id", "attempts", "last_error", "created_at", "sent_at")

    class Media:
        css = MODERATION_CSS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Digest]:
        problems = (
            DeliveryEvent.objects.filter(digest=OuterRef("pk"), event_type__in=PROBLEM_EVENTS)
            .order_by()
            .values("digest")
            .annotate(n=Count("pk"))
            .values("n")[:1]
        )
        return (
            super()
            .get_queryset(request)
            .annotate(n_items=Count("items", distinct=True), n_problems=Subquery(problems))
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, digest: Digest) -> str:
        return _state_badge(digest.status, digest.get_status_display())

    @admin.display(description="papers", ordering="n_items")
    def paper_count(self, digest: Digest) -> int:
        return digest.n_items  # type: ignore[attr-defined]

    @admin.display(description="bounces & complaints")
    def problem_count(self, digest: Digest) -> str:
        n = digest.n_problems or 0  # type: ignore[attr-defined]
        return _state_badge("failed", str(n)) if n else "–"

    @admin.display(description="last error")
    def error_excerpt(self, digest: Digest) -> str:
        return Truncator(digest.last_error).chars(80)


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(RecordAdmin):
    list_display = (
        "timestamp",
        "event_badge",
        "recipient",
        "reject_reason",
        "description_excerpt",
        "digest",
        "esp_name",
    )
    list_filter = (
        "event_type",
        "reject_reason",
        "esp_name",
        ("timestamp", admin.DateFieldListFilter),
    )
    search_fields = ("recipient", "event_id", "description")
    list_select_related = ("digest",)
    raw_id_fields = ("digest", "subscriber")
    date_hierarchy = "timestamp"

    class Media:
        css = MODERATION_CSS

    @admin.display(description="event", ordering="event_type")
    def event_badge(self, event: Any) -> str:
        state = "failed" if event.event_type in PROBLEM_EVENTS else "ok"
        return _state_badge(state, event.event_type)

    @admin.display(description="description")
    def description_excerpt(self, event: Any) -> str:
        return Truncator(event.description or "").chars(100)
