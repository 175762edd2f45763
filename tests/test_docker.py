"""The container setup in docker/, tested without a container engine: the compose file
through ``docker-compose config``, the entrypoint's roles with stand-in ``gunicorn`` and
``celery`` commands against a real PostgreSQL, and the gunicorn configuration serving
``/healthz`` for real."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from django.db import connection

from tests.support import workers
from tests.support.net import free_port

from .conftest import ROOT, TEST_BROKER_URL
from .test_settings import PRODUCTION

DOCKER = ROOT / "docker"
ENTRYPOINT = DOCKER / "entrypoint.sh"
KEY = PRODUCTION["SECRET_KEY"]


def compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "-f", str(DOCKER / "compose.yaml"), "config"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed (Debian package docker-compose)")
    result = compose_config(SECRET_KEY=KEY)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_the_compose_file_validates_with_every_service(compose: dict) -> None:
    assert set(compose["services"]) == {"postgres", "redis", "mailpit", "web", "worker", "beat"}
    assert compose["services"]["mailpit"]["image"].startswith("axllent/mailpit")


def test_workers_scale_without_names_or_host_ports(compose: dict) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["command"] == ["worker"]
    assert not any("container_name" in service for service in compose["services"].values())


def test_there_is_one_beat_and_the_web_publishes_its_port(compose: dict) -> None:
    assert compose["services"]["beat"]["command"] == ["beat"]
    assert "deploy" not in compose["services"]["beat"]
    web = compose["services"]["web"]
    assert web["command"] == ["web"]
    assert web["ports"][0]["target"] == 8000


def test_compose_refuses_to_start_without_a_secret_key() -> None:
    result = compose_config()
    assert result.returncode != 0
    assert "set SECRET_KEY to 50 or more random characters" in result.stderr


@pytest.mark.parametrize("service", ["web", "worker", "beat"])
def test_the_compose_environment_passes_the_production_checks(
    compose: dict, service: str, tmp_path: Path
) -> None:
    env = {k: str(v) for k, v in compose["services"][service]["environment"].items()}
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DEBUG, s.DATABASES['default']['HOST'], s.CELERY_BROKER_URL, s.EMAIL_HOST)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "digest.settings",
            "VAR_DIR": str(tmp_path),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "postgres", "redis://redis:6379/0", "mailpit"]


# --- Dockerfile -------------------------------------------------------------------


def test_the_image_is_multi_stage_slim_and_not_root() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    stages = [line.split() for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert [stage[-1] for stage in stages] == ["builder", "runtime"]
    assert all("-slim" in stage[1] for stage in stages)
    assert "COPY --from=builder /venv /venv" in dockerfile
    assert "USER papers" in dockerfile
    assert 'CMD ["/app/docker/entrypoint.sh", "healthcheck"]' in dockerfile
    for line in dockerfile.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            source = line.split()[1]
            assert (ROOT / source).exists(), f"{line}: {source} is not in the repository"


def image_environment() -> dict[str, str]:
    """The ``ENV`` of the image's runtime stage (``NAME=value`` pairs, ``\\`` line joins)."""
    dockerfile = (DOCKER / "Dockerfile").read_text()
    runtime = dockerfile.split("AS runtime", 1)[1].replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in runtime.splitlines():
        if line.startswith("ENV "):
            for pair in line.split()[1:]:
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def test_the_image_defaults_to_production(tmp_path: Path) -> None:
    env = image_environment()
    assert env["DEBUG"] == "false"
    # Started with nothing else set, it refuses to run rather than run in DEBUG mode.
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            **{k: v for k, v in env.items() if k not in {"PATH", "VAR_DIR", "STATIC_ROOT"}},
            "VAR_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Unsafe or incomplete production settings (DEBUG is off)" in result.stderr
    assert "SECRET_KEY must be set" in result.stderr


def test_the_image_installs_the_web_server_and_static_files_server() -> None:
    # The image installs exactly pyproject's dependencies.
    with (ROOT / "pyproject.toml").open("rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    names = {dep.split(">")[0].split("[")[0].split("=")[0].strip().lower() for dep in dependencies}
    assert {"gunicorn", "whitenoise"} <= names


# --- The entrypoint ---------------------------------------------------------------


def test_the_entrypoint_is_valid_bash() -> None:
    result = subprocess.run(["bash", "-n", str(ENTRYPOINT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """``gunicorn`` and ``celery`` stand-ins that record their arguments, one per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("gunicorn", "celery"):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/{name}.args"\n')
        script.chmod(0o755)
    return bin_dir


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """The URL of an empty database, dropped afterwards."""
    db = connection.settings_dict
    name = f"{db['NAME']}_entrypoint"
    admin = dict(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname="postgres")
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{name}"
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_entrypoint(
    args: list[str], env: dict[str, str], fake_bin: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    full_env = {
        "PATH": f"{fake_bin}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHON": sys.executable,
        "VAR_DIR": str(tmp_path / "var"),
        "STATIC_ROOT": str(tmp_path / "static"),
        **env,
    }
    return subprocess.run(
        [str(ENTRYPOINT), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def applied_migrations(url: str) -> int:
    with psycopg.connect(url.replace("postgres://", "postgresql://")) as conn:
        exists = conn.execute("SELECT to_regclass('django_migrations')").fetchone()[0]
        if exists is None:
            return 0
        return conn.execute("SELECT count(*) FROM django_migrations").fetchone()[0]


@pytest.mark.django_db
def test_web_waits_for_the_database_migrates_then_runs_gunicorn(
    fresh_database: str, fake_bin: Path, tmp_path: Path
) -> None:
    env = {**PRODUCTION, "DATABASE_URL": fresh_database, "CELERY_BROKER_URL": TEST_BROKER_URL}
    result = run_entrypoint(["web"], env, fake_bin, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "applying migrations" in result.stderr
    assert applied_migrations(fresh_database) > 0
    args = (tmp_path / "gunicorn.args").read_text().split("\n")[:-1]
    assert args == ["-c", "docker/gunicorn.conf.py", "digest.wsgi"]


@pytest.mark.django_db
def test_a_worker_does_not_migrate_and_consumes_the_queues_it_is_given(
    fresh_database: str, fake_bin: Path, tmp_path: Path
) -> None:
    env = {
        **PRODUCTION,
        "DATABASE_URL": fresh_database,
        "CELERY_BROKER_URL": TEST_BROKER_URL,
        "CELERY_QUEUES": "sending",
    }
    result = run_entrypoint(["worker", "--concurrency=4"], env, fake_bin, tmp_path)
    assert result.returncode == 0, result.stderr
    assert applied_migrations(fresh_database) == 0
    args = (tmp_path / "celery.args").read_text().split("\n")[:-1]
    assert args == [
        "-A",
        "digest",
        "worker",
        "--loglevel=INFO",
        "--queues",
        "sending",
        "--concurrency=4",
    ]


@pytest.mark.django_db
def test_beat_keeps_its_schedule_file_out_of_the_code(
    fresh_database: str, fake_bin: Path, tmp_path: Path
) -> None:
    env = {**PRODUCTION, "DATABASE_URL": fresh_database, "CELERY_BROKER_URL": TEST_BROKER_URL}
    result = run_entrypoint(["beat"], env, fake_bin, tmp_path)
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "celery.args").read_text().split("\n")[:-1]
    assert args == [
        "-A",
        "digest",
        "beat",
        "--loglevel=INFO",
        "--schedule=/tmp/celerybeat-schedule",
    ]


def test_unsafe_settings_stop_the_container_before_anything_runs(
    fake_bin: Path, tmp_path: Path
) -> None:
    env = {**PRODUCTION, "SITE_URL": "http://papers.example.org"}
    result = run_entrypoint(["web"], env, fake_bin, tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "must be an https:// URL" in result.stderr
    assert not (tmp_path / "gunicorn.args").exists()


def test_it_gives_up_naming_the_database_when_it_stays_unreachable(
    fake_bin: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **PRODUCTION,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/papers",
        "DB_WAIT_SECONDS": "1",
    }
    result = run_entrypoint(["worker"], env, fake_bin, tmp_path)
    assert result.returncode != 0
    assert f"the database at 127.0.0.1:{port}/papers is unreachable after 1s" in result.stderr
    assert "waiting for the database" in result.stderr
    assert not (tmp_path / "celery.args").exists()


def test_other_commands_run_as_given(fake_bin: Path, tmp_path: Path) -> None:
    result = run_entrypoint(["echo", "hello"], {}, fake_bin, tmp_path)
    assert (result.returncode, result.stdout) == (0, "hello\n")


def test_collectstatic_writes_hashed_compressed_files(fake_bin: Path, tmp_path: Path) -> None:
    result = run_entrypoint(["collectstatic"], {}, fake_bin, tmp_path)
    assert result.returncode == 0, result.stderr
    static = tmp_path / "static"
    manifest = json.loads((static / "staticfiles.json").read_text())
    hashed = manifest["paths"]["admin/css/base.css"]
    assert hashed != "admin/css/base.css"
    assert (static / hashed).exists()
    assert (static / f"{hashed}.gz").exists()


# --- gunicorn with docker/gunicorn.conf.py ----------------------------------------


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"gunicorn exited: {log.read_text()}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"gunicorn did not listen on {port} within {timeout:.0f}s")


@pytest.mark.django_db(transaction=True)
def test_gunicorn_serves_healthz_and_the_health_check_passes(
    fake_bin: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **PRODUCTION,
        "DATABASE_URL": workers.test_database_url(),
        "CELERY_BROKER_URL": TEST_BROKER_URL,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
    }
    assert run_entrypoint(["collectstatic"], env, fake_bin, tmp_path).returncode == 0
    out, err = tmp_path / "gunicorn.out", tmp_path / "gunicorn.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "docker/gunicorn.conf.py", "digest.wsgi"],
            cwd=ROOT,
            env={
                **os.environ,
                **env,
                "VAR_DIR": str(tmp_path / "var"),
                "STATIC_ROOT": str(tmp_path / "static"),
            },
            stdout=stdout,
            stderr=stderr,
        )
    try:
        wait_for_port(port, proc, log=err)
        check = run_entrypoint(["healthcheck"], env, fake_bin, tmp_path)
        assert check.returncode == 0, check.stderr
        assert json.loads(check.stdout)["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    access = [json.loads(line) for line in out.read_text().splitlines()]
    healthz = [line for line in access if line.get("path") == "/healthz"]
    assert healthz and healthz[0]["event"] == "request" and healthz[0]["status"] == "200"
    assert all(json.loads(line)["logger"] for line in err.read_text().splitlines())

    after = run_entrypoint(["healthcheck"], env, fake_bin, tmp_path)
    assert after.returncode != 0
    assert "Connection refused" in after.stderr
