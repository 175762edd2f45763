"""Settings come from the environment; production refuses what is missing or unsafe.

Each case loads the settings in a fresh Python process with exactly the environment
given, the way a container starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

STRONG_KEY = "q8Vd2-Lk0aZ9xYt3_Wm7Rb1Nc5Ee4Pf6Gh8Jj0Kk2Ll4Mm6Nn8Oo0Pp2Qq4Rr6Ss8"

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": STRONG_KEY,
    "ALLOWED_HOSTS": "papers.example.org",
    "SITE_URL": "https://papers.example.org",
    "DATABASE_URL": "postgres://papers:secret@db.internal:5432/papers",
    "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
    "EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend",
    "POSTMARK_SERVER_TOKEN": "server-token",
    "ANYMAIL_WEBHOOK_SECRET": "hooks:Zk3q9Vb2",
    "DEFAULT_FROM_EMAIL": "Trending papers <digest@mail.example.org>",
}

SHOW = (
    "from django.conf import settings as s; import json; print(json.dumps({"
    "'debug': s.DEBUG, 'log_format': s.LOG_FORMAT, 'ssl_redirect': s.SECURE_SSL_REDIRECT, "
    "'hsts': s.SECURE_HSTS_SECONDS, 'session_secure': s.SESSION_COOKIE_SECURE, "
    "'csrf_secure': s.CSRF_COOKIE_SECURE, 'proxy': s.SECURE_PROXY_SSL_HEADER, "
    "'staticfiles': s.STORAGES['staticfiles']['BACKEND'], 'eager': s.CELERY_TASK_ALWAYS_EAGER, "
    "'engine': s.DATABASES['default']['ENGINE'], 'trusted': s.CSRF_TRUSTED_ORIGINS, "
    "'beat': {k: v['schedule'] for k, v in s.CELERY_BEAT_SCHEDULE.items()}}))"
)


def run_python(code: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` after ``django.setup()`` with only ``env`` (plus PATH) set."""
    full_env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "digest.settings",
        "VAR_DIR": str(tmp_path / "var"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def load(env: dict[str, str], tmp_path: Path) -> dict[str, object]:
    result = run_python(SHOW, env, tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refusal(env: dict[str, str], tmp_path: Path) -> str:
    """The start-up error message for ``env``; fails the test if start-up succeeds."""
    result = run_python("", env, tmp_path)
    assert result.returncode != 0, "start-up should have been refused"
    assert "ImproperlyConfigured" in result.stderr
    return result.stderr


def test_a_fresh_clone_runs_with_no_configuration(tmp_path: Path) -> None:
    shown = load({}, tmp_path)
    assert shown["debug"] is True
    assert shown["engine"] == "django.db.backends.sqlite3"
    assert shown["eager"] is True
    assert shown["log_format"] == "plain"


def test_complete_production_settings_load_hardened(tmp_path: Path) -> None:
    shown = load(PRODUCTION, tmp_path)
    assert shown["debug"] is False
    assert shown["engine"] == "django.db.backends.postgresql"
    assert shown["eager"] is False
    assert shown["log_format"] == "json"
    assert shown["ssl_redirect"] is True
    assert shown["hsts"] == 365 * 24 * 3600
    assert shown["session_secure"] is True and shown["csrf_secure"] is True
    assert shown["proxy"] is None
    assert shown["staticfiles"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    assert shown["trusted"] == ["https://papers.example.org"]


def test_behind_a_proxy_it_trusts_x_forwarded_proto(tmp_path: Path) -> None:
    shown = load({**PRODUCTION, "BEHIND_PROXY": "true"}, tmp_path)
    assert shown["proxy"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_the_beat_intervals_come_from_the_environment(tmp_path: Path) -> None:
    beat = load({}, tmp_path)["beat"]
    assert (beat["send-due-digests"], beat["ingest-sources"]) == (300.0, 900.0)
    beat = load({"SEND_DUE_DIGESTS_EVERY": "2", "INGEST_SOURCES_EVERY": "60"}, tmp_path)["beat"]
    assert (beat["send-due-digests"], beat["ingest-sources"]) == (2.0, 60.0)


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "VAR_DIR": str(tmp_path / "var"),
        "STATIC_ROOT": str(tmp_path / "static"),
        **PRODUCTION,
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_it_refuses_sqlite_when_debug_is_off(tmp_path: Path) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "DATABASE_URL"}
    assert "DATABASE_URL must name a PostgreSQL database" in refusal(env, tmp_path)


def test_it_refuses_a_site_url_that_is_not_https(tmp_path: Path) -> None:
    message = refusal({**PRODUCTION, "SITE_URL": "http://papers.example.org"}, tmp_path)
    assert "SITE_URL='http://papers.example.org' must be an https:// URL" in message


def test_it_accepts_plain_http_on_loopback_without_redirecting(tmp_path: Path) -> None:
    shown = load({**PRODUCTION, "SITE_URL": "http://localhost:8000"}, tmp_path)
    assert shown["ssl_redirect"] is False


@pytest.mark.parametrize(
    "key",
    ["short-key", "a" * 60, "django-insecure-" + STRONG_KEY],
    ids=["short", "repetitive", "django-insecure"],
)
def test_it_refuses_a_weak_secret_key(tmp_path: Path, key: str) -> None:
    assert "SECRET_KEY is too weak" in refusal({**PRODUCTION, "SECRET_KEY": key}, tmp_path)


def test_it_refuses_a_missing_broker(tmp_path: Path) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "CELERY_BROKER_URL"}
    assert "CELERY_BROKER_URL must be set" in refusal(env, tmp_path)


def test_it_refuses_the_file_writing_mail_backend(tmp_path: Path) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "EMAIL_BACKEND"}
    assert "EMAIL_BACKEND must be set" in refusal(env, tmp_path)


def test_it_refuses_an_esp_backend_without_its_credential(tmp_path: Path) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "POSTMARK_SERVER_TOKEN"}
    assert "POSTMARK_SERVER_TOKEN must be set" in refusal(env, tmp_path)
    mailgun = {**env, "EMAIL_BACKEND": "anymail.backends.mailgun.EmailBackend"}
    assert "MAILGUN_API_KEY must be set" in refusal(mailgun, tmp_path)


def test_it_refuses_an_esp_backend_without_a_webhook_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "ANYMAIL_WEBHOOK_SECRET"}
    assert "ANYMAIL_WEBHOOK_SECRET must be set to user:password" in refusal(env, tmp_path)


SMTP_PRODUCTION = {
    **{k: v for k, v in PRODUCTION.items() if "POSTMARK" not in k and "ANYMAIL" not in k},
    "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
}


def test_smtp_serves_no_webhooks_unless_asked(tmp_path: Path) -> None:
    result = run_python(
        "from django.conf import settings; print(settings.ESP_WEBHOOKS)", SMTP_PRODUCTION, tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_it_refuses_webhooks_without_a_secret_whatever_the_backend(tmp_path: Path) -> None:
    message = refusal({**SMTP_PRODUCTION, "ESP_WEBHOOKS": "postmark"}, tmp_path)
    assert "ANYMAIL_WEBHOOK_SECRET must be set to user:password" in message


def test_it_refuses_a_signing_esp_without_its_signing_key(tmp_path: Path) -> None:
    env = {
        **SMTP_PRODUCTION,
        "EMAIL_BACKEND": "anymail.backends.mailgun.EmailBackend",
        "MAILGUN_API_KEY": "key",
        "ANYMAIL_WEBHOOK_SECRET": "hooks:Zk3q9Vb2",
    }
    assert "MAILGUN_WEBHOOK_SIGNING_KEY must be set" in refusal(env, tmp_path)
    env["MAILGUN_WEBHOOK_SIGNING_KEY"] = "signing-key"
    assert load(env, tmp_path)["debug"] is False


def test_smtp_needs_no_esp_credentials(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in PRODUCTION.items() if "POSTMARK" not in k and "ANYMAIL" not in k},
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
    }
    assert load(env, tmp_path)["debug"] is False


@pytest.mark.parametrize(
    "sender",
    ["Trending papers <digest@localhost>", "digest@gmail.com", "a@example.org.evil.net"],
)
def test_it_refuses_a_sender_receivers_would_reject(tmp_path: Path, sender: str) -> None:
    message = refusal({**PRODUCTION, "DEFAULT_FROM_EMAIL": sender}, tmp_path)
    assert f"DEFAULT_FROM_EMAIL={sender!r}" in message
    # Unless the operator says it is on purpose.
    env = {**PRODUCTION, "DEFAULT_FROM_EMAIL": sender, "ALLOW_UNRELATED_SENDER": "true"}
    assert load(env, tmp_path)["debug"] is False


@pytest.mark.parametrize(
    "sender", ["digest@papers.example.org", "x@example.org", "Papers <news@mail.example.org>"]
)
def test_it_accepts_a_sender_at_the_sites_domain(tmp_path: Path, sender: str) -> None:
    assert load({**PRODUCTION, "DEFAULT_FROM_EMAIL": sender}, tmp_path)["debug"] is False


def test_dkim_settings_go_together(tmp_path: Path) -> None:
    message = refusal({**PRODUCTION, "DKIM_SELECTOR": "s1"}, tmp_path)
    assert "DKIM_SELECTOR and DKIM_DOMAIN go together" in message


def test_it_lists_every_problem_at_once(tmp_path: Path) -> None:
    message = refusal({"DEBUG": "false"}, tmp_path)
    for expected in (
        "SECRET_KEY must be set",
        "ALLOWED_HOSTS must be set",
        "DATABASE_URL must name a PostgreSQL database",
        "EMAIL_BACKEND must be set",
        "CELERY_BROKER_URL must be set",
    ):
        assert expected in message


def test_it_refuses_an_unknown_log_format(tmp_path: Path) -> None:
    assert "LOG_FORMAT='xml' must be plain or json" in refusal({"LOG_FORMAT": "xml"}, tmp_path)


# --- Celery queues ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("digest.tasks.ingest_page", "ingest"),
        ("digest.tasks.ingest_sources", "ingest"),
        ("digest.tasks.fetch_due_sources", "ingest"),
        ("digest.tasks.fetch_source", "ingest"),
        ("digest.tasks.send_due_digests", "matching"),
        ("digest.tasks.send_digests", "sending"),
    ],
)
def test_each_task_is_routed_to_its_stage_queue(task: str, queue: str) -> None:
    from digest.celery import app

    assert app.amqp.router.route({}, task)["queue"].name == queue


def test_a_worker_without_q_consumes_every_queue() -> None:
    from digest.celery import app

    assert set(app.amqp.queues) == {"celery", "ingest", "matching", "sending"}


# --- Structured logs --------------------------------------------------------------


def test_production_logs_one_json_line_per_event(tmp_path: Path) -> None:
    code = (
        "import logging; log = logging.getLogger('digest.delivery'); "
        "log.info('digest_sent digest_id=%s subscriber_id=%s papers=%s', 12, 3, 8); "
        "logging.getLogger('digest.ingest.store').warning("
        "'ingest_run run_id=%s source=%s failed: %s', 5, 'pages/a b.txt', 'line 3: no title')"
    )
    result = run_python(code, PRODUCTION, tmp_path)
    assert result.returncode == 0, result.stderr
    sent, failed = (json.loads(line) for line in result.stderr.splitlines())
    assert sent["event"] == "digest_sent"
    assert (sent["digest_id"], sent["subscriber_id"], sent["papers"]) == (12, 3, 8)
    assert sent["level"] == "INFO" and sent["logger"] == "digest.delivery"
    assert sent["message"] == "digest_sent digest_id=12 subscriber_id=3 papers=8"
    assert sent["ts"].endswith("Z")
    assert failed["event"] == "ingest_run"
    assert (failed["run_id"], failed["source"]) == (5, "pages/a b.txt")
    assert failed["message"].endswith("failed: line 3: no title")


def test_the_local_default_logs_plain_text_and_hides_info(tmp_path: Path) -> None:
    code = (
        "import logging; log = logging.getLogger('digest.delivery'); "
        "log.info('digest_sent digest_id=%s', 1); log.warning('bounce subscriber_id=%s', 2)"
    )
    result = run_python(code, {}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().endswith("WARNING digest.delivery bounce subscriber_id=2")
    assert "digest_sent" not in result.stderr


def test_extra_fields_and_exceptions_go_into_the_json_line() -> None:
    import logging

    from digest.logs import JsonFormatter

    try:
        raise ValueError("bad address")
    except ValueError:
        record = logging.getLogger("digest.tracking").makeRecord(
            "digest.tracking",
            logging.ERROR,
            __file__,
            1,
            "bounce 100%% of %s",
            ("one",),
            sys.exc_info(),
            extra={"subscriber_id": 7},
        )
    line = json.loads(JsonFormatter().format(record))
    assert line["subscriber_id"] == 7
    assert line["message"] == "bounce 100% of one"
    assert "event" not in line  # no key=value placeholders: not an event line
    assert "ValueError: bad address" in line["exc_info"]
