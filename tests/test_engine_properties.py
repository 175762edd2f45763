"""The engine agrees with the reference evaluator on generated queries and papers.

Queries are built from words, phrases (in plain and typographic quotes), hyphenated,
spaced and joined compounds, upper-case abbreviations with a plural s, prefixes, fields
(arXiv categories included), NOT/-, OR and parentheses; paper texts from the same words
in plural, upper-case, accented and compound forms, split by invisible format characters,
joined by punctuation, dashes and spaces. Generated query texts that the parser rejects
are discarded.
"""

from __future__ import annotations

import string

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from digest.matching.engine import (
    STRONG_POINTS,
    Edition,
    PaperText,
    Reason,
    index_papers,
    match_edition,
    rank_subscribers,
    reference_hits,
    reference_points,
    reference_top,
    tag_papers,
)
from digest.matching.query import (
    QueryError,
    explain,
    fold,
    parse_query,
    reference_match,
    reference_together,
    surface_forms,
    together_phrase,
    tokens,
    word_key,
)

# Few words, so that generated queries often match; each exercises a folding rule.
WORDS = [
    "diffusion",
    "video",
    "study",
    "class",
    "box",
    "patch",
    "corpus",
    "gpu",
    "café",
    "token",
    "tokenizer",
    "flow",
    "he",
    "3d",
    # Compounds, their parts and words whose plural rules are special.
    "multi",
    "modal",
    "multimodal",
    "pre",
    "training",
    "cache",
    "matrix",
    "movie",
    "news",
    "dynamics",
    "lm",
]
CATEGORIES = ["cs.CL", "cs.LG", "cs.CV", "math.AP", "math-ph", "q-bio.NC", "stat.ML"]
# Exact categories, archives and prefixes, in either case.
CATEGORY_PATTERNS = ["cs.CL", "cs.lg", "cs", "cs.*", "cs.c*", "math", "math*", "Q-BIO.NC", "stat"]
NAMES = ["Kaiming He", "Jane Doe", "José Núñez", "Token Smith", "Ana Flow-Matching"]
SUFFIXES = ["", "", "", "s", "s", "es", "ies"]
SEPARATORS = [
    " ",
    " ",
    " ",
    "-",
    ", ",
    ". ",
    "_",
    "/",
    " (",
    ") ",
    "'",
    "\n",
    "  ",
    "\u2010",
    " – ",
]
# Typographic quote pairs a phone or a word processor types.
QUOTES = [
    ('"', '"'),
    ("\u201c", "\u201d"),
    ("\u201e", "\u201c"),
    ("\u00ab", "\u00bb"),
    ("\uff02", "\uff02"),
]
# Invisible format characters that split a pasted word: soft hyphen, zero-width space.
FORMAT_CHARACTERS = ["\u00ad", "\u200b"]

settings.register_profile(
    "engine", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("engine")


@st.composite
def surface_words(draw: st.DrawFn) -> str:
    word = draw(st.sampled_from(WORDS))
    kind = draw(st.sampled_from(["plain"] * 6 + ["acronym", "format", "compound"]))
    if kind == "acronym":  # LMs, GPUS: judged on the case as written
        return word.upper() + draw(st.sampled_from(["s", "s", "S", ""]))
    if kind == "compound":  # multi-modal, multi modal, multimodal, pre-training
        second = draw(st.sampled_from(WORDS))
        return word + draw(st.sampled_from(["-", " ", "", "\u2011"])) + second
    if word.endswith("y") and draw(st.booleans()):
        word = word[:-1] + "ies"
    else:
        word += draw(st.sampled_from(SUFFIXES))
    style = draw(st.sampled_from([str.lower, str.upper, str.title, str.lower]))
    word = style(word)
    if kind == "format" and len(word) > 1:
        at = draw(st.integers(1, len(word) - 1))
        word = word[:at] + draw(st.sampled_from(FORMAT_CHARACTERS)) + word[at:]
    return word


@st.composite
def texts(draw: st.DrawFn, min_words: int = 8, max_words: int = 24) -> str:
    words = draw(st.lists(surface_words(), min_size=min_words, max_size=max_words))
    out = ""
    for word in words:
        out += word + draw(st.sampled_from(SEPARATORS))
    return out


@st.composite
def papers(draw: st.DrawFn) -> list[PaperText]:
    """1 to 8 distinct papers, sometimes repeated under new ids up to 150 papers so that
    bitsets span several 64-bit words and many papers tie."""
    n = draw(st.integers(1, 8))
    base = [
        PaperText(
            id=i,
            title=draw(texts(min_words=0, max_words=5)),
            abstract=draw(texts()),
            authors=tuple(draw(st.lists(st.sampled_from(NAMES), max_size=3))),
            trend=draw(st.sampled_from([0.0, 1.0, 2.5, -1.0])),  # ties test the id order
            categories=tuple(draw(st.lists(st.sampled_from(CATEGORIES), max_size=3, unique=True))),
        )
        for i in range(n)
    ]
    total = draw(st.sampled_from([n, n, n, 70, 150]))
    ids = draw(st.permutations(range(1, total + 1)))
    trends = draw(st.lists(st.sampled_from([0.0, 1.0, 2.5, -1.0]), min_size=total, max_size=total))
    return [
        PaperText(
            pid,
            base[i % n].title,
            base[i % n].abstract,
            base[i % n].authors,
            trend,
            base[i % n].categories,
        )
        for i, (pid, trend) in enumerate(zip(ids, trends, strict=True))
    ]


@st.composite
def leaves(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["word", "word", "phrase", "hyphen", "prefix", "category"]))
    if kind == "category":
        fld = draw(st.sampled_from(["category:", "cat:"]))
        return fld + draw(st.sampled_from(CATEGORY_PATTERNS))
    if kind == "word":
        text = draw(surface_words())
    elif kind == "phrase":
        opening, closing = draw(st.sampled_from(QUOTES))
        words = draw(st.lists(surface_words(), min_size=1, max_size=3))
        text = opening + " ".join(words) + closing
    elif kind == "hyphen":
        text = draw(surface_words()) + "-" + draw(surface_words())
    else:
        word = fold(draw(st.sampled_from([w for w in WORDS if len(w) >= 3])))
        text = word[: draw(st.integers(3, len(word)))] + "*"
    fld = draw(st.sampled_from(["", "", "", "", "title:", "abstract:", "author:"]))
    return fld + text


def combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(inner, inner)
    return st.one_of(
        pair.map(lambda t: f"{t[0]} {t[1]}"),
        pair.map(lambda t: f"{t[0]} OR {t[1]}"),
        pair.map(lambda t: f"{t[0]} AND {t[1]}"),
        pair.map(lambda t: f"{t[0]} -{t[1]}"),
        pair.map(lambda t: f"({t[0]} OR {t[1]})"),
        pair.map(lambda t: f"{t[0]} NOT ({t[1]})"),
        st.tuples(st.sampled_from(["title:", "abstract:", "author:"]), inner).map(
            lambda t: f"{t[0]}({t[1]})"
        ),
    )


query_texts = st.recursive(leaves(), combine, max_leaves=8)


def parsed(text: str):
    try:
        return parse_query(text)
    except QueryError:
        assume(False)


@given(st.lists(query_texts, min_size=1, max_size=5), papers())
def test_engine_points_equal_reference_points_for_every_query_and_paper(texts_, papers_):
    queries = [parsed(t) for t in texts_]
    subscribers = [(i, [t], []) for i, t in enumerate(texts_)]
    # Papers checked for phrases and words together one by one, and all at once (numpy),
    # as an edition of many papers does.
    for one_by_one in (None, 0):
        edition = index_papers(papers_)
        if one_by_one is not None:
            edition.phrase_papers_one_by_one = edition.window_papers_one_by_one = one_by_one
        ranking = rank_subscribers(edition, subscribers, {}, top_n=len(papers_))
        for row, query in enumerate(queries):
            engine = {
                int(pid): float(pts)
                for pid, pts in zip(ranking.paper_ids[row], ranking.points[row], strict=True)
                if pid >= 0
            }
            for paper in papers_:
                expected = reference_points(query, paper)
                assert engine.get(paper.id, 0) == expected, (str(query), paper)
                matched = reference_match(
                    query, paper.title, paper.abstract, paper.authors, paper.categories
                )
                assert (paper.id in engine) == matched


@given(
    st.lists(query_texts, min_size=1, max_size=4),
    st.lists(query_texts, min_size=0, max_size=3),
    papers(),
    st.data(),
)
def test_engine_top_n_equals_reference_top_n(filter_texts, topic_texts, papers_, data):
    for text in filter_texts + topic_texts:
        parsed(text)
    topics = dict(enumerate(topic_texts, start=100))
    paper_ids = [p.id for p in papers_]
    subscribers, excluded = [], {}
    # Subscriber 0 keeps every filter and topic (most points, most ties); the others a
    # random selection, an unknown topic id (999) included.
    subscribers.append((0, filter_texts, sorted(topics)))
    for sid in range(1, 4):
        mine = data.draw(st.lists(st.sampled_from(filter_texts), max_size=4))
        my_topics = data.draw(st.lists(st.sampled_from([*topics, 999]), max_size=2))
        subscribers.append((sid, mine, my_topics))
    for sid, _, _ in subscribers:
        excluded[sid] = set(data.draw(st.lists(st.sampled_from(paper_ids), max_size=2)))
    top_n = data.draw(st.integers(1, 5))
    ranking = rank_subscribers(
        index_papers(papers_), subscribers, topics, excluded=excluded, top_n=top_n
    )
    for row, (sid, mine, my_topics) in enumerate(subscribers):
        queries = [parse_query(t) for t in mine]
        queries += [parse_query(topics[t]) if t in topics else None for t in my_topics]
        expected = reference_top(papers_, queries, excluded=excluded[sid], top_n=top_n)
        got = [
            (int(pid), float(pts))
            for pid, pts in zip(ranking.paper_ids[row], ranking.points[row], strict=True)
            if pid >= 0
        ]
        assert got == expected


@given(st.lists(query_texts, min_size=1, max_size=4), papers())
def test_tagging_agrees_with_the_reference(topic_texts, papers_):
    for text in topic_texts:
        parsed(text)
    topics = dict(enumerate(topic_texts))
    tagged = tag_papers(topics, papers_)
    for tid, text in topics.items():
        query = parse_query(text)
        expected = {
            p.id
            for p in papers_
            if reference_match(query, p.title, p.abstract, p.authors, p.categories)
        }
        assert tagged[tid] == expected


@given(st.text(max_size=80))
def test_the_parser_raises_only_query_errors(text):
    try:
        parse_query(text)
    except QueryError as error:
        assert 0 <= error.position <= len(text)


@given(query_texts)
def test_canonical_form_parses_back_to_the_same_query(text):
    query = parsed(text)
    again = parse_query(query.canonical)
    assert again == query
    assert again.canonical == query.canonical


ALPHABET = string.ascii_letters + string.digits + "éÉüßİıŉﬁ℡½ - _.,"


@given(st.text(alphabet=ALPHABET, max_size=30))
def test_folding_is_idempotent(text):
    assert fold(fold(text)) == fold(text)


@given(surface_words(), st.sampled_from(FORMAT_CHARACTERS), st.data())
def test_invisible_format_characters_never_split_a_word(word, char, data):
    at = data.draw(st.integers(0, len(word)))
    assert tokens(fold(word[:at] + char + word[at:])) == tokens(fold(word))


@given(surface_words(), surface_words(), st.sampled_from(["-", "\u2010", "\u2013"]))
def test_a_hyphenated_compound_matches_its_joined_spelling_and_back(first, second, dash):
    # One word each, the first singular (a plural first part, "videos-cache", is not a
    # compound anyone writes joined) and not an abbreviation's plural (LMs-cache).
    head, tail = tokens(fold(first)), tokens(fold(second))
    assume(len(head) == 1 and len(tail) == 1 and word_key(head[0]) == head[0])
    # and the compound's plural read as the last part's (not so for "classgpus", which
    # keeps its s as "corpus" does).
    assume(word_key(head[0] + tail[0]) == word_key(head[0] + word_key(tail[0])))
    for word in (first, second):
        assume(fold(word) == word.lower().replace("\u00ad", "").replace("\u200b", ""))
    joined = parsed(first + second)
    hyphenated = parsed(first + dash + second)
    assert reference_match(joined, "x " + first + dash + second + " y", "")
    assert reference_match(hyphenated, "x " + first + second + " y", "")


@given(st.text(alphabet=ALPHABET, max_size=30))
def test_every_token_is_a_surface_form_of_its_key(text):
    for token in tokens(fold(text)):
        key = word_key(token)
        assert word_key(key) == key
        assert token in surface_forms(key)


@given(st.lists(query_texts, min_size=1, max_size=4), papers())
def test_hits_read_from_the_index_equal_explain(texts_, papers_):
    edition = index_papers(papers_)
    for text in texts_:
        query = parsed(text)
        for paper in papers_:
            expected = explain(query, paper.title, paper.abstract, paper.authors, paper.categories)
            assert list(edition.hits(query, edition.rank_of[paper.id])) == expected


@given(
    st.lists(query_texts, min_size=1, max_size=4),
    st.lists(query_texts, min_size=0, max_size=2),
    papers(),
    st.data(),
)
def test_chunks_sharing_one_edition_agree_with_the_reference_reasons_included(
    filter_texts, topic_texts, papers_, data
):
    """Chunks of subscribers ranked one after another on the same edition (its queries
    evaluated once, remembered between chunks) get the reference top N, and each
    selected paper the reference reasons: every filter and topic that matches it, with
    explain()'s hits."""
    for text in filter_texts + topic_texts:
        parsed(text)
    topics = dict(enumerate(topic_texts, start=100))
    subscribers = [
        (
            sid,
            data.draw(st.lists(st.sampled_from(filter_texts), min_size=1, max_size=3)),
            data.draw(st.lists(st.sampled_from([*topics, 999]), max_size=2)),
        )
        for sid in range(6)
    ]
    edition = index_papers(papers_)
    by_id = {p.id: p for p in papers_}
    for lo in (0, 2, 4):  # three chunks of two
        chunk = subscribers[lo : lo + 2]
        result = match_edition(edition, chunk, topics, top_n=3)
        for sid, mine, my_topics in chunk:
            items = [(t, None, parse_query(t)) for t in mine]
            items += [(None, t, parse_query(topics[t])) for t in my_topics if t in topics]
            expected = reference_top(papers_, [q for _, _, q in items], top_n=3)
            assert [(m.paper_id, int(m.score)) for m in result[sid]] == expected
            for match in result[sid]:
                p = by_id[match.paper_id]
                want = tuple(
                    Reason(text, tid, reference_points(q, p) >= STRONG_POINTS, reference_hits(q, p))
                    for text, tid, q in items
                    if reference_match(q, p.title, p.abstract, p.authors, p.categories)
                )
                assert match.reasons == want


# Filters of plain words, and papers where those words stand together or scattered.
FILLER = ["we", "propose", "a", "new", "method", "for", "large", "data"]


@st.composite
def plain_filters(draw: st.DrawFn) -> str:
    """Two to four plain words, some in other spellings (plural, upper case, accented,
    a compound), sometimes repeated."""
    return " ".join(draw(st.lists(surface_words(), min_size=2, max_size=4)))


@st.composite
def near_or_far(draw: st.DrawFn, words: list[str]) -> str:
    """A text holding ``words`` as the phrase, shuffled with a word or none between
    them, or scattered among other words, sometimes missing one."""
    kind = draw(st.sampled_from(["phrase", "near", "far", "partial"]))
    words = list(words)
    if kind == "partial" and len(words) > 1:
        words.pop(draw(st.integers(0, len(words) - 1)))
    if kind != "phrase":
        words = draw(st.permutations(words))
    most = {"phrase": 0, "near": 1, "far": 5, "partial": 3}[kind]
    out: list[str] = draw(st.lists(st.sampled_from(FILLER), max_size=4))
    for word in words:
        out.append(word)
        out += draw(st.lists(st.sampled_from(FILLER), max_size=most))
    return draw(st.sampled_from(SEPARATORS)).join(out)


@st.composite
def together_cases(draw: st.DrawFn) -> tuple[str, list[PaperText]]:
    """A filter of plain words and 1 to 8 papers whose title and abstract hold them
    together, scattered or partly."""
    text = draw(plain_filters())
    words = text.split()
    papers_ = [
        PaperText(
            i,
            draw(near_or_far(words)) if draw(st.booleans()) else draw(texts(0, 5)),
            draw(near_or_far(words)) + " " + draw(texts(0, 6)),
            trend=draw(st.sampled_from([0.0, 1.0, 2.5])),
        )
        for i in range(1, draw(st.integers(1, 8)) + 1)
    ]
    return text, papers_


@given(st.one_of(plain_filters(), query_texts, st.text(max_size=40)))
def test_the_parser_finds_the_phrase_of_plain_words_as_together_phrase_does(text):
    """parse_query works out ``together`` without lexing again; together_phrase (which
    the reference evaluator uses) is the rule."""
    try:
        query = parse_query(text)
    except QueryError:
        return
    expected = together_phrase(text)
    assert query.together == expected
    if expected is not None:
        assert query.together is not None and query.together.label == expected.label


@given(together_cases())
def test_words_standing_together_are_found_as_the_reference_finds_them(case):
    text, papers_ = case
    phrase = together_phrase(text)
    assume(phrase is not None)
    assert phrase is not None
    # Papers checked one by one, and all at once (numpy), as an edition of many does.
    for one_by_one in (Edition.window_papers_one_by_one, 0):
        edition = index_papers(papers_)
        edition.window_papers_one_by_one = one_by_one
        everything = edition.together_bits(phrase.keys, "abstract", edition.everything)
        for paper in papers_:
            bit = 1 << edition.rank_of[paper.id]
            found = [f for f in ("title", "abstract") if edition.together_bits(phrase.keys, f, bit)]
            assert found == reference_together(phrase, paper.title, paper.abstract), paper
            assert bool(everything & bit) == ("abstract" in found)


@given(st.lists(together_cases(), min_size=1, max_size=3), st.data())
def test_together_outranks_scattered_as_the_reference_ranks_them(cases, data):
    """Subscribers with plain-word filters (and other filters) get the reference's top N,
    points, and reasons worded with the phrase where the words stand together."""
    texts_ = [text for text, _ in cases]
    for text in texts_:
        parsed(text)
    papers_ = [
        PaperText(i, p.title, p.abstract, (), p.trend)
        for i, p in enumerate((p for _, ps in cases for p in ps), start=1)
    ]
    others = data.draw(st.lists(query_texts, max_size=2))
    for text in others:
        parsed(text)
    subscribers = [(0, texts_, []), (1, texts_[:1] + others, [])]
    result = match_edition(papers_, subscribers, {}, top_n=len(papers_))
    by_id = {p.id: p for p in papers_}
    for sid, mine, _ in subscribers:
        queries = [parse_query(t) for t in mine]
        expected = reference_top(papers_, queries, top_n=len(papers_))
        assert [(m.paper_id, m.score // 0.5 * 0.5) for m in result[sid]] == expected
        for match in result[sid]:
            p = by_id[match.paper_id]
            want = tuple(
                Reason(t, None, reference_points(q, p) >= STRONG_POINTS, reference_hits(q, p))
                for t, q in zip(mine, queries, strict=True)
                if reference_match(q, p.title, p.abstract)
            )
            assert match.reasons == want
