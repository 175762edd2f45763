"""A PostgreSQL database of its own for each benchmark, on the server ``DATABASE_URL``
names (default: the local one), made fresh from the migrations."""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit, urlunsplit

__all__ = ["bench_database_name", "bench_database_url", "drop_database", "setup_bench_django"]

LOCAL_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"


def bench_database_name(name: str) -> str:
    """``name`` followed by ``BENCH_DB_SUFFIX`` (empty unless set), so that two runs on
    one server (the test suite's and someone's ``make bench``) keep apart."""
    return name + os.environ.get("BENCH_DB_SUFFIX", "")


def bench_database_url(name: str) -> str:
    """``DATABASE_URL`` with the database renamed ``name`` (+ ``BENCH_DB_SUFFIX``). Exits
    when it does not name PostgreSQL: the benchmarks measure the production database."""
    url = urlsplit(os.environ.get("DATABASE_URL") or LOCAL_SERVER)
    if not url.scheme.startswith(("postgres", "pgsql")):
        sys.exit(f"the benchmarks need DATABASE_URL to name a PostgreSQL server, not {url.scheme}")
    return urlunsplit(url._replace(path=f"/{bench_database_name(name)}"))


def _server(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(scheme="postgresql", path="/postgres"))


def recreate_database(name: str) -> str:
    """Drop and create database ``name``; returns its URL."""
    import psycopg

    url = bench_database_url(name)
    name = bench_database_name(name)
    with psycopg.connect(_server(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url


def drop_database(name: str) -> None:
    """Drop database ``name`` (after the benchmark's connections are closed)."""
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(_server(bench_database_url(name)), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_database_name(name)}" WITH (FORCE)')


def setup_bench_django(name: str, **environ: str) -> str:
    """Make database ``name`` afresh, point ``DATABASE_URL`` (and any other ``environ``
    setting) at it for this process and the workers it starts, set Django up with
    ``DEBUG`` off (DEBUG keeps every query in memory) and migrate. Returns the URL."""
    url = recreate_database(name)
    os.environ.update({**environ, "DATABASE_URL": url})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digest.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.DEBUG = False
    call_command("migrate", verbosity=0)
    return url
