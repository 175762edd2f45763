"""Benchmark: does the learned relevance beat keyword filters, offline, on real papers?

    .venv/bin/python -m bench.relevance [--votes N]

The papers: every paper of the example pages (``examples/pages/``, the same pages as the
shared collection) and the test fixtures' pages (``tests/fixtures/``), parsed by the
product's parsers and merged by arXiv id or title — 191 papers. The pages carry few
dates, so editions are made by a seeded shuffle into 8 daily editions: the first four
are the history the subscribers voted on, the last four, taken together as one weekly
edition, are scored (a time split: nothing scored was seen before).

The subscribers: six, each with the filter such a reader types and a set of relevant
papers judged by hand from the titles and abstracts (:data:`READERS`). Each receives the
keyword digests of the history and votes on the first ``--votes`` papers shown (5):
"more like this" on a relevant one, "less like this" on the others. The profile is
:func:`digest.relevance.profile.centroid` of those votes and of the papers the history
digests carried.

Scored on the later edition, for three rankers through the product's own
:func:`digest.matching.ranking.select_for_subscribers`: keyword-only (no profile),
TF-IDF vectors (scikit-learn, fitted on the papers' text, no model) and the chosen model
(:mod:`digest.relevance.embed`). For each: nDCG@10 and precision@10 of the digest (matches
then up to 3 suggestions) and of the suggestions alone (up to 10; precision over those
shown, at most 10, with their mean count). Goals (docs/relevance.md): the learned digest's
nDCG@10 ≥ 1.2 × keyword-only's after five votes; suggestions' precision@10 ≥ 0.5.

Also measured: embedding throughput on one core (papers/s; goal ≥ 100): torch on one
thread (``torch.set_num_threads(1)``) through the product's :func:`embed_texts`, timed as
the process's CPU time so that any other thread's work counts too, the least of three
passes over the papers after an untimed one (the first builds the kernels). In the same run, as
baselines: the former configuration (float32, 128 word pieces: ``former_papers_per_s``,
``rate_ratio_to_former``, and ``cos_to_former``, the cosine between each paper's two
vectors), TF-IDF's rate, and the learned scoring's cost per subscriber for a daily
edition of 200 papers at 100,000 subscribers (× ``BENCH_SCALE``, at least 1,000; goal ≤
50 µs; :func:`tests.support.synthetic.relevance_scoring_cost`, 30% with two disliked
papers).

Correctness (exit 1 when it fails): every hand-judged title names exactly one paper,
every reader's filter matches at least one scored paper, keyword-only digests are the
engine's order, and no suggestion was matched by the reader's filter, sent before or
voted on.

Prints one JSON line. No database needed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digest.settings")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import django  # noqa: E402

django.setup()

from digest.ingest.parsers import normalise_arxiv_id, normalise_title, parse_page  # noqa: E402
from digest.matching.query import parse_query, reference_match  # noqa: E402
from digest.matching.ranking import (  # noqa: E402
    Candidate,
    Selection,
    SubscriberSpec,
    prepare_edition,
    select_for_subscribers,
)
from digest.matching.trend import trend_score  # noqa: E402
from digest.relevance.embed import (  # noqa: E402
    MODEL_NAME,
    compute_dtype,
    embed_texts,
    paper_text,
)
from digest.relevance.profile import Evidence, centroid  # noqa: E402
from digest.relevance.score import EditionVectors, Learner  # noqa: E402
from digest.relevance.vectors import Matrix, normalise  # noqa: E402
from tests.support import PAGES_DIR, ROOT  # noqa: E402
from tests.support.synthetic import relevance_scoring_cost  # noqa: E402

SCALE = float(os.environ.get("BENCH_SCALE") or 1)
EDITIONS, HISTORY = 8, 4
DIGEST_LIMIT, DIGEST_SUGGESTIONS, SUGGESTIONS_ALONE = 10, 3, 10
GOAL_LIFT, GOAL_PRECISION, GOAL_RATE, GOAL_US = 1.2, 0.5, 100, 50
FORMER_TOKENS = 128
TIMED_PASSES = 3
TODAY = date(2026, 11, 30)
NOW = datetime(2026, 11, 30, 8, tzinfo=UTC)


@dataclass(frozen=True)
class Reader:
    """A simulated subscriber: the filter they type and the titles (prefixes, any case)
    of the papers they would want, judged by hand."""

    name: str
    filter: str
    relevant: tuple[str, ...]


READERS = (
    Reader(
        "efficient vision transformers",
        '"vision transformer"',
        (
            "Making Vision Transformers Efficient from A Token Sparsification View",
            "EfficientFormer: Vision Transformers at MobileNet Speed",
            "TurboViT",
            "Global Vision Transformer Pruning",
            "Efficient Visual Transformer by Learnable Token Merging",
            "Token Transforming: A Unified and Training-Free Token Compression",
            "Adaptive MLP Pruning for Large Vision Transformers",
            "S2AFormer",
            "Searching for Efficient Multi-Stage Vision Transformers",
            "Expediting Large-Scale Vision Transformer",
            "IA-RED^2",
            "EMOv2",
            "MobileMamba",
            "EfficientVMamba",
            "FMViT",
            "Escaping the Big Data Paradigm with Compact Transformers",
            "SLAB: Efficient Transformers",
            "Token Reduction Should Go Beyond Efficiency",
            "Fcaformer",
            "You Need Multiple Exiting",
        ),
    ),
    Reader(
        "state space models and long sequences",
        "mamba",
        (
            "Mamba: Linear-Time Sequence Modeling",
            "A Survey of Mamba",
            "An Empirical Study of Mamba-based Language Models",
            "MobileMamba",
            "EfficientVMamba",
            "Computation-Efficient Era: A Comprehensive Survey of State Space Models",
            "A Unified View of Long-Sequence Models",
            "Long Range Arena",
            "Efficient Long-Range Transformers",
            "LMUFormer",
            "RMT: Retentive Networks",
            "Best of Both Worlds: Advantages of Hybrid Graph Sequence Models",
            "ATLAS: Learning to Optimally Memorize",
            "What comes after transformers?",
            "PoNet: Pooling Network for Efficient Token Mixing in Long Sequences",
        ),
    ),
    Reader(
        "how transformers learn in context",
        '"in-context"',
        (
            "What learning algorithm is in-context learning?",
            "Understanding In-Context Learning in Transformers",
            "Why Can GPT Learn In-Context?",
            "Learning Transformer Programs",
            "Your Transformer May Not be as Powerful as You Expect",
            "On the Expressive Power of a Variant of the Looped Transformer",
            "Universal Approximation Theorem for a Single-Layer Transformer",
            "Scan and Snap",
            "Dissecting Multiplication in Transformers",
            "Bigram Subnetworks",
            "The Impact of Positional Encoding on Length Generalization",
        ),
    ),
    Reader(
        "image and video generation",
        "diffusion",
        (
            "Alleviating Distortion in Image Generation via Multi-Resolution Diffusion",
            "DiffFashion",
            "Exploring the Role of Large Language Models in Prompt Encoding for Diffusion",
            "DiTCtrl",
            "Lumina-T2X",
            "Diffscaler",
            "Scaling Rectified Flow Transformers",
            "Cached Attention for Faster Video Diffusion Sampling",
            "Latent Diffusion for Sparse-View 3D Reconstruction",
            "ENAT: Rethinking Spatial-temporal Interactions in Token-based Image Synthesis",
            "StyleSwin",
            "Learnings from Scaling Visual Tokenizers",
            "Reduce Information Loss in Transformers for Pluralistic Image Inpainting",
            "Convolutional Transformer based Dual Discriminator Generative Adversarial Networks",
            "Michelangelo",
            "CGB-DM",
        ),
    ),
    Reader(
        "brains and medical imaging",
        "brain OR medical",
        (
            "fMRI-3D",
            "NeuroBOLT",
            "Neuroformer",
            "Visio-Linguistic Brain Encoding",
            "D-Former: A U-shaped Dilated Transformer for 3D Medical Image Segmentation",
            "Computation-Efficient Era: A Comprehensive Survey of State Space Models",
            "TransUNet",
            "Swin UNETR",
            "Automatic Differential Diagnosis",
            "Enhancing Fluorescence Lifetime Parameter Estimation",
        ),
    ),
    Reader(
        "fast and small language model inference",
        "quantization OR quantized",
        (
            "LLM-FP4",
            "MixPE",
            "Quantizable Transformers",
            "Lean Attention",
            "Pre-gated MoE",
            "Block Transformer: Global-to-Local Language Modeling for Fast Inference",
            "A Survey of Techniques for Optimizing Transformer Inference",
            "A Practical Survey on Faster and Lighter Transformers",
            "Scaling Sparse Mixture-of-Experts",
            "Adaptive Computation Modules",
            "Latency Adjustable Transformer Encoder",
            "DSFormer",
            "VTrans",
            "ByteTransformer",
            "MemoryFormer",
            "MatFormer",
            "Return of the Encoder",
        ),
    ),
)


def load_papers() -> list[Candidate]:
    """Every paper of the example and fixture pages, once (arXiv id, else title)."""
    pages = sorted(PAGES_DIR.glob("*.txt")) + sorted((ROOT / "tests" / "fixtures").glob("*/*"))
    seen: dict[str, Candidate] = {}
    for path in pages:
        if path.suffix not in {".txt", ".html", ".json"}:
            continue
        for paper in parse_page(path.read_bytes(), source=str(path), today=TODAY).papers:
            key = normalise_arxiv_id(paper.arxiv_id or "") or normalise_title(paper.title)
            if key in seen or not paper.abstract:
                continue
            trend = trend_score(paper.upvotes or 0, 0, paper.published_on or TODAY, NOW)
            seen[key] = Candidate(
                len(seen) + 1, paper.title, paper.abstract, tuple(paper.authors), trend
            )
    return list(seen.values())


def edition_of(paper: Candidate) -> int:
    return int(hashlib.sha256(paper.title.encode()).hexdigest(), 16) % EDITIONS


def ndcg(ranked: list[int], relevant: set[int], k: int = 10) -> float:
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    got = sum(1 / math.log2(i + 2) for i, pk in enumerate(ranked[:k]) if pk in relevant)
    return got / ideal if ideal else 0.0


def precision(ranked: list[int], relevant: set[int], k: int = 10) -> float:
    return sum(pk in relevant for pk in ranked[:k]) / k


def shown_precision(ranked: list[int], relevant: set[int], k: int = 10) -> float | None:
    top = ranked[:k]
    return sum(pk in relevant for pk in top) / len(top) if top else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--votes", type=int, default=5)
    args = parser.parse_args()
    problems: list[str] = []

    papers = load_papers()
    by_id = {p.id: p for p in papers}
    relevant: dict[str, set[int]] = {}
    for reader in READERS:
        ids = set()
        for prefix in reader.relevant:
            found = [p.id for p in papers if p.title.lower().startswith(prefix.lower())]
            if len(found) != 1:
                problems.append(f"{reader.name}: {prefix!r} names {len(found)} papers")
            ids.update(found)
        relevant[reader.name] = ids
    history = [p for p in papers if edition_of(p) < HISTORY]
    later = [p for p in papers if edition_of(p) >= HISTORY]
    texts = {p.id: paper_text(p.title, p.abstract) for p in papers}

    # --- Vectors: the chosen model (one core, timed) and TF-IDF (the baseline) ---------
    import torch
    from sklearn.feature_extraction.text import TfidfVectorizer

    torch.set_num_threads(1)
    order = [p.id for p in papers]
    corpus = [texts[pk] for pk in order]
    model_matrix, model_seconds = _timed_embedding(corpus, {})
    # The former configuration, same run: float32, 128 word pieces, 64 texts a pass.
    former_matrix, former_seconds = _timed_embedding(
        corpus, {"batch_size": 64, "dtype": "float32", "max_tokens": FORMER_TOKENS}
    )
    former_cos = (model_matrix * former_matrix).sum(axis=1)
    started = time.process_time()
    tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=1)
    tfidf_matrix = normalise(tfidf.fit_transform([texts[pk] for pk in order]).toarray())
    tfidf_seconds = time.process_time() - started
    spaces = {"tfidf": tfidf_matrix, "model": model_matrix}
    row = {pk: i for i, pk in enumerate(order)}

    specs = [SubscriberSpec(i, (r.filter,)) for i, r in enumerate(READERS)]
    readers = dict(enumerate(READERS))

    # --- History: keyword digests, then votes on the first papers shown ---------------
    sent: dict[int, list[int]] = {i: [] for i in readers}
    for number in range(HISTORY):
        edition = prepare_edition([p for p in history if edition_of(p) == number])
        chosen = select_for_subscribers(
            specs,
            edition,
            limit=DIGEST_LIMIT,
            excluded={i: set(s) for i, s in sent.items()},
            topics={},
        )
        for i, selections in chosen.items():
            sent[i].extend(s.paper_id for s in selections)
    votes = {
        i: [(pk, 1 if pk in relevant[readers[i].name] else -1) for pk in sent[i][: args.votes]]
        for i in readers
    }

    # --- Later edition: each ranker ----------------------------------------------------
    later_edition = prepare_edition(later)
    excluded = {i: set(s) for i, s in sent.items()}
    keyword = select_for_subscribers(
        specs, later_edition, limit=DIGEST_LIMIT, excluded=excluded, topics={}
    )
    # Every paper of the later edition each reader's filter matches, not only the ten
    # the keyword digest carries: none of them may be suggested.
    matched = {
        i: {
            p.id
            for p in later
            if reference_match(parse_query(r.filter), p.title, p.abstract, p.authors, p.categories)
        }
        for i, r in readers.items()
    }
    results: dict[str, dict[str, float]] = {"keyword": _scores(keyword, relevant, readers)}
    scoring_us: dict[str, float] = {}
    for name, matrix in spaces.items():
        learners = {}
        for i in readers:
            liked = [pk for pk, v in votes[i] if v > 0]
            disliked = [pk for pk, v in votes[i] if v < 0]
            rest = [pk for pk in sent[i] if pk not in dict(votes[i])]
            evidence = Evidence(
                matrix[[row[pk] for pk in liked]],
                matrix[[row[pk] for pk in disliked]],
                matrix[[row[pk] for pk in rest]],
            )
            profile = centroid(evidence)
            if profile is None:
                continue
            learners[i] = Learner(
                profile=profile,
                liked=evidence.liked,
                liked_titles=tuple(by_id[pk].title for pk in liked),
                liked_how=tuple("liked" for _ in liked),
                disliked=evidence.disliked,
                voted=frozenset(pk for pk, _ in votes[i]),
            )
        vectors = EditionVectors(tuple(p.id for p in later), matrix[[row[p.id] for p in later]])
        # The digest as sent, and again with room for more suggestions (scored alone).
        digest, alone = (
            select_for_subscribers(
                specs,
                later_edition,
                limit=DIGEST_LIMIT,
                excluded=excluded,
                topics={},
                learners=learners,
                vectors=vectors,
                suggestions=dict.fromkeys(readers, k),
            )
            for k in (DIGEST_SUGGESTIONS, SUGGESTIONS_ALONE)
        )
        results[name] = _scores(digest, relevant, readers)
        suggested = {i: [s.paper_id for s in alone[i] if s.suggested] for i in readers}
        results[name].update(_suggestion_scores(suggested, relevant, readers))
        for i, pks in suggested.items():
            bad = set(pks) & (matched[i] | excluded[i] | {pk for pk, _ in votes[i]})
            if bad:
                problems.append(f"{name}: suggested {sorted(bad)} to {readers[i].name}")
        scoring_us[name] = relevance_scoring_cost(
            np.random.default_rng(7), max(1_000, int(100_000 * SCALE)), 200, matrix.shape[1]
        )

    for i, reader in readers.items():
        if not matched[i]:
            problems.append(f"{reader.name}: the filter matched nothing in the later edition")

    base, learned = results["keyword"]["digest_ndcg10"], results["model"]["digest_ndcg10"]
    lift = learned / base if base else float("inf")
    precision_ok = results["model"]["suggestions_precision10"] >= GOAL_PRECISION
    rate = len(order) / model_seconds
    agrees = not problems
    print(
        json.dumps(
            {
                "name": "relevance",
                "seconds": round(model_seconds, 3),
                "rate": round(rate, 1),
                "unit": f"papers embedded/s ({MODEL_NAME}, {compute_dtype()}, CPU, one core)",
                "baseline": "keyword-only digests; TF-IDF vectors (no model) for speed",
                "ratio": round(lift, 3),
                "ratio_is": "learned digest nDCG@10 / keyword-only nDCG@10",
                "tfidf_papers_per_s": round(len(order) / tfidf_seconds, 1),
                "former_papers_per_s": round(len(order) / former_seconds, 1),
                "former_is": f"float32, {FORMER_TOKENS} word pieces, 64 texts a pass",
                "rate_ratio_to_former": round(former_seconds / model_seconds, 2),
                "cos_to_former": {
                    "mean": round(float(former_cos.mean()), 4),
                    "min": round(float(former_cos.min()), 4),
                },
                "n_papers": len(papers),
                "n_history": len(history),
                "n_later": len(later),
                "n_readers": len(READERS),
                "votes": args.votes,
                "results": {k: {m: round(v, 3) for m, v in r.items()} for k, r in results.items()},
                "scoring_us_per_subscriber": {k: round(v, 2) for k, v in scoring_us.items()},
                "profile_bytes_per_subscriber": 4 * model_matrix.shape[1],
                "agrees": agrees,
                "problems": problems[:10],
                "bench_scale": SCALE,
                "goal": (
                    f"learned nDCG@10 >= {GOAL_LIFT} x keyword; suggestions P@10 >= "
                    f"{GOAL_PRECISION}; >= {GOAL_RATE} papers/s; scoring <= {GOAL_US} us"
                ),
                "goal_met": lift >= GOAL_LIFT
                and precision_ok
                and rate >= GOAL_RATE
                and scoring_us["model"] <= GOAL_US,
                "goals": {
                    "lift": lift >= GOAL_LIFT,
                    "suggestions_precision": precision_ok,
                    "embedding_rate": rate >= GOAL_RATE,
                    "scoring_us": scoring_us["model"] <= GOAL_US,
                },
            }
        )
    )
    if not agrees:
        sys.exit(1)


def _timed_embedding(texts: list[str], options: dict[str, Any]) -> tuple[Matrix, float]:
    """``embed_texts(texts, **options)`` and the least CPU seconds of
    :data:`TIMED_PASSES` passes after an untimed one: the first pass of a process also
    builds the kernels for each batch shape (about 30% of its time in bfloat16), which a
    worker embedding day after day pays once, and the least of several passes is the
    figure least moved by other work on the machine."""
    matrix = embed_texts(texts, **options)
    seconds = []
    for _ in range(TIMED_PASSES):
        started = time.process_time()
        embed_texts(texts, **options)
        seconds.append(time.process_time() - started)
    return matrix, min(seconds)


def _scores(
    chosen: dict[int, list[Selection]], relevant: dict[str, set[int]], readers: dict[int, Reader]
) -> dict[str, float]:
    n = len(readers)
    ranked = {i: [s.paper_id for s in chosen[i]] for i in readers}
    return {
        "digest_ndcg10": sum(ndcg(ranked[i], relevant[r.name]) for i, r in readers.items()) / n,
        "digest_precision10": sum(
            precision(ranked[i], relevant[r.name]) for i, r in readers.items()
        )
        / n,
    }


def _suggestion_scores(
    suggested: dict[int, list[int]], relevant: dict[str, set[int]], readers: dict[int, Reader]
) -> dict[str, float]:
    n = len(readers)
    shown = [shown_precision(suggested[i], relevant[r.name]) for i, r in readers.items()]
    counted = [p for p in shown if p is not None]
    return {
        "suggestions_ndcg10": sum(ndcg(suggested[i], relevant[r.name]) for i, r in readers.items())
        / n,
        "suggestions_precision10": sum(counted) / len(counted) if counted else 0.0,
        "suggestions_shown": sum(len(s[:10]) for s in suggested.values()) / n,
    }


if __name__ == "__main__":
    main()
