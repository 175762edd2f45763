"""``/healthz`` reports the database and the broker, on the real services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import workers
from tests.support.net import free_port

from .conftest import ROOT, TEST_BROKER_URL
from .test_settings import PRODUCTION


def in_process(code: str, env: dict[str, str]) -> str:
    """What ``code`` prints, run with Django set up in a fresh process started with
    ``env`` (settings are read once, at start-up)."""
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "digest.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def healthz_in_process(env: dict[str, str], host: str = "testserver") -> tuple[int, dict]:
    """Status and JSON body of ``GET /healthz`` in a fresh process started with ``env``."""
    code = (
        "import json; from django.test import Client; "
        f"r = Client().get('/healthz', HTTP_HOST={host!r}); "
        "print(json.dumps([r.status_code, json.loads(r.content) if r.status_code != 301 "
        "else r['Location']]))"
    )
    status, body = json.loads(in_process(code, env).splitlines()[-1])
    return status, body


@pytest.mark.django_db
def test_it_answers_200_when_the_database_and_the_broker_are_up(client, settings) -> None:
    settings.CELERY_BROKER_URL = TEST_BROKER_URL
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok", "failing": []}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_it_answers_503_naming_the_broker_when_it_is_down(client, settings, caplog) -> None:
    port = free_port()
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert body["failing"] == ["broker"]
    assert body["database"] == "ok"
    # The kind of error only: the broker's address and the driver's message are logged.
    assert body["broker"] == "error: OperationalError"
    assert str(port) not in response.content.decode()
    assert "Connection refused" in caplog.text and str(port) in caplog.text


@pytest.mark.django_db
def test_without_a_broker_tasks_run_in_process_and_it_is_healthy(client, settings) -> None:
    settings.CELERY_BROKER_URL = ""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["broker"] == "in-process"


@pytest.mark.django_db
def test_it_only_answers_get(client) -> None:
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_it_answers_503_naming_the_database_when_it_is_down() -> None:
    dead = f"postgres://postgres@127.0.0.1:{free_port()}/papers"
    status, body = healthz_in_process({"DATABASE_URL": dead, "CELERY_BROKER_URL": TEST_BROKER_URL})
    assert status == 503
    assert body["failing"] == ["database"]
    assert body["broker"] == "ok"
    assert body["database"] == "error: OperationalError"
    # Neither the database's host, port nor user is in the public answer.
    port = dead.rsplit(":", 1)[1].split("/")[0]
    assert port not in json.dumps(body) and "postgres" not in json.dumps(body)


@pytest.mark.django_db
def test_it_names_both_when_both_are_down() -> None:
    status, body = healthz_in_process(
        {
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/papers",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
        }
    )
    assert status == 503
    assert body["failing"] == ["database", "broker"]


@pytest.mark.django_db
def test_production_answers_over_plain_http_where_other_pages_redirect(tmp_path: Path) -> None:
    env = {
        **PRODUCTION,
        "DATABASE_URL": workers.test_database_url(),
        "CELERY_BROKER_URL": TEST_BROKER_URL,
        "STATIC_ROOT": str(tmp_path),
    }
    status, body = healthz_in_process(env, host="papers.example.org")
    assert (status, body["status"]) == (200, "ok")
    code = (
        "from django.test import Client; "
        "r = Client().get('/unsubscribe/x/', HTTP_HOST='papers.example.org'); "
        "print(r.status_code, r['Location'])"
    )
    assert in_process(code, env).split() == ["301", "https://papers.example.org/unsubscribe/x/"]
