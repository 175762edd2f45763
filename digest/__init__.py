"""Trending papers in your inbox: the Django project and the papers app.

A page becomes an email in three stages, one package each: :mod:`digest.ingest` (parse
and store pages), :mod:`digest.matching` (the filter language, the engine, ranking) and
:mod:`digest.delivery` (plan, render, compose and send digests). ``docs/architecture.md``
follows a paper from page to inbox.
"""

from digest.celery import app as celery_app

__all__ = ["celery_app"]
