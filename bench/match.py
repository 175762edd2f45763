"""Benchmark: one edition's papers against a million subscribers.

    .venv/bin/python -m bench.match [--subscribers N] [--papers N] [--sample N] [--seed N]

Prints one JSON line: ``seconds`` is the wall-clock time of indexing the papers plus
ranking every subscriber (:func:`digest.matching.engine.index_papers` +
:func:`digest.matching.engine.rank_subscribers`, filter texts parsed inside, pinned to one core)
and ``cpu_seconds`` the CPU time it used (lower than ``seconds`` when other processes
share the core), ``rate`` subscribers per second of wall-clock time, ``peak_memory_mib`` the
process's peak resident size (inputs included), ``ratio`` the reference evaluator's time
per subscriber (:func:`digest.matching.engine.reference_top` on ``--sample`` random subscribers)
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
import time

import numpy as np

from digest.matching.engine import (
    index_papers,
    rank_subscribers,
    reference_top,
)
from digest.matching.query import parse_query
from tests.support.synthetic import (
    N_TOPICS,
    filter_vocabulary,
    make_filters,
    make_papers,
    make_topics,
    read_pages,
)


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
