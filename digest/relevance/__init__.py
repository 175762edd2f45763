"""Relevance that learns (docs/relevance.md).

- :mod:`digest.relevance.vectors` — float32 vectors as stored bytes, cosine helpers;
- :mod:`digest.relevance.embed` — paper embeddings with a local sentence-embedding model,
  made at ingest and stored in :class:`~digest.models.PaperEmbedding`;
- :mod:`digest.relevance.profile` — each subscriber's learned profile from their
  :class:`~digest.models.Feedback` (and, before any vote, what their filters matched);
- :mod:`digest.relevance.score` — scoring an edition for a batch of subscribers, the
  suggestions and their reasons, used by :mod:`digest.delivery.plan`.
"""
