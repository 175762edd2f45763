"""Every benchmark runs, small, as ``make bench`` runs it: ``python -m bench.NAME`` at a
``BENCH_SCALE`` of 1%, on the test database's server and broker, exits 0 and prints one
JSON line with the common keys and a correctness field that holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from tests.support import ROOT, TEST_BROKER_URL

COMMON = {"name", "seconds", "rate", "unit", "ratio", "baseline", "goal", "goal_met"}
# What each bench checks, as a field of its line, and the value it must have.
CORRECT = {
    "ingest": ("agrees", True),
    "match": ("agrees", True),
    "render": ("agrees", True),
    "deliver": ("exactly_once", True),
    "web": ("bad_status", 0),
    "preview": ("agrees", True),
    "daily": ("exactly_once", True),
    "relevance": ("agrees", True),
}


@pytest.mark.bench
@pytest.mark.parametrize("name", CORRECT)
def test_the_benchmark_runs_small_and_its_check_holds(name: str) -> None:
    database_url = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/test"
    env = dict(
        os.environ,
        BENCH_SCALE="0.01",
        # bench_<name>_<test database>: apart from a `make bench` on the same server.
        BENCH_DB_SUFFIX="_" + urlsplit(database_url).path.strip("/"),
        TEST_BROKER_URL=TEST_BROKER_URL,
        DATABASE_URL=database_url,
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)
    run = subprocess.run(
        [sys.executable, "-m", f"bench.{name}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    line = json.loads(run.stdout.strip().splitlines()[-1])
    assert line["name"] == name
    assert COMMON <= set(line), COMMON - set(line)
    assert line["bench_scale"] == 0.01
    field, expected = CORRECT[name]
    assert line[field] == expected, line
    assert line["seconds"] > 0 and line["rate"] > 0
