"""Ingest: papers pages in, papers rows out.

* :mod:`~digest.ingest.parsers` — one pure parser per page format and the registry of
  formats (:data:`digest.formats.FORMATS`);
* :mod:`~digest.ingest.fetch` — HTTP with conditional requests and backoff;
* :mod:`~digest.ingest.sources` — scheduled sources: claim, fetch, ingest;
* :mod:`~digest.ingest.store` — store a parsed page atomically, tag its papers' topics.
"""
