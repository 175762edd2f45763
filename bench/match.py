"""Benchmark: one edition's papers against a million subscribers.

    .venv/bin/python bench/match.py [--subscribers N] [--papers N] [--sample N] [--seed N]

Prints one JSON line: ``seconds`` is the wall-clock time of indexing the papers plus
ranking every subscriber (:func:`digest.engine.index_papers` +
:func:`digest.engine.rank_subscribers`, filter texts parsed inside, pinned to one core)
and ``cpu_seconds`` the CPU time it used (lower than ``seconds`` when other processes
share the core), ``rate`` subscribers per second of wall-clock time, ``peak_memory_mib`` the
process's peak resident size (inputs included), ``ratio`` the reference evaluator's time
per subscriber (:func:`digest.engine.reference_top` on ``--sample`` random subscribers)
over the engine's, and ``agrees`` whether those subscribers' top 10 are identical
(paper ids and points) in both. Goals: ``seconds`` ≤ 10, ``peak_memory_mib`` ≤ 2048,
``ratio`` ≥ 1000.

The workload, generated from a fixed seed: abstracts (~1,500 characters) and titles from
a word-bigram chain over the example pages in ``examples/pages``; 5 filters per subscriber
whose terms (title words of the example pages, common English words left out) and phrases
(their frequent word pairs) are drawn from Zipf distributions, so popular filters are
shared; single words, two-word ANDs, phrases, ORs, exclusions, prefixes and title-only
words, some capitalised; 2 topics of 50 per subscriber; one subscriber in five has 1-5
papers already sent.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.engine import (  # noqa: E402
    PaperText,
    index_papers,
    rank_subscribers,
    reference_top,
)
from digest.query import fold, parse_query, tokens  # noqa: E402

PAGES = ROOT / "examples" / "pages"
ZIPF_EXPONENT = 1.1
N_TOPICS = 50
# Words too common to be anyone's filter.
STOPWORDS = frozenset(
    """a an and are as at be based by can for from in into is it its new of on or our
    the their this to towards via we what when which with without you your using vs
    do does how not all one two more than through over under beyond""".split()
)
HEADER_LINES = {"Get trending papers in your email inbox!", "byAK and the research community"}


def read_pages() -> tuple[list[str], list[str]]:
    """Titles and abstracts of the example pages (lines told apart by length)."""
    titles, abstracts = [], []
    for path in sorted(PAGES.glob("*.txt")):
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
    first = ["Wei", "Anna", "José", "Li", "Maria", "Ahmed", "Yuki", "Olga", "Kai", "Sara"]
    last = ["Zhang", "Müller", "García", "Wang", "Smith", "Kim", "Novák", "He", "Rossi", "Li"]
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
        words.update(t for t in toks if t not in STOPWORDS and not t.isdigit())
        pairs.update(
            f"{a} {b}"
            for a, b in zip(toks, toks[1:], strict=False)
            if a not in STOPWORDS and b not in STOPWORDS and len(a) > 2 and len(b) > 2
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


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--papers", type=int, default=1_000)
    parser.add_argument("--sample", type=int, default=200, help="subscribers checked by reference")
    parser.add_argument("--seed", type=int, default=20240311)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):  # one core, whatever threads numpy may start
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    rng = np.random.default_rng(args.seed)
    titles, abstracts = read_pages()
    papers = make_papers(rng, args.papers, titles, abstracts)
    vocab, phrases = filter_vocabulary(titles, abstracts)
    topics = make_topics(rng, vocab, phrases)
    n = args.subscribers
    texts = make_filters(rng, 5 * n, vocab, phrases)
    topic_picks = rng.integers(1, N_TOPICS + 1, size=(n, 2)).tolist()
    subscribers = [(i, texts[5 * i : 5 * i + 5], topic_picks[i]) for i in range(n)]
    del texts
    excluded = {}
    paper_ids = [p.id for p in papers]
    for sid in np.flatnonzero(rng.random(n) < 0.2).tolist():
        excluded[sid] = set(rng.choice(paper_ids, size=int(rng.integers(1, 6))).tolist())

    start, cpu_start = time.perf_counter(), time.process_time()
    edition = index_papers(papers)
    ranking = rank_subscribers(edition, subscribers, topics, excluded=excluded, top_n=10)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start

    sample = rng.choice(n, size=min(args.sample, n), replace=False)
    agrees = True
    start = time.perf_counter()
    for row in sample.tolist():
        sid, filters, topic_ids = subscribers[row]
        queries = [parse_query(t) for t in filters] + [parse_query(topics[t]) for t in topic_ids]
        expected = reference_top(papers, queries, excluded=excluded.get(sid, ()), top_n=10)
        got = [
            (int(p), int(s))
            for p, s in zip(ranking.paper_ids[row], ranking.points[row], strict=True)
            if p >= 0
        ]
        agrees = agrees and got == expected
    reference_per_subscriber = (time.perf_counter() - start) / len(sample)

    print(
        json.dumps(
            {
                "name": "match",
                "seconds": round(seconds, 3),
                "cpu_seconds": round(cpu_seconds, 3),
                "rate": round(n / seconds),
                "unit": "subscribers/s",
                "peak_memory_mib": round(peak_mib(), 1),
                "n_subscribers": n,
                "n_papers": len(papers),
                "ratio": round(reference_per_subscriber / (seconds / n)),
                "agrees": agrees,
                "distinct_queries": ranking.distinct_queries,
                "sample": len(sample),
            }
        )
    )


if __name__ == "__main__":
    main()
