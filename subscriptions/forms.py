"""Forms of the signup and settings pages.

Filter queries are checked by :mod:`digest.matching.query`; its
:class:`~digest.matching.query.QueryError`
becomes an inline error that says what is wrong and points at the character where it
starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import available_timezones

from django import forms
from django.conf import settings
from django.utils.html import format_html, format_html_join

from digest.matching.query import (
    MAX_FILTERS,
    MAX_QUERY_LENGTH,
    QueryError,
    parse_query,
    query_warnings,
    validate_filters,
)
from digest.models import Topic

from .addresses import normalize_address
from .models import MAX_PAPERS, MAX_SUGGESTIONS, Filter, Subscriber
from .schedule import resolve_timezone

__all__ = [
    "DigestChoicesForm",
    "EmailLinkForm",
    "FilterAdminForm",
    "FilterForm",
    "QueryProblem",
    "ScheduleForm",
    "SignupForm",
    "TopicsForm",
]

HOURS = [(h, f"{h:02d}:00") for h in range(24)]


@dataclass(frozen=True)
class QueryProblem:
    """A query error ready to show: the message, the 0-based ``position`` and the query
    cut around it (``before`` + ``at`` + ``after`` == ``text``; ``at`` is the character
    the problem starts at, empty when it is the end of the query)."""

    message: str
    position: int
    text: str
    filter_number: int | None = None

    @classmethod
    def of(cls, text: str, error: QueryError) -> QueryProblem:
        return cls(error.message, min(error.position, len(text)), text, error.filter_number)

    @property
    def before(self) -> str:
        return self.text[: self.position]

    @property
    def at(self) -> str:
        return self.text[self.position : self.position + 1]

    @property
    def after(self) -> str:
        return self.text[self.position + 1 :]

    @property
    def column(self) -> int:
        """1-based, as people count characters."""
        return self.position + 1

    def __str__(self) -> str:
        where = f"character {self.column}"
        if self.filter_number is not None:
            where = f"filter {self.filter_number}, {where}"
        return f"{self.message} ({where})"


def blocked_terms() -> list[str]:
    """Every term moderators blocked, read once per form."""
    from digest.models import BlockedTerm

    return list(BlockedTerm.objects.values_list("term", flat=True))


def refuse_blocked_terms(text: str, terms: list[str]) -> None:
    """Raise :class:`QueryError` at position 0 when ``text`` contains one of ``terms``
    (:func:`digest.moderation.blocked_terms_in`)."""
    from digest.matching.blocked import blocked_terms_in

    blocked = blocked_terms_in(text, terms)
    if blocked:
        raise QueryError(f"“{blocked[0]}” is not allowed in filters here", 0)


def topic_field() -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        queryset=Topic.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Topics",
    )


def clean_timezone(value: str) -> str:
    """The IANA zone ``value`` means (:func:`subscriptions.schedule.resolve_timezone`)."""
    try:
        return resolve_timezone(value)
    except ValueError as error:
        raise forms.ValidationError(str(error)) from None


class TimezoneInput(forms.TextInput):
    """A text box that suggests every IANA zone as the subscriber types (an HTML
    ``<datalist>``); what they type is resolved by :func:`clean_timezone`, case and
    city names allowed."""

    def __init__(self, attrs: dict[str, str] | None = None) -> None:
        super().__init__({"autocomplete": "off", "list": "iana-timezones", **(attrs or {})})

    def render(self, name, value, attrs=None, renderer=None):  # type: ignore[no-untyped-def]
        options = format_html_join(
            "", '<option value="{}">', ((zone,) for zone in sorted(available_timezones()))
        )
        datalist = format_html('<datalist id="iana-timezones">{}</datalist>', options)
        return super().render(name, value, attrs, renderer) + datalist


class SignupForm(forms.Form):
    """Address, first filters (one per line) and/or topics, and daily or weekly.

    ``cleaned_data["filters"]`` is a list of query texts; ``query_problem`` holds the
    first filter error with its position.
    """

    email = forms.EmailField(max_length=254, label="Email address")
    filters = forms.CharField(
        required=False,
        label="Filters",
        help_text="One per line, e.g. diffusion -medical or “state space” OR mamba.",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "data-preview": "lines"}),
    )
    frequency = forms.ChoiceField(
        choices=Subscriber.FREQUENCIES, initial="daily", widget=forms.RadioSelect
    )
    timezone = forms.CharField(
        max_length=64,
        initial="UTC",
        label="Timezone",
        widget=TimezoneInput(attrs={"data-tz-guess": "fill"}),
    )

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fields["topics"] = topic_field()
        self.query_problem: QueryProblem | None = None
        self.query_warnings: list[str] = []

    def clean_email(self) -> str:
        return normalize_address(self.cleaned_data["email"])

    def clean_filters(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["filters"].splitlines()]
        queries = [line for line in lines if line]
        try:
            validate_filters(queries)
            terms = blocked_terms()
            for number, text in enumerate(queries, 1):
                try:
                    refuse_blocked_terms(text, terms)
                except QueryError as error:
                    raise QueryError(error.message, error.position, filter_number=number) from None
        except QueryError as error:
            number = error.filter_number or 1
            text = queries[number - 1] if number <= len(queries) else ""
            self.query_problem = QueryProblem.of(text, error)
            raise forms.ValidationError(str(self.query_problem)) from None
        self.query_warnings = [
            f"Filter {number}: {warning}"
            for number, text in enumerate(queries, 1)
            for warning in query_warnings(text)
        ]
        return queries

    def clean_timezone(self) -> str:
        return clean_timezone(self.cleaned_data["timezone"])

    def clean(self):  # type: ignore[no-untyped-def]
        data = super().clean()
        if not self.errors and not data.get("filters") and not data.get("topics"):
            raise forms.ValidationError("Write at least one filter or pick a topic.")
        return data


class FilterForm(forms.Form):
    """One filter to add (``adding``) or change, checked against the subscriber's other
    filters ``others`` — ``(number shown, query)`` pairs — for duplicates, and for the
    :data:`~digest.matching.query.MAX_FILTERS` limit when adding."""

    query = forms.CharField(
        max_length=MAX_QUERY_LENGTH,
        label="Filter",
        widget=forms.TextInput(
            attrs={"spellcheck": "false", "autocomplete": "off", "data-preview": "one"}
        ),
    )

    def __init__(  # type: ignore[no-untyped-def]
        self, *args, others: Sequence[tuple[int, str]] = (), adding: bool = True, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.others = list(others)
        self.adding = adding
        self.query_problem: QueryProblem | None = None
        self.query_warnings: list[str] = []

    def clean_query(self) -> str:
        text = self.cleaned_data["query"].strip()
        try:
            query = parse_query(text)
            refuse_blocked_terms(text, blocked_terms())
            if self.adding and len(self.others) >= MAX_FILTERS:
                raise QueryError(f"you already have {MAX_FILTERS} filters, the most allowed", 0)
            for number, other in self.others:
                try:
                    same = parse_query(other) == query
                except QueryError:  # an old filter written under older rules
                    same = False
                if same:
                    raise QueryError(f"same as filter {number}", 0)
        except QueryError as error:
            self.query_problem = QueryProblem.of(text, error)
            raise forms.ValidationError(str(self.query_problem)) from None
        self.query_warnings = query_warnings(text)
        return text


class FilterAdminForm(forms.ModelForm):
    """A filter in the admin, under the rules of the settings page: the query is checked
    by :class:`FilterForm` (syntax, length, blocked terms, duplicates and the filter
    limit of its subscriber), so a moderator can write nothing a subscriber could not."""

    class Meta:
        model = Filter
        fields = ["subscriber", "query", "flagged_for_review"]

    def clean(self):  # type: ignore[no-untyped-def]
        data = super().clean()
        if "query" not in data:
            return data
        subscriber = data.get("subscriber") or getattr(self.instance, "subscriber", None)
        others: list[tuple[int, str]] = []
        if subscriber is not None and subscriber.pk:
            rows = subscriber.filters.order_by("id").values_list("pk", "query")
            others = [
                (number, query)
                for number, (pk, query) in enumerate(rows, start=1)
                if pk != self.instance.pk
            ]
        public = FilterForm({"query": data["query"]}, others=others, adding=not self.instance.pk)
        if not public.is_valid():
            self.add_error("query", public.errors["query"])
        else:
            data["query"] = public.cleaned_data["query"]
        return data


class TopicsForm(forms.Form):
    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fields["topics"] = topic_field()


class ScheduleForm(forms.ModelForm):
    """Frequency, weekday, local hour and IANA timezone of a subscriber."""

    hour = forms.TypedChoiceField(choices=HOURS, coerce=int, label="Time of day")

    class Meta:
        model = Subscriber
        fields = ["frequency", "weekday", "hour", "timezone"]
        widgets = {
            "frequency": forms.RadioSelect,
            "timezone": TimezoneInput(attrs={"data-tz-guess": "offer"}),
        }
        labels = {"weekday": "Day (weekly digests)", "timezone": "Timezone"}
        help_texts = {"weekday": "", "hour": ""}

    def clean_timezone(self) -> str:
        return clean_timezone(self.cleaned_data["timezone"])


class DigestChoicesForm(forms.ModelForm):
    """What each digest carries: papers per digest (1–``MAX_PAPERS``), strong matches
    only, the "nothing matched" note, and feed only (no email). The note starts as the
    site's ``DIGEST_SEND_EMPTY`` says until the subscriber chooses; saving records the
    choice."""

    max_papers = forms.TypedChoiceField(
        choices=[(n, str(n)) for n in range(1, MAX_PAPERS + 1)],
        coerce=int,
        label="Papers per digest",
        help_text=f"At most this many, best first (1–{MAX_PAPERS}).",
    )
    send_empty = forms.BooleanField(
        required=False,
        label='Send a short "nothing matched" note when no paper matched',
    )

    class Meta:
        model = Subscriber
        fields = ["max_papers", "strong_only", "send_empty", "feed_only"]
        labels = {
            "strong_only": "Only strong matches: a filter's or topic's words in the title or "
            "authors, not only in the abstract",
            "feed_only": "Feed only, no email: read the digests in your private feed",
        }
        help_texts = {"strong_only": "", "feed_only": ""}

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            chosen = self.instance.send_empty
            self.initial["send_empty"] = settings.DIGEST_SEND_EMPTY if chosen is None else chosen


class EmailLinkForm(forms.Form):
    email = forms.EmailField(max_length=254, label="Email address")

    def clean_email(self) -> str:
        return normalize_address(self.cleaned_data["email"])


class SuggestionsForm(forms.ModelForm):
    """How many "you may also like" papers a digest may add: 0 to
    ``MAX_SUGGESTIONS`` (the model's validators)."""

    class Meta:
        model = Subscriber
        fields = ["suggestions"]
        labels = {"suggestions": '"You may also like" papers per digest'}
        help_texts = {"suggestions": "From 0 to 10; 0 turns them off."}
        widgets = {
            "suggestions": forms.NumberInput(attrs={"min": 0, "max": MAX_SUGGESTIONS, "step": 1})
        }


class PickPaperForm(forms.Form):
    """A paper the subscriber likes: ``paper``, the id of one of the recent papers
    listed, or ``reference``, a pasted arXiv id or arXiv / Hugging Face link (read by
    :func:`subscriptions.feedback.arxiv_id_of`). One of the two is required."""

    paper = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    reference = forms.CharField(
        label="arXiv id or link",
        required=False,
        max_length=500,
        widget=forms.TextInput(
            attrs={"placeholder": "2401.01234 or https://huggingface.co/papers/2401.01234"}
        ),
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        data["reference"] = (data.get("reference") or "").strip()
        if not data.get("paper") and not data["reference"]:
            self.add_error("reference", "Paste an arXiv id or a link to the paper's page.")
        return data
