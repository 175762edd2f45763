"""Benchmark: matching as production runs it, chunk by chunk through one worker's edition.

    .venv/bin/python -m bench.match [--subscribers N] [--papers N] [--seed N]

The workload (fixed seed, :mod:`tests.support.synthetic`): an edition of 1,000 papers
(titles and ~1,500-character abstracts from a word-bigram chain over the example pages,
1-8 authors), 50 topics, and 100,000 subscribers (× ``BENCH_SCALE``) of
:func:`~tests.support.synthetic.make_population`: 1-20 filters each (median 4) from a
vocabulary of ~38,000 words and phrases drawn Zipf, with phrases, ``OR``, ``NOT``, prefixes
and ``title:``/``abstract:``/``author:`` fields; 30% follow 1-3 topics; one in five has
1-5 papers already sent.

Measured (CPU time, one core): :func:`digest.matching.ranking.select_for_subscribers` on
every chunk of ``DIGEST_CHUNK_SIZE`` subscribers in turn, the edition prepared once
(:func:`~digest.matching.ranking.prepare_edition`) and shared by the chunks as a worker
shares it, reasons included — what planning spends on matching per subscriber
(``us_per_subscriber``; goal ≤ 50 µs). ``rank_only_warm_us_per_subscriber`` is the same
chunks ranked again without reasons, every query already evaluated: the engine's part.
The baseline, in the same run on the first ``--baseline`` subscribers: the same
function given the papers instead, so each chunk indexes the edition and parses and
evaluates every query again.

Correctness (the bench exits 1 when it fails): on 10,000 subscribers (× ``BENCH_SCALE``,
at least 200) matched the same way on an edition of 100 of the papers, and on 200 of
them (× ``BENCH_SCALE``, at least 10) on the full edition, each selection must equal the reference's
(:func:`digest.matching.engine.reference_top`: paper ids in order, points) and each
reason the one worded from the reference evaluator's matches and
:func:`digest.matching.query.explain` hits.

Prints one JSON line. No database needed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digest.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from digest.matching.engine import (  # noqa: E402
    STRONG_POINTS,
    Match,
    PaperText,
    Reason,
    rank_subscribers,
    reference_hits,
    reference_points,
    reference_top,
)
from digest.matching.query import Query, QueryError, parse_query  # noqa: E402
from digest.matching.ranking import (  # noqa: E402
    Candidate,
    Selection,
    SubscriberSpec,
    prepare_edition,
    reason_text,
    select_for_subscribers,
)
from tests.support.synthetic import (  # noqa: E402
    filter_vocabulary,
    make_papers,
    make_population,
    make_topics,
    population_vocabulary,
    read_pages,
)

SCALE = float(os.environ.get("BENCH_SCALE") or 1)
GOAL_US = 50.0


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_chunks(
    specs: Sequence[SubscriberSpec],
    papers,  # a PreparedEdition shared by the chunks, or the papers (rebuilt per chunk)
    excluded: Mapping[int, set[int]],
    topics: Mapping[int, tuple[str, str]],
) -> tuple[dict[int, list[Selection]], float]:
    """Every chunk of ``DIGEST_CHUNK_SIZE`` in turn; returns the selections and the CPU
    seconds."""
    size = settings.DIGEST_CHUNK_SIZE
    out: dict[int, list[Selection]] = {}
    started = time.process_time()
    for lo in range(0, len(specs), size):
        chunk = specs[lo : lo + size]
        out.update(
            select_for_subscribers(
                chunk, papers, limit=settings.DIGEST_MAX_PAPERS, excluded=excluded, topics=topics
            )
        )
    return out, time.process_time() - started


class Reference:
    """The reference evaluator's selections and reasons, each (query, paper) worked out
    once."""

    def __init__(self, papers: Sequence[PaperText], topics: Mapping[int, tuple[str, str]]):
        self.papers = list(papers)
        self.topics = topics
        self._parsed: dict[str, Query | None] = {}
        self._points: dict[tuple[str, int], float] = {}

    def query(self, text: str) -> Query | None:
        if text not in self._parsed:
            try:
                self._parsed[text] = parse_query(text)
            except QueryError:
                self._parsed[text] = None
        return self._parsed[text]

    def points(self, query: Query, paper: PaperText) -> float:
        # Keyed by the text as written too: plain words may earn more than the same
        # query written with quotes.
        key = (query.source, paper.id)
        if key not in self._points:
            self._points[key] = reference_points(query, paper)
        return self._points[key]

    def selections(self, spec: SubscriberSpec, excluded: set[int]) -> list[Selection]:
        items = [(t, None, self.query(t)) for t in spec.filters]
        items += [(None, tid, self.query(self.topics[tid][1])) for tid in spec.topic_ids]
        queries = [q for _, _, q in items if q is not None]
        # reference_top, fed from the memo: the same ordering rule, paper by paper.
        scored = []
        for paper in self.papers:
            if paper.id not in excluded:
                points = sum(self.points(q, paper) for q in queries)
                if points:
                    scored.append((-points, -paper.trend, paper.id))
        scored.sort()
        by_id = {p.id: p for p in self.papers}
        names = {tid: name for tid, (name, _) in self.topics.items()}
        out = []
        for neg_points, _, pid in scored[: settings.DIGEST_MAX_PAPERS]:
            p = by_id[pid]
            reasons = tuple(
                Reason(text, tid, self.points(q, p) >= STRONG_POINTS, reference_hits(q, p))
                for text, tid, q in items
                if q is not None and self.points(q, p)
            )
            score = -neg_points  # compared as points: the trend fraction is the engine's
            out.append(Selection(pid, reason_text(Match(pid, score, reasons), names), score))
        return out


def check(
    specs: Sequence[SubscriberSpec],
    got: Mapping[int, list[Selection]],
    reference: Reference,
    excluded: Mapping[int, set[int]],
) -> int:
    """How many subscribers' selections differ from the reference's (ids, points,
    reasons)."""
    wrong = 0
    for spec in specs:
        expected = reference.selections(spec, excluded.get(spec.id, set()))
        mine = [(s.paper_id, points(s.score), s.reason) for s in got[spec.id]]
        if mine != [(s.paper_id, points(s.score), s.reason) for s in expected]:
            wrong += 1
    return wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=max(1_000, int(100_000 * SCALE)))
    parser.add_argument("--papers", type=int, default=1_000)
    parser.add_argument("--checked", type=int, default=max(200, int(10_000 * SCALE)))
    parser.add_argument("--baseline", type=int, default=max(500, int(5_000 * SCALE)))
    parser.add_argument("--seed", type=int, default=20240311)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):  # one core, whatever threads numpy may start
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    rng = np.random.default_rng(args.seed)
    titles, abstracts = read_pages()
    texts = make_papers(rng, args.papers, titles, abstracts)
    papers = [Candidate(p.id, p.title, p.abstract, p.authors, p.trend) for p in texts]
    topics = {
        tid: (f"Topic {tid}", query)
        for tid, query in make_topics(rng, *filter_vocabulary(titles, abstracts)).items()
    }
    vocab = population_vocabulary(titles, abstracts)
    n = args.subscribers
    specs = [
        SubscriberSpec(i, tuple(filters), tuple(topic_ids))
        for i, (filters, topic_ids, _) in enumerate(make_population(rng, n, vocab))
    ]
    paper_ids = [p.id for p in papers]
    excluded: dict[int, set[int]] = {}
    for sid in np.flatnonzero(rng.random(n) < 0.2).tolist():
        excluded[sid] = set(rng.choice(paper_ids, size=int(rng.integers(1, 6))).tolist())

    # The product: one edition per worker, shared by every chunk.
    started = time.process_time()
    edition = prepare_edition(papers)
    prepare_seconds = time.process_time() - started
    selected, seconds = run_chunks(specs, edition, excluded, topics)
    seconds += prepare_seconds
    us = seconds / n * 1e6

    # The same chunks again, ranking alone (the edition's queries now all evaluated):
    # what choosing the papers costs without wording the reasons.
    queries = {tid: query for tid, (_, query) in topics.items()}
    started = time.process_time()
    for lo in range(0, n, settings.DIGEST_CHUNK_SIZE):
        chunk = specs[lo : lo + settings.DIGEST_CHUNK_SIZE]
        rank_subscribers(
            edition.edition,
            [(s.id, s.filters, s.topic_ids) for s in chunk],
            queries,
            excluded=excluded,
            top_n=settings.DIGEST_MAX_PAPERS,
        )
    rank_us = (time.process_time() - started) / n * 1e6

    # Baseline: the edition indexed and every query parsed again for each chunk.
    base = specs[: args.baseline]
    _, base_seconds = run_chunks(base, papers, excluded, topics)
    base_us = base_seconds / len(base) * 1e6

    # Correctness: many subscribers on a small edition, a sample on the full one.
    small = papers[:100]
    checked = specs[: args.checked]
    small_selected, _ = run_chunks(checked, prepare_edition(small), excluded, topics)
    small_texts = [PaperText(p.id, p.title, p.abstract, p.authors, p.trend) for p in small]
    wrong = check(checked, small_selected, Reference(small_texts, topics), excluded)
    sampled = min(n, max(10, int(200 * SCALE)))
    sample = [specs[i] for i in rng.choice(n, size=sampled, replace=False).tolist()]
    wrong_full = check(sample, selected, Reference(texts, topics), excluded)
    # Reference_top itself, as the spec, on a few: the memo above must not drift from it.
    for spec in sample[: max(3, len(sample) // 10)]:
        queries = [_parse(t) for t in spec.filters] + [_parse(topics[t][1]) for t in spec.topic_ids]
        expected = reference_top(texts, queries, excluded=excluded.get(spec.id, ()), top_n=10)
        got = [(s.paper_id, points(s.score)) for s in selected[spec.id]]
        wrong_full += got != expected
    agrees = wrong == 0 and wrong_full == 0

    print(
        json.dumps(
            {
                "name": "match",
                "seconds": round(seconds, 3),
                "rate": round(n / seconds),
                "unit": "subscribers/s (CPU, one core)",
                "us_per_subscriber": round(us, 1),
                "rank_only_warm_us_per_subscriber": round(rank_us, 1),
                "baseline": "each chunk indexes the edition and parses its queries again",
                "baseline_us_per_subscriber": round(base_us, 1),
                "baseline_subscribers": len(base),
                "ratio": round(base_us / us, 2),
                "prepare_edition_seconds": round(prepare_seconds, 3),
                "chunk_size": settings.DIGEST_CHUNK_SIZE,
                "n_subscribers": n,
                "n_papers": len(papers),
                "filters_per_subscriber": round(sum(len(s.filters) for s in specs) / n, 2),
                "vocabulary": len(vocab),
                "distinct_queries": len(edition.edition.queries().weak) - 1,
                "peak_memory_mib": round(peak_mib(), 1),
                "agrees": agrees,
                "checked_subscribers": len(checked) + len(sample),
                "disagreements": wrong + wrong_full,
                "bench_scale": SCALE,
                "goal": f"<= {GOAL_US:g} us per subscriber",
                "goal_met": us <= GOAL_US,
            }
        )
    )
    if not agrees:
        sys.exit(1)


def points(score: float) -> float:
    """The points of an engine score (points + a trend fraction below 1/2)."""
    return score // 0.5 * 0.5


def _parse(text: str) -> Query | None:
    try:
        return parse_query(text)
    except QueryError:
        return None


if __name__ == "__main__":
    main()
