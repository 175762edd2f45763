"""The filter query language: folding, parsing, and the reference evaluator.

A subscriber's filter is one query. The language (documented for users in
``docs/query-language.md``):

* a word ``diffusion``, a phrase ``"vision transformer"``, a prefix ``token*``;
* juxtaposition is AND (``AND`` may also be written), ``OR``, ``NOT`` or a leading ``-``
  excludes, parentheses group; ``NOT`` binds tightest, then AND, then ``OR``;
* ``title:``, ``abstract:`` and ``author:`` restrict a term, phrase, prefix or group to
  one field; with no field a term looks in the title and the abstract;
* ``category:`` (or ``cat:``) names an arXiv category (``cs.CL``), an archive (``cs``:
  every ``cs.*`` category) or a prefix (``cs.*``, ``q-bio*``), compared case-insensitively
  with each category the paper lists (:func:`category_matches`).

Text and queries are compared through the same two steps:

* :func:`fold` -- Unicode compatibility decomposition (NFKD), combining marks dropped,
  case folded (``str.casefold``): ``"Ünïcode-Straße"`` → ``"unicode-strasse"``;
* :func:`tokens` -- a token is a maximal run of letters and digits (``[^\\W_]+``);
  everything else separates, so ``state-space`` and ``state space`` are the same two
  tokens;
* :func:`word_key` -- one plural ending is stripped so that singular and plural meet
  (rules in its docstring).

This module holds the *reference* evaluator (:func:`reference_match`): one query against
one paper with regular expressions over the folded text. It is deliberately plain; it is
the specification that :mod:`digest.matching.engine` is tested and benchmarked against.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from functools import lru_cache
from typing import Literal, TypeAlias

__all__ = [
    "MAX_DEPTH",
    "MAX_FILTERS",
    "MAX_QUERY_LENGTH",
    "MAX_TERMS",
    "TOGETHER_SLACK",
    "And",
    "Category",
    "Hit",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Prefix",
    "Query",
    "QueryError",
    "Term",
    "category_matches",
    "explain",
    "fold",
    "iter_leaves",
    "joined_tokens",
    "query_warnings",
    "parse_query",
    "phrase_spellings",
    "plain_words",
    "reference_match",
    "reference_together",
    "surface_forms",
    "together_phrase",
    "tokens",
    "tokens_and_joins",
    "validate_filters",
    "word_key",
]

MAX_QUERY_LENGTH = 300
"""Characters in one query, white space included."""
MAX_TERMS = 20
"""Words, phrases and prefixes in one query, as written (before duplicates are merged)."""
MAX_FILTERS = 20
"""Filters one subscriber may keep."""
MAX_DEPTH = 10
"""Parentheses nested inside each other."""
MIN_PREFIX = 3
"""Letters or digits before the ``*`` of a prefix: shorter prefixes match most papers."""

FieldName: TypeAlias = Literal["any", "title", "abstract", "author", "category"]
FIELDS = ("title", "abstract", "author", "category")
"""Field names a query may use; ``any`` (no field written) means title or abstract."""
FIELD_ALIASES = {"cat": "category"}
"""Other names a query may give a field."""
_CATEGORY_PATTERN = re.compile(r"^[a-z][a-z-]*(?:\.[a-z-]*)?\*?$")


# ---------------------------------------------------------------------------------------
# Folding and tokens

_QUOTES = str.maketrans(
    dict.fromkeys("\u201c\u201d\u201e\u201f\u00ab\u00bb\uff02\u301d\u301e", '"')
)
"""Typographic double quotes (“ ” „ ‟ « » ＂ 〝 〞) a query may be typed with: each reads as
``"``, one character for one, so error positions stay those of the text as written."""

# An upper-case abbreviation with a lower-case plural s (LMs, AIs, KGs, GPUs), judged on
# the text as written: "LMS" and "lms" are other words.
# (No look-behind in the pattern, and a single character class first, which the regular
# expression engine skips ahead to: each is twice as fast over an abstract.)
_ACRONYM_PLURAL = re.compile(r"([A-Z][A-Z]+)s(?![^\W_])")


def _singular_acronyms(text: str) -> str:
    def replace(m: re.Match[str]) -> str:
        start = m.start()
        if start and text[start - 1].isalnum():  # not the start of a word: "aLMs"
            return m.group(0)
        return m.group(1)

    return _ACRONYM_PLURAL.sub(replace, text)


def _strip_marks(text: str) -> str:
    # Combining marks (accents) and invisible format characters (Unicode category Cf:
    # soft hyphen, zero-width space and joiners, word joiner, byte-order mark), which
    # split a word pasted from a PDF or a web page without showing.
    return "".join(
        c for c in text if not unicodedata.combining(c) and unicodedata.category(c) != "Cf"
    )


def fold(text: str) -> str:
    """``text`` as matching compares it: upper-case abbreviations' plural ``s`` dropped
    (``LMs`` → ``LM``, ``AIs`` → ``AI``; ``LMS`` stays), then NFKD, combining marks and
    invisible format characters (category Cf: soft hyphen, zero-width space) dropped,
    casefolded: ``"Ünïcode-Straße"`` → ``"unicode-strasse"``, ``"pre\\u00adtraining"`` →
    ``"pretraining"``.

    Decomposition runs again after case folding because both steps can produce what the
    other removes (``"℡"`` decomposes to upper-case ``"TEL"``; ``"İ"`` case-folds to
    ``"i"`` plus a combining dot). ASCII text needs only the plural rule and lower-casing.
    This is the one place text and queries are normalised, so both stay symmetric.
    """
    if not text.isascii():
        # Before the plural rule, so that "LM\u00ads" is read as "LMs".
        text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    if "s" in text:
        text = _singular_acronyms(text)
    if text.isascii():
        return text.lower()
    text = _strip_marks(unicodedata.normalize("NFKD", text)).casefold()
    return _strip_marks(unicodedata.normalize("NFKD", text))


_TOKEN = re.compile(r"[^\W_]+")
# Boundaries for the reference patterns: not preceded / followed by a token character.
_START = r"(?<![^\W_])"
_END = r"(?![^\W_])"
_GAP = r"[\W_]+"
_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
"""Characters that join two words into one compound (``multi-modal``): the hyphen-minus,
the Unicode hyphens and dashes, and the minus sign."""
JOIN_PREFIXES = frozenset(
    """multi pre post non self semi co sub inter intra cross meta fine re un anti auto bi
    tri hyper super ultra micro macro pseudo quasi zero few mid""".split()
)
"""First words that also join the next word across a space (``multi modal``, ``fine
tuning``, ``pre training``); any two words join across a single dash."""


_SPLIT = re.compile(r"([\W_]+)")
_DASH_SET = frozenset(_DASHES)
# ASCII text: every character that is not a letter or digit made a space (_SPACED), and
# the same with each letter or digit made "a" (_SHAPE: a token starts at each " a").
_SPACED = str.maketrans({c: " " for c in range(128) if not chr(c).isalnum()})
_SHAPE = str.maketrans({c: ("a" if chr(c).isalnum() else " ") for c in range(128)})


def tokens(folded: str) -> list[str]:
    """The tokens of already-folded text, in order: maximal runs of Unicode letters and
    digits (underscore separates, as punctuation does)."""
    if folded.isascii():
        return folded.translate(_SPACED).split()
    return _TOKEN.findall(folded)


def joined_tokens(folded: str) -> list[tuple[int, str]]:
    """The compounds of already-folded text: ``(i, token_i + token_i+1)`` for each two
    neighbouring tokens (numbered as :func:`tokens` numbers them) separated by exactly one
    dash (:data:`_DASHES`), or by white space only when the first is one of
    :data:`JOIN_PREFIXES`: ``"multi-modal fine tuning"`` → ``[(0, "multimodal"), (2,
    "finetuning")]``, in order. The spellings ``multi-modal``, ``multi modal`` and
    ``multimodal`` then all stand for the word ``multimodal``."""
    return tokens_and_joins(folded)[1]


def tokens_and_joins(folded: str) -> tuple[list[str], list[tuple[int, str]]]:
    """:func:`tokens` and :func:`joined_tokens` of already-folded text, in one pass."""
    if not folded.isascii():
        return _tokens_and_joins_unicode(folded)
    spaced = folded.translate(_SPACED)
    words = spaced.split()
    present = JOIN_PREFIXES.intersection(words)
    if "-" not in folded and not present:
        return words, []
    shape = folded.translate(_SHAPE)
    starts: list[int] = []  # where each compound's first token starts
    at = folded.find("-")
    while at != -1:  # a single dash between two tokens
        if 0 < at < len(shape) - 1 and shape[at - 1] == shape[at + 1] == "a":
            starts.append(shape.rfind(" ", 0, at) + 1)
        at = folded.find("-", at + 1)
    if present:
        spaced = f" {spaced} "  # a token w at i is " w " at i
        for word in present:
            needle = f" {word} "
            at = spaced.find(needle)
            while at != -1:
                end = at + len(word)  # where the word ends in ``folded``
                after = shape.find("a", end)  # the next token
                if after != -1 and folded[end:after].isspace():
                    starts.append(at)
                at = spaced.find(needle, end)
    joins = []
    # Tokens starting before ``start``: the one at 0, and one at each " a" up to it.
    before, counted = (1 if shape.startswith("a") else 0), 0
    for start in sorted(starts):
        if start:
            before += shape.count(" a", counted, start)
            counted = start - 1
        i = before if start else 0
        joins.append((i, words[i] + words[i + 1]))
    return words, joins


def _tokens_and_joins_unicode(folded: str) -> tuple[list[str], list[tuple[int, str]]]:
    out: list[tuple[int, str]] = []
    # Alternating words and gaps; the first word is empty when the text starts with a gap.
    parts = _SPLIT.split(folded)
    words, gaps = parts[0::2], parts[1::2]
    first = 0 if words[0] else -1  # the token number of words[0]
    for j, (left, gap, right) in enumerate(zip(words[:-1], gaps, words[1:], strict=True)):
        if gap in _DASH_SET or (left in JOIN_PREFIXES and gap.isspace()):
            if left and right:
                out.append((j + first, left + right))
    return [w for w in words if w], out


NON_PLURALS = frozenset(
    """news lens thus plus canvas chaos bias alias atlas gas yes this its was has does
    goes axis iris series species always perhaps whereas besides towards afterwards
    ethos cosmos pathos kudos mathematics physics statistics dynamics semantics
    graphics ethics robotics economics linguistics genomics proteomics kinematics
    mechanics optics electronics analytics informatics bioinformatics logistics
    acoustics aerodynamics thermodynamics hydrodynamics biomechanics econometrics
    pragmatics phonetics politics aesthetics cybernetics photonics forensics semiotics
    geophysics astrophysics biophysics haptics metabolomics transcriptomics
    epigenomics connectomics neuroscience""".split()
)
"""Words ending in ``s`` that are not plurals (fields of study, ``news``, ``lens``,
``thus``): :func:`word_key` leaves them whole, so ``news`` never meets ``new`` nor
``dynamics`` ``dynamic``. Plural ``-ics`` words not listed (``metrics``, ``topics``,
``heuristics``) meet their singular."""
IRREGULAR_PLURALS = {
    "matrices": "matrix",
    "vertices": "vertex",
    "indices": "index",
    "appendices": "appendix",
    "simplices": "simplex",
    "biases": "bias",
    "aliases": "alias",
    "analyses": "analysis",
    "hypotheses": "hypothesis",
    "syntheses": "synthesis",
    "theses": "thesis",
    "diagnoses": "diagnosis",
    "criteria": "criterion",
    "corpora": "corpus",
    "emojis": "emoji",
    "wikis": "wiki",
    "taxis": "taxi",
    "phenomena": "phenomenon",
}
"""Plurals no ending rule reaches, and the singular each meets."""
_SINGULAR_OF = {v: k for k, v in IRREGULAR_PLURALS.items()}


def word_key(token: str) -> str:
    """The key a folded token is compared by: the token with one plural ending stripped.

    Applied identically to query words and paper text, first matching rule wins:

    0. words in :data:`NON_PLURALS` stay (``news``, ``dynamics``, ``lens``); the
       plurals in :data:`IRREGULAR_PLURALS` become their singular (``matrices`` →
       ``matrix``, ``vertices`` → ``vertex``);
    1. ``ies`` → ``y`` when the token has 5 or more characters (``studies`` → ``study``,
       ``movies`` → ``movy``), and so does a final ``ie`` (``movie`` → ``movy``,
       ``cookie`` → ``cooky``), so both forms of either kind of word meet;
    2. drop ``es`` after ``ss``, ``x``, ``ch`` or ``sh`` (``classes`` → ``class``,
       ``boxes`` → ``box``, ``patches`` → ``patch``), and the ``e`` of a final ``che``
       (``cache`` and ``caches`` → ``cach``, ``niche`` → ``nich``);
    3. drop a final ``s`` when the token has 4 or more characters and does not end in
       ``ss``, nor in ``us``/``is`` when it has 5 or more (``transformers`` →
       ``transformer``, ``llms`` → ``llm``, ``gpus`` → ``gpu``, ``emojis`` → ``emoji``;
       ``loss``, ``corpus`` and ``analysis`` stay).

    Keys are internal (users see their own words or the paper's, never a key).
    ``word_key(word_key(t)) == word_key(t)`` for every token.
    """
    n = len(token)
    if n < 4:
        return token
    last = token[-1]
    if last == "e":
        if n >= 5 and token.endswith("ie"):
            return token[:-2] + "y"
        if token.endswith("che"):
            return token[:-1]
        return token
    if last != "s" or token in NON_PLURALS:
        return token
    irregular = IRREGULAR_PLURALS.get(token)
    if irregular is not None:
        return irregular
    if n >= 5 and token.endswith("ies"):
        return token[:-3] + "y"
    if token.endswith(("sses", "xes", "ches", "shes")):
        return token[:-2]
    if token.endswith("ss") or (n >= 5 and token.endswith(("us", "is"))):
        return token
    return token[:-1]


def surface_forms(key: str) -> tuple[str, ...]:
    """Every token whose :func:`word_key` is ``key``, shortest first.

    The inverse of each rule of :func:`word_key`, kept only where the rule really maps
    back to ``key``; the reference evaluator searches for these forms.
    """
    candidates = [key, key + "s", key + "es", key + "e"]
    if key.endswith("y"):
        candidates += [key[:-1] + "ie", key[:-1] + "ies"]
    if key in _SINGULAR_OF:
        candidates.append(_SINGULAR_OF[key])
    found = [t for t in candidates if word_key(t) == key]
    return tuple(sorted(set(found), key=lambda t: (len(t), t)))


# ---------------------------------------------------------------------------------------
# Errors


class QueryError(ValueError):
    """A query (or a subscriber's list of queries) is not valid.

    ``message`` says what is wrong in words a subscriber understands, ``position`` is the
    0-based character offset in the query where the problem starts, and
    ``filter_number`` is the 1-based filter it belongs to when raised by
    :func:`validate_filters` (``None`` otherwise). ``str(error)`` reads
    ``"position 12: unclosed quote"`` or ``"filter 2, position 12: unclosed quote"``.
    """

    def __init__(self, message: str, position: int, *, filter_number: int | None = None):
        self.message = message
        self.position = position
        self.filter_number = filter_number
        where = f"position {position}"
        if filter_number is not None:
            where = f"filter {filter_number}, {where}"
        super().__init__(f"{where}: {message}")

    def describe(self, query: str) -> str:
        """The error for a form: the message, the 1-based character position and
        ``query`` with a marker where the problem starts (``unclosed quote at character
        8: vision ⟦"transformer``)."""
        return (
            f"{self.message} at character {self.position + 1}: "
            f"{query[: self.position]}⟦{query[self.position :]}"
        )


# ---------------------------------------------------------------------------------------
# The syntax tree


# Every node renders its canonical text once, at construction, into ``text`` (not part of
# equality): sorting children, merging duplicates and keying the engine's caches by it
# then costs nothing per use.


class _Node:
    """What every node of the tree shares: ``str(node)`` is its canonical text."""

    __slots__ = ()
    text: str

    def __str__(self) -> str:
        return self.text


class _Leaf(_Node):
    """A word, phrase or prefix: its canonical text is its ``display`` form, written
    with its field unless the field is ``any``."""

    __slots__ = ()
    field: FieldName

    @property
    def display(self) -> str:
        """The node as written, without its field."""
        raise NotImplementedError

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", _with_field(self.field, self.display))


@dataclass(frozen=True, slots=True)
class Term(_Leaf):
    """One word, compared by key (:func:`word_key`) in ``field``; ``shown`` is the word
    as the subscriber wrote it, folded (``caches`` for the key ``cach``)."""

    key: str
    field: FieldName = "any"
    text: str = dc_field(default="", compare=False, repr=False)
    shown: str = dc_field(default="", compare=False, repr=False)

    @property
    def display(self) -> str:
        return self.key

    @property
    def label(self) -> str:
        """The word as users see it in reasons: as written (folded), never the key."""
        return self.shown or self.key


@dataclass(frozen=True, slots=True)
class Phrase(_Leaf):
    """Two or more words that must be consecutive tokens (compared by key) in one field
    (in one author name for ``author``); any two neighbouring words may also be written
    as one (:func:`phrase_spellings`). ``shown`` is the words as written, folded."""

    keys: tuple[str, ...]
    field: FieldName = "any"
    text: str = dc_field(default="", compare=False, repr=False)
    shown: str = dc_field(default="", compare=False, repr=False)

    @property
    def display(self) -> str:
        return '"' + " ".join(self.keys) + '"'

    @property
    def label(self) -> str:
        """The phrase as users see it in reasons, in quotes: as written (folded)."""
        return '"' + (self.shown or " ".join(self.keys)) + '"'


@dataclass(frozen=True, slots=True)
class Prefix(_Leaf):
    """Any token whose folded form (no plural stripping) starts with ``stem``."""

    stem: str
    field: FieldName = "any"
    text: str = dc_field(default="", compare=False, repr=False)

    @property
    def display(self) -> str:
        return self.stem + "*"

    @property
    def label(self) -> str:
        return self.display


@dataclass(frozen=True, slots=True)
class Not(_Node):
    child: Node
    text: str = dc_field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        inner = self.child.text
        grouped = isinstance(self.child, And | Or)
        object.__setattr__(self, "text", "-(" + inner + ")" if grouped else "-" + inner)


@dataclass(frozen=True, slots=True)
class And(_Node):
    """All children match. Children are distinct, sorted by canonical text, never ``And``."""

    children: tuple[Node, ...]
    text: str = dc_field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        parts = ("(" + c.text + ")" if isinstance(c, Or) else c.text for c in self.children)
        object.__setattr__(self, "text", " ".join(parts))


@dataclass(frozen=True, slots=True)
class Or(_Node):
    """Some child matches. Children are distinct, sorted by canonical text, never ``Or``."""

    children: tuple[Node, ...]
    text: str = dc_field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", " OR ".join(c.text for c in self.children))


@dataclass(frozen=True, slots=True)
class Category(_Leaf):
    """An arXiv category, archive or category prefix, lower-cased (``cs.cl``, ``cs``,
    ``cs.*``); see :func:`category_matches`."""

    pattern: str
    field: FieldName = "category"
    text: str = dc_field(default="", compare=False, repr=False)

    @property
    def display(self) -> str:
        return self.pattern

    @property
    def label(self) -> str:
        return self.display


_MAX_MERGED_PHRASE = 6
"""Phrases up to this many words may join any set of neighbouring pairs; longer ones one
pair at a time (the number of spellings grows as the Fibonacci numbers)."""


@lru_cache(maxsize=4096)
def phrase_spellings(keys: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """The ways a phrase's keys may stand in a text, the phrase itself first: the keys as
    they are, and with neighbouring keys joined into one word (``word_key(a + b)``), so
    ``"multi modal fusion"`` is also ``"multimodal fusion"``. Joins do not overlap; for
    phrases longer than :data:`_MAX_MERGED_PHRASE` words one join at a time."""
    n = len(keys)
    if n > _MAX_MERGED_PHRASE:
        found = [keys] + [
            keys[:i] + (word_key(keys[i] + keys[i + 1]),) + keys[i + 2 :] for i in range(n - 1)
        ]
        return tuple(dict.fromkeys(found))

    def spell(i: int) -> list[tuple[str, ...]]:
        if i >= n:
            return [()]
        out = [(keys[i],) + rest for rest in spell(i + 1)]
        if i + 1 < n:
            joined = word_key(keys[i] + keys[i + 1])
            out += [(joined,) + rest for rest in spell(i + 2)]
        return out

    return tuple(dict.fromkeys(spell(0)))


def category_matches(pattern: str, category: str) -> bool:
    """Whether a :class:`Category` ``pattern`` (lower case) names ``category`` (lower
    case): ``cs.*`` any category starting ``cs.``; ``cs`` the archive itself and every
    ``cs.<class>`` (not ``cs-foo``); ``cs.cl`` only itself. Categories as arXiv lists
    them (https://arxiv.org/category_taxonomy)."""
    if pattern.endswith("*"):
        return category.startswith(pattern[:-1])
    if "." not in pattern:
        return category == pattern or (
            category.startswith(pattern) and category[len(pattern) : len(pattern) + 1] == "."
        )
    return category == pattern


Leaf: TypeAlias = Term | Phrase | Prefix | Category
Node: TypeAlias = Term | Phrase | Prefix | Category | Not | And | Or


def _with_field(name: str, text: str) -> str:
    return text if name == "any" else f"{name}:{text}"


def _make_not(child: Node) -> Node:
    return child.child if isinstance(child, Not) else Not(child)


def _make_group(kind: type[And] | type[Or], items: Sequence[Node]) -> Node:
    # Flatten, merge duplicates and sort, so that queries that differ only in order,
    # grouping or repetition get the same canonical form and share work.
    if len(items) == 1:
        return items[0]
    flat: dict[str, Node] = {}
    for item in items:
        for child in item.children if isinstance(item, kind) else (item,):
            flat.setdefault(child.text, child)
    if len(flat) == 1:
        return next(iter(flat.values()))
    return kind(tuple(flat[k] for k in sorted(flat)))


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query. Equal (and equally hashed) when the canonical trees are equal.

    ``canonical`` is the normal form, also ``str(query)``: folded keys, fields written on
    each term, AND/OR flattened with children sorted and duplicates merged, double
    negation removed. ``parse_query(query.canonical) == query``. ``source`` is the text as
    the subscriber wrote it; ``together`` the phrase its plain words make, if any.
    """

    root: Node
    canonical: str = dc_field(compare=False)
    source: str = dc_field(compare=False, default="")
    together: Phrase | None = dc_field(compare=False, default=None)
    """:func:`together_phrase` of ``source``, worked out while parsing."""

    def __str__(self) -> str:
        return self.canonical


def iter_leaves(node: Node, positive: bool = True) -> Iterator[tuple[Leaf, bool]]:
    """Each term, phrase and prefix under ``node`` with its polarity: ``True`` when it sits
    under an even number of negations (its presence can only help the query match)."""
    if isinstance(node, Not):
        yield from iter_leaves(node.child, not positive)
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from iter_leaves(child, positive)
    else:
        yield node, positive


# ---------------------------------------------------------------------------------------
# Parsing

# One token per match, with the white space before it.
_LEX = re.compile(
    r"""
    \s*(?:
    (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<phrase>"[^"]*")
  | (?P<quote>")
  | (?P<neg>-)
  | (?P<field>[A-Za-z]+):
  | (?P<word>[^\s()"]+)
    )""",
    re.VERBOSE,
)
_OPERATORS = {"OR": "or", "AND": "and", "NOT": "not"}
# What may follow an operator; anything else means the operator has nothing to act on.
_OPERAND_START = frozenset({"lparen", "phrase", "neg", "not", "field", "word"})


# A token: (kind, text, position).
_Token: TypeAlias = tuple[str, str, int]


def _is_pictograph(word: str) -> bool:
    # Emoji and other pictographs (symbols of category So, with their variation
    # selectors, skin tones and joiners): nothing a paper's words can match.
    return all(unicodedata.category(c) in ("So", "Sk", "Mn", "Me", "Cf") for c in word) and any(
        unicodedata.category(c) == "So" for c in word
    )


def _lex(text: str) -> list[_Token]:
    # ``text`` has had its typographic quotes made plain (_QUOTES) already.
    out: list[_Token] = []
    for m in _LEX.finditer(text):
        kind = group = m.lastgroup
        value = m.group(group)  # type: ignore[arg-type]
        if kind == "word":
            if value in _OPERATORS:
                kind = _OPERATORS[value]
            elif not value.isascii() and _is_pictograph(value):
                continue  # an emoji between words is ignored rather than refused
        elif kind == "quote":
            raise QueryError("unclosed quote", m.start(group))  # type: ignore[arg-type]
        out.append((kind, value, m.start(group)))  # type: ignore[arg-type]
    return out


@lru_cache(maxsize=1 << 16)
def _word_node(raw: str, fld: FieldName) -> Term | Phrase | None:
    # The term or phrase a word or quoted text stands for (None: no letters or digits).
    # Nodes are immutable and words repeat across filters far more than whole filters
    # do, so one node serves every repetition.
    words = tokens(fold(raw))
    keys = tuple(word_key(t) for t in words)
    if not keys:
        return None
    if len(keys) == 1:
        return Term(keys[0], fld, shown=words[0])
    return Phrase(keys, fld, shown=" ".join(words))


class _Parser:
    def __init__(self, text: str, toks: list[_Token]):
        self.text = text
        self.toks = toks
        self.kinds = [t[0] for t in toks] + [None]  # None: end of query
        self.i = 0
        self.n_terms = 0
        self.top_branches: list[tuple[Node, int]] = []
        # Whether some word or phrase (outside the author field) is all stop words: only
        # then may the query match a paper of stop words only.
        self.stop_words = False

    def parse(self) -> Node:
        node = self.parse_or("any", 0)
        if self.i < len(self.toks):  # only a ")" stops parse_or early
            raise QueryError("unmatched )", self.toks[self.i][2])
        return node

    def parse_or(self, fld: FieldName, depth: int) -> Node:
        starts = [self.toks[self.i][2]]
        branches = [self.parse_and(fld, depth)]
        while self.kinds[self.i] == "or":
            position = self.toks[self.i][2]
            self.i += 1
            if self.kinds[self.i] not in _OPERAND_START:
                raise QueryError("OR needs a term on both sides", position)
            starts.append(self.toks[self.i][2])
            branches.append(self.parse_and(fld, depth))
        if depth == 0:
            self.top_branches = list(zip(branches, starts, strict=True))
        return _make_group(Or, branches)

    def parse_and(self, fld: FieldName, depth: int) -> Node:
        items = [self.parse_unary(fld, depth)]
        while True:
            kind = self.kinds[self.i]
            if kind is None or kind == "rparen" or kind == "or":
                break
            if kind == "and":
                position = self.toks[self.i][2]
                self.i += 1
                if self.kinds[self.i] not in _OPERAND_START:
                    raise QueryError("AND needs a term on both sides", position)
                continue
            items.append(self.parse_unary(fld, depth))
        return _make_group(And, items)

    def parse_unary(self, fld: FieldName, depth: int) -> Node:
        negations = 0
        while self.kinds[self.i] in ("neg", "not"):
            kind, _, position = self.toks[self.i]
            self.i += 1
            negations += 1
            if self.kinds[self.i] not in _OPERAND_START:
                name = "NOT" if kind == "not" else "-"
                raise QueryError(f"{name} needs a term to exclude right after it", position)
        node = self.parse_primary(fld, depth)
        return _make_not(node) if negations % 2 else node

    def parse_primary(self, fld: FieldName, depth: int) -> Node:
        # Callers only call this when a token is left.
        kind, value, position = self.toks[self.i]
        self.i += 1
        if kind == "word":
            return self.leaf(value, position, fld, quoted=False)
        if kind == "phrase":
            return self.leaf(value[1:-1], position, fld, quoted=True)
        if kind == "field":
            name = value.lower()
            name = FIELD_ALIASES.get(name, name)
            if name not in FIELDS:
                raise QueryError(
                    f"unknown field {value}: (use title:, abstract:, author: or category:)",
                    position,
                )
            if self.kinds[self.i] not in ("lparen", "phrase", "word"):
                raise QueryError(f"{value}: needs a word, phrase or group after it", position)
            return self.parse_primary(name, depth)  # type: ignore[arg-type]
        if kind == "lparen":
            if depth + 1 > MAX_DEPTH:
                raise QueryError(f"too many nested parentheses (at most {MAX_DEPTH})", position)
            if self.kinds[self.i] == "rparen":
                raise QueryError("empty parentheses", position)
            if self.kinds[self.i] is None:
                raise QueryError("unclosed (", position)
            node = self.parse_or(fld, depth + 1)
            if self.kinds[self.i] != "rparen":
                raise QueryError("unclosed (", position)
            self.i += 1
            return node
        if kind == "rparen":
            raise QueryError("unmatched )", position)
        # An OR or AND where a term should be.
        raise QueryError(f"{value} needs a term on both sides", position)

    def leaf(self, raw: str, position: int, fld: FieldName, *, quoted: bool) -> Node:
        self.n_terms += 1
        if self.n_terms > MAX_TERMS:
            raise QueryError(f"too many terms (at most {MAX_TERMS} in one query)", position)
        if fld == "category":
            pattern = raw.strip().lower()
            if not _CATEGORY_PATTERN.match(pattern) or len(pattern.rstrip("*")) < 2:
                raise QueryError(
                    f"{raw} is not an arXiv category (write one like cs.CL, cs or cs.*)",
                    position,
                )
            return Category(pattern)
        if not quoted and raw.endswith("*"):
            words = tokens(fold(raw[:-1]))
            if len(words) > 1:
                raise QueryError(
                    "a prefix must be a single word (no hyphen or punctuation)", position
                )
            if not words or len(words[0]) < MIN_PREFIX:
                raise QueryError(
                    f"prefix too short: put at least {MIN_PREFIX} letters or digits before *",
                    position,
                )
            return Prefix(words[0], fld)
        node = _word_node(raw, fld)
        if node is None:
            if quoted:
                raise QueryError("empty phrase", position)
            raise QueryError(f"{raw} has no letters or digits to match", position)
        if not self.stop_words:
            self.stop_words = _is_stop_words(node)
        return node


def _matches_paper_of(node: Node, holds: Callable[[Node], bool]) -> bool:
    # Whether the query would match a paper holding exactly the leaves ``holds`` accepts.
    if isinstance(node, Not):
        return not _matches_paper_of(node.child, holds)
    if isinstance(node, And):
        return all(_matches_paper_of(c, holds) for c in node.children)
    if isinstance(node, Or):
        return any(_matches_paper_of(c, holds) for c in node.children)
    return holds(node)


def _matches_empty(node: Node) -> bool:
    # True when the query would match a paper with no text at all: it only excludes.
    return _matches_paper_of(node, lambda leaf: False)


STOP_WORDS = frozenset(
    word_key(w)
    for w in """a an the of and or not in on at to for from by with without as is are was
    were be been being this that these those it its we our us they their them which what
    who whom how when where why can could may might will would should shall do does did
    has have had but if than then so such into onto via also both each all any more most
    other some no nor only own same very i you he she his her there here about between
    through during before after above below up down out off again further once""".split()
)
"""Words nearly every abstract contains; a filter that looks for nothing else is refused.
The list is the core of the common English stop-word lists (e.g. NLTK's)."""


def _is_stop_words(leaf: Node) -> bool:
    # A word or phrase (outside the author field) made of stop words only.
    if isinstance(leaf, Term):
        return leaf.key in STOP_WORDS and leaf.field != "author"
    if isinstance(leaf, Phrase):
        return all(k in STOP_WORDS for k in leaf.keys) and leaf.field != "author"
    return False


def _matches_stop_words(node: Node) -> bool:
    # True when the query would match a paper made of stop words only: it looks for
    # nothing that tells papers apart.
    return _matches_paper_of(node, _is_stop_words)


_LOWER_OPERATORS = {"or": "OR", "and": "AND", "not": "NOT"}


def query_warnings(text: str) -> list[str]:
    """Advice on a query that parses but may not mean what its writer meant, in the
    order found: each lower-case ``or``, ``and`` or ``not`` standing between two terms
    (they are ordinary words, so ``mamba or diffusion`` needs all three words). Returns
    sentences for a form or a preview; an empty list when there is nothing to say. A
    text that does not lex returns no advice (its error says enough)."""
    try:
        toks = _lex(text.translate(_QUOTES))
    except QueryError:
        return []
    found: list[str] = []
    operand = ("word", "phrase", "rparen", "field")
    for i in range(1, len(toks) - 1):
        kind, value, _ = toks[i]
        if kind != "word" or value.lower() not in _LOWER_OPERATORS or value.isupper():
            continue
        if toks[i - 1][0] in operand and toks[i + 1][0] in (*operand, "lparen", "neg"):
            upper = _LOWER_OPERATORS[value.lower()]
            purpose = {
                "OR": "to match either word",
                "AND": "or leave it out, since every word is needed anyway",
                "NOT": "to leave out papers with the word after it",
            }[upper]
            message = (
                f"“{value}” in lower case is an ordinary word that papers must contain; "
                f"write {upper} in capitals {purpose}"
            )
            if message not in found:
                found.append(message)
    return found


def parse_query(text: str) -> Query:
    """Parse one filter query.

    Returns a :class:`Query`; raises only :class:`QueryError` (with the offending position)
    for: an empty query, one longer than :data:`MAX_QUERY_LENGTH` characters or with more
    than :data:`MAX_TERMS` terms, an unclosed quote, an unbalanced parenthesis, an empty
    phrase or group, ``OR``/``AND``/``NOT``/``-`` with nothing to act on, an unknown field,
    a prefix with fewer than 3 letters before ``*``, a query that only excludes
    (``-medical``, ``a OR -b``: it would match almost every paper), and one that looks
    only for :data:`STOP_WORDS` (``the of and``).

    Typographic double quotes (“ ” „ « » ＂) are read as ``"``; emoji between words
    are ignored.
    """
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(
            f"query too long (at most {MAX_QUERY_LENGTH} characters)", MAX_QUERY_LENGTH
        )
    source = text
    if not text.isascii():
        text = text.translate(_QUOTES)
    toks = _lex(text)
    if not toks:
        if text.strip():
            raise QueryError("the query has no letters or digits to match", 0)
        raise QueryError("empty query", 0)
    parser = _Parser(text, toks)
    together = None
    if all(t[0] == "word" for t in toks):
        # Plain words, the most common filter: what parse() would build, without the descent.
        leaves = [parser.leaf(v, p, "any", quoted=False) for _, v, p in toks]
        root = _make_group(And, leaves)
        together = _together_of(toks, leaves)
    else:
        root = parser.parse()
    if ("neg" in parser.kinds or "not" in parser.kinds) and _matches_empty(root):
        position = toks[0][2]
        if len(parser.top_branches) > 1:
            position = next(p for b, p in parser.top_branches if _matches_empty(b))
            message = (
                "this part of the OR only excludes words, so it would match almost every paper"
            )
        else:
            message = "the query only excludes words; add a word to look for (diffusion -medical)"
        raise QueryError(message, position)
    # Without a leaf of stop words this walk is the only-excludes walk above, which has
    # refused such a query already: keep the two checks in this order.
    if parser.stop_words and _matches_stop_words(root):
        raise QueryError(
            "the query looks only for words nearly every paper contains (the, of, and…); "
            "add a word that says what you are looking for",
            toks[0][2],
        )
    return Query(root, root.text, source, together)


def _together_of(toks: list[_Token], leaves: list[Node]) -> Phrase | None:
    # together_phrase() from the tokens and leaves of plain words, without lexing again:
    # the tokens of words joined by spaces are those of each word in turn.
    if len(toks) < 2 or any(v.endswith("*") or ":" in v for _, v, _ in toks):
        return None
    keys: list[str] = []
    shown: list[str] = []
    for leaf in leaves:
        if isinstance(leaf, Term):
            keys.append(leaf.key)
        elif isinstance(leaf, Phrase):
            keys.extend(leaf.keys)
        else:  # a prefix or category: excluded above, kept for safety
            return None
        shown.append(leaf.shown)
    if len(set(keys)) < 2:
        return None
    return Phrase(tuple(keys), "any", shown=" ".join(shown))


def validate_filters(texts: Sequence[str]) -> list[Query]:
    """Parse a subscriber's filters, in order.

    Raises :class:`QueryError` with ``filter_number`` (1-based) set for the first filter
    that does not parse, repeats an earlier one (same canonical form), or goes past
    :data:`MAX_FILTERS`.
    """
    if len(texts) > MAX_FILTERS:
        raise QueryError(
            f"too many filters (at most {MAX_FILTERS})", 0, filter_number=MAX_FILTERS + 1
        )
    queries: list[Query] = []
    seen: dict[Query, int] = {}
    for number, text in enumerate(texts, start=1):
        try:
            query = parse_query(text)
        except QueryError as error:
            raise QueryError(error.message, error.position, filter_number=number) from None
        if query in seen:
            raise QueryError(f"same as filter {seen[query]}", 0, filter_number=number)
        seen[query] = number
        queries.append(query)
    return queries


# ---------------------------------------------------------------------------------------
# Plain words: together or scattered

TOGETHER_SLACK = 2
"""How many other words may stand among a plain-word filter's words for them still to
count as together: its N words all within N + 2 consecutive words of one field."""


def plain_words(text: str) -> tuple[str, ...] | None:
    """The words of a filter made of two or more plain words, as written (``state space
    models`` → ``("state", "space", "models")``), or ``None`` when ``text`` is anything
    else: one word, a phrase in quotes, ``OR``/``AND``/``NOT``, an exclusion, a field, a
    prefix, a group, or a word with no letters or digits. Only such filters scatter:
    each of their words may be anywhere in the title or abstract. Emoji are ignored, as
    :func:`parse_query` ignores them."""
    try:
        toks = _lex(text if text.isascii() else text.translate(_QUOTES))
    except QueryError:
        return None
    if len(toks) < 2:
        return None
    for kind, value, _ in toks:
        if kind != "word" or value.endswith("*") or ":" in value:
            return None
        if _word_node(value, "any") is None:
            return None
    return tuple(value for _, value, _ in toks)


def together_phrase(text: str) -> Phrase | None:
    """The phrase the :func:`plain_words` of ``text`` make in the order written, folded
    (``State space models`` → ``"state space models"``), when they have two or more
    distinct keys; ``None`` for every other filter. Its ``keys`` are what "the words
    stand together" (:func:`reference_together`) looks for."""
    words = plain_words(text)
    if words is None:
        return None
    node = _word_node(" ".join(words), "any")
    if not isinstance(node, Phrase) or len(set(node.keys)) < 2:
        return None
    return node


# ---------------------------------------------------------------------------------------
# The reference evaluator


_JOIN_GAP = "[" + re.escape(_DASHES) + "]"


@lru_cache(maxsize=1024)
def _key_pattern(key: str) -> str:
    # One token with this key, or two joined into a compound with it (joined_tokens).
    forms = surface_forms(key)
    parts = [re.escape(f) for f in forms]
    for form in forms:
        for i in range(1, len(form)):
            head, tail = form[:i], form[i:]
            gap = _JOIN_GAP + (r"|\s+" if head in JOIN_PREFIXES else "")
            parts.append(f"{re.escape(head)}(?:{gap}){re.escape(tail)}")
    return "(?:" + "|".join(parts) + ")"


# Patterns with compounds are large (every split of every form): keep few compiled.
@lru_cache(maxsize=256)
def _leaf_pattern(leaf: Term | Phrase | Prefix) -> re.Pattern[str]:
    if isinstance(leaf, Prefix):
        body = re.escape(leaf.stem)
    else:
        spellings = ((leaf.key,),) if isinstance(leaf, Term) else phrase_spellings(leaf.keys)
        body = "(?:" + "|".join(_GAP.join(_key_pattern(k) for k in s) for s in spellings) + ")"
        body += _END
    return re.compile(_START + body)


def _places(leaf: Leaf) -> tuple[str, ...]:
    return ("title", "abstract") if leaf.field == "any" else (leaf.field,)


def _leaf_hits(leaf: Leaf, texts: dict[str, tuple[str, ...]]) -> list[str]:
    if isinstance(leaf, Category):
        found = any(category_matches(leaf.pattern, c) for c in texts["category"])
        return ["category"] if found else []
    pattern = _leaf_pattern(leaf)
    return [p for p in _places(leaf) if any(pattern.search(t) for t in texts[p])]


def _folded(
    title: str, abstract: str, authors: Sequence[str], categories: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    # Author names are searched one at a time so a phrase never spans two names.
    return {
        "title": (fold(title),),
        "abstract": (fold(abstract),),
        "author": tuple(fold(a) for a in authors),
        "category": tuple(c.lower() for c in categories),
    }


def _evaluate(node: Node, texts: dict[str, tuple[str, ...]]) -> bool:
    if isinstance(node, Not):
        return not _evaluate(node.child, texts)
    if isinstance(node, And):
        return all(_evaluate(c, texts) for c in node.children)
    if isinstance(node, Or):
        return any(_evaluate(c, texts) for c in node.children)
    return bool(_leaf_hits(node, texts))


def reference_match(
    query: Query,
    title: str,
    abstract: str,
    authors: Sequence[str] = (),
    categories: Sequence[str] = (),
) -> bool:
    """Whether ``query`` matches one paper, by regular expressions over the folded text.

    A word matches when one of its :func:`surface_forms` stands between token boundaries,
    or is split in two by one dash (or by white space after one of
    :data:`JOIN_PREFIXES`): ``multimodal`` is found in *multi-modal* and *multi modal*;
    a phrase when its words' forms, or those of one of its :func:`phrase_spellings`
    (``"multi modal"`` is also ``multimodal``), follow each other separated only by
    non-token characters; a prefix when a token starts with it. ``author`` terms are searched in
    each name separately; ``category`` terms against each of ``categories`` (the
    paper's arXiv categories) by :func:`category_matches`.
    """
    return _evaluate(query.root, _folded(title, abstract, authors, categories))


@dataclass(frozen=True, slots=True)
class Hit:
    """One term of a query found in a paper: ``term`` as shown to users, in the words the
    subscriber wrote, folded (``diffusions``, ``"kv caches"``, ``token*``, ``cs.cl``;
    never an internal key), and ``where`` (``title``, ``abstract``,
    ``author`` or ``category``)."""

    term: str
    where: str

    def __str__(self) -> str:
        return f"{self.term} in {self.where}"


def explain(
    query: Query,
    title: str,
    abstract: str,
    authors: Sequence[str] = (),
    categories: Sequence[str] = (),
) -> list[Hit]:
    """The query's terms found in the paper and where, in canonical order, for emails
    ("matched ``diffusion`` in title").

    Only terms that help the query match are listed: those under an even number of
    negations (``medical`` in ``diffusion -medical`` is never a hit). The list says
    nothing about whether the whole query matches; see :func:`reference_match`.
    """
    texts = _folded(title, abstract, authors, categories)
    hits: dict[Hit, None] = {}
    for leaf, positive in iter_leaves(query.root):
        if positive:
            for place in _leaf_hits(leaf, texts):
                hits[Hit(leaf.label, place)] = None
    return list(hits)


def _spans(folded: str, wanted: frozenset[str]) -> dict[str, list[tuple[int, int]]]:
    # Token positions (first, last) where each wanted key stands: one token, or a
    # compound of two (joined_tokens).
    found: dict[str, list[tuple[int, int]]] = {k: [] for k in wanted}
    for i, token in enumerate(tokens(folded)):
        key = word_key(token)
        if key in wanted:
            found[key].append((i, i))
    for i, compound in joined_tokens(folded):
        key = word_key(compound)
        if key in wanted:
            found[key].append((i, i + 1))
    return found


def reference_together(phrase: Phrase, title: str, abstract: str) -> list[str]:
    """The fields, of ``title`` and ``abstract`` in that order, where the words of a
    plain-word filter (``phrase``, from :func:`together_phrase`) stand together: as the
    phrase (as :func:`reference_match` finds a phrase, any of its spellings), or, for
    one of its spellings (:func:`phrase_spellings`: ``multi-modal fusion`` is also
    ``multimodal fusion``), all its keys within one window of ``len(spelling) +
    TOGETHER_SLACK`` consecutive tokens of the field, in any order, each key as one token
    or as a compound of two tokens inside the window. Computed naively from the folded
    text; the engine's :meth:`~digest.matching.engine.Edition.together_bits` is tested
    against it."""
    texts = _folded(title, abstract, (), ())
    as_phrase = _leaf_hits(phrase, texts)
    found: list[str] = []
    for place in ("title", "abstract"):
        if place in as_phrase or any(
            _in_one_window(texts[place][0], spelling) for spelling in phrase_spellings(phrase.keys)
        ):
            found.append(place)
    return found


def _in_one_window(folded: str, keys: tuple[str, ...]) -> bool:
    # Whether every key stands within one window of len(keys) + TOGETHER_SLACK tokens.
    spans = _spans(folded, frozenset(keys))
    width = len(keys) + TOGETHER_SLACK
    for start in sorted({first for each in spans.values() for first, _ in each}):
        end = start + width - 1
        if all(any(a >= start and b <= end for a, b in each) for each in spans.values()):
            return True
    return False
