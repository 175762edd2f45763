"""Generated data for tests and benchmarks, from fixed seeds and the example pages.

* pages: :func:`generate_pages` — the daily-papers JSON and saved-text formats, pages
  that repeat papers of the page before with more upvotes;
* an edition and its subscribers for matching: :func:`make_papers` (titles and
  abstracts from a word-bigram chain over the example pages), :func:`make_filters`
  (Zipf-distributed words and phrases of the pages, in every query form) and
  :func:`make_topics`;
* a realistic population of subscribers: :func:`population_vocabulary` (every word and
  word pair of the example pages, ≥ 20,000 entries, ranked for a Zipf draw) and
  :func:`make_population` (1–20 filters each, topics, timezones);
* rendering: :func:`edition` (paper cards) and :func:`recipients`.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter, defaultdict
from datetime import date, timedelta
from typing import Any

import numpy as np

from digest.delivery.render import PaperCard, Recipient
from digest.matching.engine import PaperText
from digest.matching.query import fold, tokens
from tests.support import PAGES_DIR

ZIPF_EXPONENT = 1.1
N_TOPICS = 50
# Words too common to be anyone's filter.
STOPCARD_WORDS = frozenset(
    """a an and are as at be based by can for from in into is it its new of on or our
    the their this to towards via we what when which with without you your using vs
    do does how not all one two more than through over under beyond""".split()
)
HEADER_LINES = {"Get trending papers in your email inbox!", "byAK and the research community"}
# Generated pages: how many, papers per page, papers repeated from the page before.
PAGES, PER_PAGE, REPEATED = 100, 100, 20
# Rendering: papers per email and in the edition they are drawn from.
PAPERS_PER_EMAIL, EDITION_PAPERS = 10, 200
AUTHOR_FIRST = ["Wei", "Anna", "José", "Li", "Maria", "Ahmed", "Yuki", "Olga", "Kai", "Sara"]
AUTHOR_LAST = ["Zhang", "Müller", "García", "Wang", "Smith", "Kim", "Novák", "He", "Rossi", "Li"]
CARD_WORDS = (
    "diffusion transformer attention sparse mixture experts video segmentation "
    '<b>markup</b> & "quotes" state space mamba reasoning benchmark agents'
).split()


# --- Pages ------------------------------------------------------------------------------


def vocabulary() -> tuple[list[str], list[str]]:
    """Words of the example pages' titles and of their abstracts."""
    from digest.ingest.parsers import parse_page

    title_words: list[str] = []
    abstract_words: list[str] = []
    for page in sorted(PAGES_DIR.glob("*.txt")):
        for paper in parse_page(page.read_bytes(), source=str(page)).papers:
            title_words.extend(paper.title.split())
            abstract_words.extend(paper.abstract.split())
    return title_words, abstract_words


def generate_papers(rng: random.Random) -> list[list[dict[str, Any]]]:
    """``PAGES`` lists of ``PER_PAGE`` papers; each list repeats ``REPEATED`` papers of
    the one before, with more upvotes."""
    title_words, abstract_words = vocabulary()
    pages: list[list[dict[str, Any]]] = []
    serial = 0
    for index in range(PAGES):
        repeated = [
            {**paper, "upvotes": paper["upvotes"] + rng.randint(1, 50)}
            for paper in (pages[-1][:REPEATED] if pages else [])
        ]
        fresh = []
        for _ in range(PER_PAGE - len(repeated)):
            serial += 1
            fresh.append(
                {
                    # A serial number keeps titles (the identity of text-page papers) apart.
                    "title": " ".join(rng.choices(title_words, k=rng.randint(5, 12)))
                    + f" {serial}",
                    "summary": " ".join(rng.choices(abstract_words, k=rng.randint(80, 200))),
                    "id": f"25{index % 12 + 1:02d}.{serial:05d}",
                    "authors": [
                        {"name": f"{rng.choice(title_words)} {rng.choice(title_words)}"}
                        for _ in range(rng.randint(1, 12))
                    ],
                    "publishedAt": (date(2025, 1, 1) + timedelta(days=index)).isoformat(),
                    "upvotes": rng.randint(0, 300),
                    "ai_keywords": rng.sample(title_words, 4),
                    "githubRepo": f"https://github.com/lab-{serial % 97}/repo-{serial}",
                }
            )
        # Trending papers move up the page.
        pages.append(repeated[::-1] + fresh)
    return pages


def json_page(papers: list[dict[str, Any]]) -> bytes:
    """The daily-papers API shape (see digest.ingest.parsers.hf_json)."""
    return json.dumps(
        [{"paper": p, "title": p["title"], "numComments": len(p["authors"])} for p in papers]
    ).encode()


def text_page(papers: list[dict[str, Any]], page_day: date) -> bytes:
    """The saved text page shape (see digest.ingest.parsers.text)."""
    lines = ["new", "", "Daily Papers", "", page_day.strftime("%b %-d"), ""]
    for p in papers:
        published = date.fromisoformat(p["publishedAt"])
        lines += [
            p["title"],
            "",
            p["summary"],
            "",
            f"  • {len(p['authors'])} authors",
            "·",
            f"{published.strftime('%b %-d, %Y')} {p['upvotes']}",
            "",
        ]
    return "\n".join(lines).encode()


def generate_pages(seed: int = 20250311) -> list[tuple[str, bytes]]:
    """``PAGES`` pages, alternately JSON and text, as ``(source name, bytes)``."""
    rng = random.Random(seed)
    pages = []
    for index, papers in enumerate(generate_papers(rng)):
        if index % 2 == 0:
            pages.append((f"bench/page-{index:03d}.json", json_page(papers)))
        else:
            day = date(2025, 1, 1) + timedelta(days=index)
            pages.append((f"bench/page-{index:03d}.txt", text_page(papers, day)))
    return pages


# --- An edition and subscribers for matching ------------------------------------------


def read_pages() -> tuple[list[str], list[str]]:
    """Titles and abstracts of the example pages (lines told apart by length)."""
    titles, abstracts = [], []
    for path in sorted(PAGES_DIR.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if len(line) >= 300:
                abstracts.append(line)
            elif len(line) >= 25 and line not in HEADER_LINES and "authors" not in line:
                titles.append(line)
    return titles, abstracts


class Chain:
    """Word bigram chain over white-space separated words (punctuation kept)."""

    def __init__(self, texts: list[str]):
        self.next: dict[str, list[str]] = defaultdict(list)
        self.starts: list[str] = []
        for text in texts:
            words = text.split()
            self.starts.append(words[0])
            for a, b in zip(words, words[1:], strict=False):
                self.next[a].append(b)

    def text(self, rng: np.random.Generator, min_chars: int, max_words: int = 10**9) -> str:
        out: list[str] = []
        length = 0
        word = self.starts[rng.integers(len(self.starts))]
        while length < min_chars and len(out) < max_words:
            out.append(word)
            length += len(word) + 1
            options = self.next.get(word)
            if not options:
                word = self.starts[rng.integers(len(self.starts))]
            else:
                word = options[rng.integers(len(options))]
        return " ".join(out)


def make_papers(rng: np.random.Generator, n: int, titles, abstracts) -> list[PaperText]:
    title_chain, abstract_chain = Chain(titles), Chain(abstracts)
    first, last = AUTHOR_FIRST, AUTHOR_LAST
    papers = []
    for i in range(n):
        authors = tuple(
            f"{first[rng.integers(10)]} {last[rng.integers(10)]}" for _ in range(rng.integers(1, 9))
        )
        papers.append(
            PaperText(
                id=100_000 + i,
                title=title_chain.text(rng, 60, max_words=14).rstrip("."),
                abstract=abstract_chain.text(rng, 1500),
                authors=authors,
                trend=float(rng.gamma(2.0, 10.0)),
            )
        )
    return papers


def zipf_sampler(rng: np.random.Generator, items: list[str]):
    weights = 1.0 / np.arange(1, len(items) + 1) ** ZIPF_EXPONENT
    weights /= weights.sum()

    def draw(size: int) -> list[str]:
        picks = rng.choice(len(items), size=size, p=weights)
        return [items[i] for i in picks]

    return draw


def filter_vocabulary(titles, abstracts) -> tuple[list[str], list[str]]:
    """Filter words (title words by frequency over the pages) and phrases (frequent pairs
    of such words, adjacent in the text)."""
    words: Counter[str] = Counter()
    pairs: Counter[str] = Counter()
    for text in titles + abstracts:
        toks = tokens(fold(text))
        words.update(t for t in toks if t not in STOPCARD_WORDS and not t.isdigit())
        pairs.update(
            f"{a} {b}"
            for a, b in zip(toks, toks[1:], strict=False)
            if a not in STOPCARD_WORDS and b not in STOPCARD_WORDS and len(a) > 2 and len(b) > 2
        )
    in_titles = {t for title in titles for t in tokens(fold(title))}
    vocab = [w for w, _ in words.most_common() if w in in_titles and len(w) > 1]
    phrases = [p for p, c in pairs.most_common() if c >= 2]
    return vocab, phrases


def make_filters(rng: np.random.Generator, n: int, vocab, phrases) -> list[str]:
    word = zipf_sampler(rng, vocab)
    phrase = zipf_sampler(rng, phrases)
    kinds = rng.choice(
        ["word", "and", "phrase", "or", "not", "prefix", "title"],
        size=n,
        p=[0.40, 0.25, 0.12, 0.08, 0.06, 0.05, 0.04],
    )
    w1, w2, ph = word(n), word(n), phrase(n)
    caps = rng.random(n) < 0.2
    out = []
    for i, kind in enumerate(kinds):
        a, b = w1[i], w2[i]
        if kind == "word":
            text = a
        elif kind == "and":
            text = f"{a} {b}" if a != b else a
        elif kind == "phrase":
            text = f'"{ph[i]}"'
        elif kind == "or":
            text = f'{a} OR "{ph[i]}"'
        elif kind == "not":
            text = f"{a} -{b}" if a != b else a
        elif kind == "prefix":
            text = (a[:5] + "*") if len(a) >= 4 else a
        else:
            text = f"title:{a}"
        out.append(text.capitalize() if caps[i] else text)
    return out


def make_topics(rng: np.random.Generator, vocab, phrases) -> dict[int, str]:
    word = zipf_sampler(rng, vocab[:300])
    phrase = zipf_sampler(rng, phrases[:300])
    topics = {}
    for tid in range(1, N_TOPICS + 1):
        parts = word(2) + [f'"{p}"' for p in phrase(int(rng.integers(1, 3)))]
        topics[tid] = "(" + " OR ".join(parts) + ")"
        if tid % 5 == 0:
            topics[tid] += f" -{word(1)[0]}"
    return topics


# --- A realistic population ------------------------------------------------------------

# Where subscribers live, most in a few zones (weights), so due times spread over the day.
TIMEZONES = {
    "America/New_York": 14, "America/Los_Angeles": 10, "Europe/London": 8, "Europe/Berlin": 10,
    "Europe/Paris": 6, "Asia/Shanghai": 12, "Asia/Tokyo": 6, "Asia/Kolkata": 8, "Asia/Seoul": 4,
    "America/Sao_Paulo": 4, "Australia/Sydney": 3, "UTC": 5, "Africa/Lagos": 2,
    "Asia/Singapore": 3, "America/Chicago": 5,
}  # fmt: skip
MAX_FILTERS_EACH, MEDIAN_FILTERS = 20, 4
TOPIC_SHARE, MAX_TOPICS_EACH = 0.30, 3
GENERIC_SHARE = 0.05


def population_vocabulary(titles: list[str], abstracts: list[str]) -> list[str]:
    """Filter terms for :func:`make_population`, most popular first: every word of the
    example pages, every pair of such words adjacent in them and every three-word run
    (written as phrases), ranked by how often the pages use them (a title
    counts three times, a word twice), at least 20,000 entries. Numbers, stop words and
    words in more than :data:`GENERIC_SHARE` of the texts ("model", "learning": nobody's
    filter) are left out."""
    words: Counter[str] = Counter()
    pairs: Counter[str] = Counter()
    texts_with: Counter[str] = Counter()
    for weight, texts in ((3, titles), (1, abstracts)):
        for text in texts:
            toks = [t for t in tokens(fold(text)) if not t.isdigit()]
            texts_with.update(set(toks))
            for t in toks:
                if t not in STOPCARD_WORDS and len(t) > 1:
                    words[t] += weight
            for a, b in zip(toks, toks[1:], strict=False):
                if a not in STOPCARD_WORDS and b not in STOPCARD_WORDS and len(a) > 1 < len(b):
                    pairs[f'"{a} {b}"'] += weight
            for a, b, c in zip(toks, toks[1:], toks[2:], strict=False):
                if a not in STOPCARD_WORDS and c not in STOPCARD_WORDS and len(b) > 1:
                    pairs[f'"{a} {b} {c}"'] += weight - 1  # those of abstracts: the tail
    generic = {t for t, n in texts_with.items() if n > GENERIC_SHARE * len(titles + abstracts)}
    ranked = sorted(
        [(-n * 2, w) for w, n in words.items() if w not in generic]
        + [(-n, p) for p, n in pairs.items()]
    )
    vocab = [term for _, term in ranked]
    if len(vocab) < 20_000:
        raise ValueError(f"the example pages give only {len(vocab)} words and phrases")
    return vocab


def filter_counts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Filters per subscriber: log-normal around :data:`MEDIAN_FILTERS`, 1 to 20."""
    counts = np.rint(rng.lognormal(np.log(MEDIAN_FILTERS), 0.75, size=n))
    return np.clip(counts, 1, MAX_FILTERS_EACH).astype(np.int64)


def make_population_filters(rng: np.random.Generator, n: int, vocab: list[str]) -> list[str]:
    """``n`` filter texts over ``vocab`` (Zipf): single words or phrases, two-term ANDs,
    ORs of two or three, exclusions (``-word`` and ``NOT``), prefixes, ``title:``,
    ``abstract:`` and ``author:`` fields, some capitalised."""
    term = zipf_sampler(rng, vocab)
    kinds = rng.choice(
        ["one", "and", "or", "not", "prefix", "title", "abstract", "author"],
        size=n,
        p=[0.42, 0.22, 0.10, 0.07, 0.05, 0.06, 0.03, 0.05],
    )
    a, b, c = term(n), term(n), term(n)
    caps = rng.random(n) < 0.15
    first = rng.integers(len(AUTHOR_FIRST), size=n)
    last = rng.integers(len(AUTHOR_LAST), size=n)
    out = []
    for i, kind in enumerate(kinds):
        x, y = a[i], b[i]
        if kind == "one" or (x == y and kind in ("and", "or", "not")):
            text = x
        elif kind == "and":
            text = f"{x} {y}"
        elif kind == "or":
            text = f"{x} OR {y}" + (f" OR {c[i]}" if i % 3 == 0 and c[i] not in (x, y) else "")
        elif kind == "not":
            text = f"{x} -{y}" if i % 2 else f"{x} NOT {y}"
        elif kind == "prefix":
            word = x.strip('"').split()[0]
            text = f"{word[:5]}*" if len(word) >= 4 else word
        elif kind == "author":
            name = f"{AUTHOR_FIRST[first[i]]} {AUTHOR_LAST[last[i]]}"
            text = f'author:"{name}"' if i % 2 else f"author:{AUTHOR_LAST[last[i]]}"
        else:
            text = f"{kind}:{x}"
        out.append(text.capitalize() if caps[i] and kind != "author" else text)
    return out


def make_population(
    rng: np.random.Generator, n: int, vocab: list[str], n_topics: int = N_TOPICS
) -> list[tuple[list[str], list[int], str]]:
    """``n`` subscribers as ``(filters, topic ids, timezone)``: 1 to 20 distinct filters
    each (median 4, :func:`make_population_filters`), :data:`TOPIC_SHARE` of them
    following 1 to 3 of topics ``1..n_topics``, timezones drawn from :data:`TIMEZONES`."""
    counts = filter_counts(rng, n)
    texts = make_population_filters(rng, int(counts.sum()), vocab)
    follows = rng.random(n) < TOPIC_SHARE
    topic_counts = rng.integers(1, MAX_TOPICS_EACH + 1, size=n)
    zones = list(TIMEZONES)
    weights = np.array(list(TIMEZONES.values()), dtype=float)
    picks = rng.choice(len(zones), size=n, p=weights / weights.sum()).tolist()
    out = []
    at = 0
    for i, count in enumerate(counts.tolist()):
        filters = list(dict.fromkeys(texts[at : at + count]))
        at += count
        topic_ids = (
            sorted({int(t) for t in rng.integers(1, n_topics + 1, size=topic_counts[i])})
            if follows[i]
            else []
        )
        out.append((filters, topic_ids, zones[picks[i]]))
    return out


# --- Rendering --------------------------------------------------------------------------


def edition(rng: random.Random) -> list[PaperCard]:
    return [
        PaperCard(
            id=n,
            title=" ".join(rng.choices(CARD_WORDS, k=rng.randint(5, 14))).capitalize(),
            url=f"https://huggingface.co/papers/2503.{n:05d}",
            abstract=" ".join(rng.choices(CARD_WORDS, k=rng.randint(80, 160))),
            # A fifth from text pages: no count, no names, no links.
            upvotes=rng.randint(0, 400) if n % 5 else None,
            published_on=date(2026, 3, 1) - timedelta(days=rng.randint(0, 9)),
            authors_count=(count := rng.randint(1, 30)),
            authors=tuple(
                f"{rng.choice(CARD_WORDS).capitalize()} {rng.choice(CARD_WORDS).capitalize()}"
                for _ in range(min(count, 3) if n % 5 else 0)
            ),
            gained=rng.randint(0, 60) if n % 5 else None,
            gained_label="today",
            arxiv_id=f"2503.{n:05d}" if n % 5 else None,
            github_repo=f"https://github.com/lab{n}/{rng.choice(CARD_WORDS)}" if n % 3 == 0 else "",
            project_page=f"https://lab{n}.example.org/" if n % 7 == 0 else "",
            ai_summary=" ".join(rng.choices(CARD_WORDS, k=rng.randint(15, 30))).capitalize() + "."
            if n % 2
            else "",
        )
        for n in range(1, EDITION_PAPERS + 1)
    ]


def recipients(rng: random.Random, papers: list[PaperCard], count: int) -> list[dict]:
    """``count`` digests' render arguments: papers, reasons, a :class:`Recipient`,
    frequency, edition, and ``feedback``, each recipient's signed vote links
    (:func:`subscriptions.tokens.feedback_links`, made here: their timestamp is the
    same whenever the emails are rendered again)."""
    # Imported here: the models it loads need Django set up, which the benchmarks
    # importing this module do after their imports.
    from subscriptions.tokens import feedback_links

    out = []
    for n in range(count):
        chosen = rng.sample(papers, PAPERS_PER_EMAIL)
        out.append(
            {
                "papers": chosen,
                "reasons": [f'matched "{rng.choice(CARD_WORDS)}" in title' for _ in chosen],
                "recipient": Recipient(
                    email=f"reader{n}@example.org",
                    unsubscribe_url=f"https://papers.example.org/unsubscribe/tok{n:06d}:sig-_{n}/",
                    manage_url=f"https://papers.example.org/manage/link/tok{n:06d}.0:sig-_{n}/",
                    web_url=f"https://papers.example.org/d/{n}:sig-_{n}/",
                ),
                "frequency": "daily" if n % 4 else "weekly",
                "edition": "2026-03-08" if n % 4 else "2026-W10",
                "feedback": feedback_links(uuid.UUID(int=n + 1)),
            }
        )
    return out


def relevance_scoring_cost(
    rng: np.random.Generator,
    subscribers: int,
    papers: int,
    dimensions: int,
    chunk: int = 1_000,
    disliking: float = 0.3,
) -> float:
    """CPU µs per subscriber of :func:`digest.relevance.score.learned_scores_many` over
    ``subscribers`` learners, in chunks of ``chunk`` as planning meets them, against an
    edition of ``papers`` random unit vectors: each learner has a profile and one liked
    paper, and ``disliking`` of them two disliked papers. BLAS on one thread: CPU time
    summed over spinning threads would overstate it."""
    import time

    from threadpoolctl import threadpool_limits

    from digest.relevance.score import EditionVectors, Learner, learned_scores_many
    from digest.relevance.vectors import normalise

    edition = EditionVectors(
        tuple(range(papers)),
        normalise(rng.standard_normal((papers, dimensions)).astype(np.float32)),
    )
    rows = normalise(rng.standard_normal((100, dimensions)).astype(np.float32))
    none = np.zeros((0, dimensions), np.float32)
    kinds = [
        Learner(
            rows[i],
            rows[i + 1 : i + 2],
            ("t",),
            ("liked",),
            rows[i + 2 : i + 4] if i < 100 * disliking else none,
            frozenset(),
        )
        for i in range(96)
    ]
    with threadpool_limits(1):
        started = time.process_time()
        for lo in range(0, subscribers, chunk):
            batch = {k: kinds[k % 96] for k in range(lo, min(subscribers, lo + chunk))}
            learned_scores_many(batch, edition)
        return (time.process_time() - started) / max(subscribers, 1) * 1e6
