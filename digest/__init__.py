"""Trending papers in your inbox: the Django project and the papers pipeline.

Ingest (:mod:`digest.ingest`, :mod:`digest.parsers`), match (:mod:`digest.matching`),
render (:mod:`digest.emails`) and send (:mod:`digest.delivery`).
"""

from .celery import app as celery_app

__all__ = ["celery_app"]
