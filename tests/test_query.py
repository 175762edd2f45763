"""The filter query language: folding, parsing, errors, and the reference evaluator."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.matching import query as query_module
from digest.matching.query import (
    JOIN_PREFIXES,
    MAX_FILTERS,
    MAX_QUERY_LENGTH,
    MAX_TERMS,
    And,
    Hit,
    Not,
    Or,
    Phrase,
    Prefix,
    QueryError,
    Term,
    explain,
    fold,
    joined_tokens,
    parse_query,
    reference_match,
    surface_forms,
    tokens,
    tokens_and_joins,
    validate_filters,
    word_key,
)


def matches(query: str, title: str = "", abstract: str = "", authors=()) -> bool:
    return reference_match(parse_query(query), title, abstract, authors)


# --- folding ----------------------------------------------------------------------------


def test_it_folds_case_and_accents():
    assert fold("Ünïcode CAFÉ Straße") == "unicode cafe strasse"
    assert fold("ﬁne-tuning") == "fine-tuning"


def test_it_splits_tokens_on_anything_but_letters_and_digits():
    assert tokens(fold("State-Space (SSM) models_v2, GPT-4o!")) == [
        "state",
        "space",
        "ssm",
        "models",
        "v2",
        "gpt",
        "4o",
    ]


@pytest.mark.parametrize(
    ("token", "key"),
    [
        ("transformers", "transformer"),
        ("attentions", "attention"),
        ("llms", "llm"),
        ("gpus", "gpu"),
        ("studies", "study"),
        ("classes", "class"),
        ("boxes", "box"),
        ("patches", "patch"),
        ("meshes", "mesh"),
        ("responses", "response"),
        ("loss", "loss"),
        ("corpus", "corpus"),
        ("analysis", "analysis"),
        ("gas", "gas"),
        ("ties", "tie"),
        ("3ds", "3ds"),
    ],
)
def test_it_strips_one_plural_ending(token, key):
    assert word_key(token) == key


def test_surface_forms_are_every_token_with_that_key():
    assert surface_forms("study") == ("study", "studie", "studys", "studies")
    assert surface_forms("cach") == ("cach", "cache", "cachs", "caches")
    assert surface_forms("matrix") == ("matrix", "matrixs", "matrices", "matrixes")
    assert surface_forms("news") == ("news",)
    assert surface_forms("transformer") == ("transformer", "transformers")
    assert surface_forms("class") == ("class", "classes")
    assert surface_forms("loss") == ("loss", "losses")


# --- parsing ------------------------------------------------------------------------------


def test_it_parses_the_spec_examples():
    query = parse_query('mamba OR "state space" -medical')
    assert query.root == Or(
        (And((Phrase(("state", "space")), Not(Term("medical")))), Term("mamba"))
    )
    query = parse_query('(diffusion OR "flow matching") video')
    assert query.root == And((Or((Phrase(("flow", "matching")), Term("diffusion"))), Term("video")))


def test_not_binds_tighter_than_and_which_binds_tighter_than_or():
    assert parse_query("NOT a b").root == And((Not(Term("a")), Term("b")))
    assert parse_query("a b OR c").root == Or((And((Term("a"), Term("b"))), Term("c")))
    assert parse_query("x NOT b OR c") == parse_query("(x -b) OR c")


def test_it_reads_words_phrases_and_prefixes():
    assert parse_query("Diffusion").root == Term("diffusion")
    assert parse_query('"vision transformer"').root == Phrase(("vision", "transformer"))
    assert parse_query("token*").root == Prefix("token")


def test_a_hyphenated_word_is_a_phrase():
    assert parse_query("state-space") == parse_query('"state space"')
    assert parse_query("state-space").root == Phrase(("state", "space"))


def test_a_one_word_phrase_is_a_word():
    assert parse_query('"diffusion"') == parse_query("diffusion")


def test_fields_apply_to_terms_and_groups():
    assert parse_query("title:diffusion").root == Term("diffusion", "title")
    assert parse_query("author:(smith OR doe)").root == Or(
        (Term("doe", "author"), Term("smith", "author"))
    )
    assert parse_query("abstract:token*").root == Prefix("token", "abstract")
    assert parse_query('Title:"state space"').root == Phrase(("state", "space"), "title")


def test_a_field_inside_a_group_overrides_the_groups_field():
    assert parse_query("title:(a abstract:b)").root == And(
        (Term("b", "abstract"), Term("a", "title"))
    )


def test_and_may_be_written_out():
    assert parse_query("diffusion AND video") == parse_query("diffusion video")


def test_operators_are_upper_case_only():
    assert parse_query("salt or pepper").root == And((Term("or"), Term("pepper"), Term("salt")))


def test_identical_queries_written_differently_share_a_canonical_form():
    variants = [
        "Diffusion  video",
        "diffusion video",
        "video diffusion",
        "VIDEOS diffusion",
        "(diffusion) video",
        "diffusion video diffusion",
    ]
    queries = {parse_query(v) for v in variants}
    assert len(queries) == 1
    assert {parse_query(v).canonical for v in variants} == {"diffusion video"}
    assert hash(parse_query(variants[0])) == hash(parse_query(variants[1]))


def test_double_negation_cancels():
    assert parse_query("a --b") == parse_query("a b")
    assert parse_query("a NOT -b") == parse_query("a b")


def test_the_canonical_form_reads_back_to_the_same_query():
    query = parse_query('title:(mamba OR "state-space") -Medical author:Doe tok*')
    assert str(query) == query.canonical
    assert query.canonical == '-medical author:doe (title:"state space" OR title:mamba) tok*'
    assert parse_query(query.canonical) == query
    assert query.source == 'title:(mamba OR "state-space") -Medical author:Doe tok*'


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("", 0, "empty query"),
        ("   ", 0, "empty query"),
        ('diffusion "video gen', 10, "unclosed quote"),
        ("(diffusion OR video", 0, "unclosed ("),
        ("diffusion video)", 15, "unmatched )"),
        ("diffusion OR", 10, "OR needs a term on both sides"),
        ("OR diffusion", 0, "OR needs a term on both sides"),
        ("a OR OR b", 2, "OR needs a term on both sides"),
        ("diffusion AND", 10, "AND needs a term on both sides"),
        ("diffusion NOT", 10, "NOT needs a term to exclude right after it"),
        ("diffusion -", 10, "- needs a term to exclude right after it"),
        ("a (NOT) b", 3, "NOT needs a term to exclude right after it"),
        ('video ""', 6, "empty phrase"),
        ('video "?!"', 6, "empty phrase"),
        ("()", 0, "empty parentheses"),
        ("video foo:bar", 6, "unknown field foo: (use title:, abstract:, author: or category:)"),
        ("title: ", 0, "title: needs a word, phrase or group after it"),
        ("video ab*", 6, "prefix too short: put at least 3 letters or digits before *"),
        ("video *", 6, "prefix too short: put at least 3 letters or digits before *"),
        ("state-sp*", 0, "a prefix must be a single word (no hyphen or punctuation)"),
        ("video &", 6, "& has no letters or digits to match"),
        (
            "-medical",
            0,
            "the query only excludes words; add a word to look for (diffusion -medical)",
        ),
        (
            "  NOT medical -survey",
            2,
            "the query only excludes words; add a word to look for (diffusion -medical)",
        ),
        (
            "mamba OR -medical",
            9,
            "this part of the OR only excludes words, so it would match almost every paper",
        ),
        (
            "(((((((((((a)))))))))))",
            10,
            "too many nested parentheses (at most 10)",
        ),
    ],
)
def test_it_rejects_invalid_queries_with_message_and_position(text, position, message):
    with pytest.raises(QueryError) as caught:
        parse_query(text)
    assert caught.value.message == message
    assert caught.value.position == position
    assert str(caught.value) == f"position {position}: {message}"


def test_a_query_error_is_a_value_error():
    with pytest.raises(ValueError, match="position 0: empty query"):
        parse_query("")


def test_it_accepts_a_negation_next_to_a_positive_term():
    assert parse_query("-medical diffusion").root == And((Not(Term("medical")), Term("diffusion")))
    assert parse_query("-(a OR b) c")


def test_it_limits_query_length():
    parse_query("a" * MAX_QUERY_LENGTH)
    with pytest.raises(QueryError) as caught:
        parse_query("a" * (MAX_QUERY_LENGTH + 1))
    assert caught.value.position == MAX_QUERY_LENGTH
    assert caught.value.message == "query too long (at most 300 characters)"


def test_it_limits_terms_per_query():
    words = [f"w{i}" for i in range(MAX_TERMS + 1)]
    parse_query(" ".join(words[:MAX_TERMS]))
    text = " ".join(words)
    with pytest.raises(QueryError) as caught:
        parse_query(text)
    assert caught.value.message == "too many terms (at most 20 in one query)"
    assert caught.value.position == text.index("w20")


def test_validate_filters_names_the_filter_at_fault():
    assert [q.canonical for q in validate_filters(["Diffusion", '"state space"'])] == [
        "diffusion",
        '"state space"',
    ]
    with pytest.raises(QueryError) as caught:
        validate_filters(["diffusion", "video (gen"])
    assert caught.value.filter_number == 2
    assert caught.value.position == 6
    assert str(caught.value) == "filter 2, position 6: unclosed ("


def test_validate_filters_rejects_a_repeated_filter():
    with pytest.raises(QueryError, match=r"filter 3, position 0: same as filter 1"):
        validate_filters(["video diffusion", "mamba", "Diffusion videos"])


def test_validate_filters_limits_filters_per_subscriber():
    validate_filters([f"w{i}" for i in range(MAX_FILTERS)])
    with pytest.raises(QueryError) as caught:
        validate_filters([f"w{i}" for i in range(MAX_FILTERS + 1)])
    assert caught.value.filter_number == MAX_FILTERS + 1
    assert caught.value.message == "too many filters (at most 20)"


# --- the reference evaluator ----------------------------------------------------------------


def test_it_matches_case_insensitively_at_word_boundaries():
    assert matches("diffusion", title="Latent DIFFUSION models")
    assert not matches("net", title="A network for networks")
    assert not matches("diffusion", title="Superdiffusion")


def test_it_folds_singular_and_plural_alike():
    assert matches("transformer", abstract="Transformers are everywhere.")
    assert matches("transformers", abstract="a transformer")
    assert matches("attention", abstract="multi-head attentions")
    assert matches("study", abstract="case studies")
    assert not matches("loss", abstract="the model is lost")


def test_it_treats_hyphen_and_space_alike():
    assert matches("state-space", abstract="a state space model")
    assert matches('"state space"', abstract="State-Space Models")
    assert matches("state-space", abstract="state_space; and state/space")
    assert not matches('"state space"', abstract="the state of the space")


def test_it_folds_accents():
    assert matches("cafe", title="Café culture")
    assert matches("naïve", title="NAIVE Bayes")


def test_a_phrase_needs_consecutive_words_in_one_field():
    assert matches('"flow matching"', abstract="We use flow matching.")
    assert not matches('"flow matching"', abstract="flow-based matching")
    assert not matches('"flow matching"', title="Flow", abstract="matching")


def test_a_prefix_matches_the_start_of_a_word():
    assert matches("token*", abstract="a new tokenizer")
    assert matches("token*", abstract="Tokens")
    assert not matches("token*", abstract="detokenize")
    # Prefixes are not plural-stripped: "studies*" would need a word starting with it.
    assert not matches("studies*", abstract="one study")


def test_a_word_without_field_looks_in_title_and_abstract():
    assert matches("mamba", title="Mamba")
    assert matches("mamba", abstract="mamba")
    assert not matches("mamba", authors=("Mamba Jones",))


def test_fields_restrict_where_a_term_looks():
    assert matches("title:mamba", title="Mamba")
    assert not matches("title:mamba", abstract="Mamba")
    assert matches("abstract:mamba", abstract="Mamba")
    assert not matches("abstract:mamba", title="Mamba")
    assert matches("author:doe", authors=("Jane Doe",))


def test_an_author_phrase_stays_within_one_name():
    assert matches('author:"jane doe"', authors=("Jane Doe", "Kai Li"))
    assert not matches('author:"doe kai"', authors=("Jane Doe", "Kai Li"))


def test_terms_may_be_found_in_different_fields():
    assert matches("diffusion video", title="Diffusion", abstract="for video")


def test_negation_excludes():
    query = 'mamba OR "state space" -medical'
    assert matches(query, title="Mamba for medical imaging")
    assert matches(query, title="State space models")
    assert not matches(query, title="State space models for medical imaging")


def test_explain_lists_helping_terms_and_where_they_are():
    query = parse_query("diffusion video -medical author:doe")
    hits = explain(
        query,
        title="Video Diffusion",
        abstract="diffusion for medical video",
        authors=("Jane Doe",),
    )
    assert hits == [
        Hit("doe", "author"),
        Hit("diffusion", "title"),
        Hit("diffusion", "abstract"),
        Hit("video", "title"),
        Hit("video", "abstract"),
    ]
    assert str(hits[1]) == "diffusion in title"


def test_explain_counts_a_doubly_negated_term_as_helping():
    # -(a -b) is "not a, or b": b helps.
    query = parse_query("c -(a -b)")
    assert Hit("b", "title") in explain(query, "b c", "")
    assert explain(query, "a", "") == []


# --- what a researcher means (issue 16) ------------------------------------------------


@pytest.mark.parametrize(
    "word",
    [
        "news",
        "dynamics",
        "semantics",
        "graphics",
        "physics",
        "statistics",
        "ethics",
        "robotics",
        "lens",
        "thus",
        "plus",
        "canvas",
        "chaos",
        "series",
    ],
)
def test_words_that_only_look_plural_keep_their_s(word):
    assert word_key(word) == word
    assert not matches(word, word[:-1])
    assert matches(word, word.title())


@pytest.mark.parametrize(
    ("plural", "singular"),
    [
        ("metrics", "metric"),
        ("topics", "topic"),
        ("caches", "cache"),
        ("movies", "movie"),
        ("cookies", "cookie"),
        ("niches", "niche"),
        ("emojis", "emoji"),
        ("matrices", "matrix"),
        ("vertices", "vertex"),
        ("studies", "study"),
        ("patches", "patch"),
    ],
)
def test_plurals_meet_their_singular_both_ways(plural, singular):
    assert word_key(plural) == word_key(singular)
    assert matches(plural, f"one {singular} here") and matches(singular, f"two {plural} here")


def test_two_letter_abbreviations_take_a_plural_s_judged_on_case():
    for plural, singular in [("LMs", "LM"), ("AIs", "AI"), ("KGs", "KG"), ("UIs", "UI")]:
        assert matches(plural, f"an {singular} model") and matches(singular, f"many {plural}")
    assert not matches("LM", "an LMS course")  # upper-case S: another word
    assert not matches("lm", "the lms of a school")  # lower case: not an abbreviation


@pytest.mark.parametrize("query", ["multimodal", "multi-modal", "Multi–modal", '"multi modal"'])
@pytest.mark.parametrize(
    "text", ["A multimodal model", "A multi-modal model", "A multi modal model"]
)
def test_hyphenated_joined_and_spaced_compounds_meet(query, text):
    assert matches(query, text)


def test_compounds_need_a_dash_or_a_known_first_part_to_join_across_space():
    assert matches("finetuning", "fine tuning") and matches("pretraining", "pre training")
    assert matches("fine-tuning", "finetuning") and matches('"fine tuning"', "fine-tuning")
    assert matches("gpt4o", "GPT-4o")
    assert not matches("another", "an other")  # "an" does not join across a space


def test_joined_tokens_number_compounds_as_tokens_numbers_tokens():
    assert joined_tokens(fold("Multi-modal fine tuning, (pre training) and an other")) == [
        (0, "multimodal"),
        (2, "finetuning"),
        (4, "pretraining"),
    ]
    assert joined_tokens("-a-b- multi  modal multi\tmulti x multi, y multi") == [
        (0, "ab"),
        (2, "multimodal"),
        (4, "multimulti"),
        (5, "multix"),
    ]


# Pieces of ASCII text where the fast tokeniser may slip: dashes and prefix words at
# either end, runs of separators, underscores, prefix words inside other words.
_ASCII_PIECES = [*"ab1Z _-.,(\t\n'", "--", "  ", *sorted(JOIN_PREFIXES)[:8], "remodel", "few"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_ASCII_PIECES), max_size=16).map("".join))
def test_ascii_tokens_and_compounds_are_those_of_the_unicode_rules(text):
    folded = fold(text)
    words, joins = tokens_and_joins(folded)
    assert words == re.findall(r"[^\W_]+", folded) == tokens(folded)
    # The general path (any script) is the rule the ASCII one must agree with.
    assert joins == query_module._tokens_and_joins_unicode(folded)[1]


def test_typographic_quotes_are_quotes():
    for text in [
        "“vision transformer”",
        "„vision transformer“",
        "«vision transformer»",
        "＂vision transformer＂",
    ]:
        assert parse_query(text) == parse_query('"vision transformer"'), text
    assert not matches("“vision transformer”", "vision and a transformer")
    with pytest.raises(QueryError, match="unclosed quote"):
        parse_query("“vision transformer")


def test_invisible_format_characters_do_not_split_words():
    assert fold("pre\u00adtraining zero\u200bshot") == "pretraining zeroshot"
    assert parse_query("pre\u00adtraining") == parse_query("pretraining")
    assert matches("pretraining", "pre\u00adtraining at scale")


def test_emoji_are_ignored_rather_than_refused():
    assert parse_query("🤗 transformers") == parse_query("transformers")
    assert parse_query("👍🏽 diffusion") == parse_query("diffusion")
    with pytest.raises(QueryError, match="no letters or digits"):
        parse_query("🤗")


def test_a_filter_of_stop_words_only_is_refused():
    for text in ["the of and", '"of the"', "the OR diffusion", "a -diffusion"]:
        with pytest.raises(QueryError, match="nearly every paper"):
            parse_query(text)
    assert parse_query("the transformer") == parse_query("transformer the")


def test_lower_case_operators_between_terms_are_warned_about():
    from digest.matching.query import query_warnings

    (warning,) = query_warnings("mamba or diffusion")
    assert "write OR in capitals" in warning
    assert query_warnings("diffusion and video not medical") == [
        "“and” in lower case is an ordinary word that papers must contain; "
        "write AND in capitals or leave it out, since every word is needed anyway",
        "“not” in lower case is an ordinary word that papers must contain; "
        "write NOT in capitals to leave out papers with the word after it",
    ]
    assert query_warnings("mamba OR diffusion") == []
    assert query_warnings('"rock and roll"') == []
    assert query_warnings("or diffusion") == []  # not between two terms


def test_hits_show_the_subscribers_word_never_a_key():
    hits = explain(parse_query('"Time series" caches'), "time-series kv cache", "")
    assert hits == [Hit('"time series"', "title"), Hit("caches", "title")]
