#!/usr/bin/env bash
# Container entrypoint. One image runs every role; the first argument picks it:
#
#   web            check settings, wait for the database, migrate, exec gunicorn
#   worker         check settings, wait for the database, exec a Celery worker
#                  (CELERY_QUEUES=ingest,matching,sending picks queues; all by default)
#   beat           check settings, wait for the database, exec Celery beat (run exactly one)
#   healthcheck    GET /healthz on this container's gunicorn; exit 0 only on 200
#   collectstatic  build step: hashed, compressed static files into STATIC_ROOT
#   anything else  run as given, e.g. `python manage.py createsuperuser`
#
# Settings come from the environment (README, "Deploy"); unsafe production settings stop
# the container before it does anything.
set -euo pipefail

cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-digest.settings}"
PYTHON="${PYTHON:-python}"

log() { printf 'entrypoint: %s\n' "$*" >&2; }

check_settings() {
    # Importing the settings raises ImproperlyConfigured listing every problem.
    "$PYTHON" -c 'import django; django.setup()'
}

wait_for_database() {
    # Retry for DB_WAIT_SECONDS (default 60): compose starts containers together.
    "$PYTHON" - <<'PY'
import os, sys, time

import django

django.setup()
from django.db import connection

limit = float(os.environ.get("DB_WAIT_SECONDS", "60"))
db = connection.settings_dict
where = f"{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"
deadline = time.monotonic() + limit
while True:
    try:
        connection.ensure_connection()
        break
    except Exception as exc:
        if time.monotonic() >= deadline:
            sys.exit(f"entrypoint: the database at {where} is unreachable after {limit:.0f}s: {exc}")
        print(f"entrypoint: waiting for the database at {where}", file=sys.stderr)
        time.sleep(1)
connection.close()
PY
}

healthcheck() {
    "$PYTHON" - <<'PY'
import os, sys, urllib.error, urllib.request

# Ask as the first allowed host, so the request passes ALLOWED_HOSTS in production.
hosts = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
host = (hosts[0].lstrip(".") if hosts else "localhost").replace("*", "localhost")
url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz"
request = urllib.request.Request(url, headers={"Host": host})
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        print(response.read().decode())
except urllib.error.HTTPError as exc:
    sys.exit(f"{url}: {exc.code} {exc.read().decode()}")
except OSError as exc:
    sys.exit(f"{url}: {exc}")
PY
}

collectstatic() {
    # Production storage writes hashed, compressed copies; the settings check needs a
    # complete production environment, so the build gives placeholder values that are
    # never connected to.
    DEBUG=false \
        SECRET_KEY="$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(50))')" \
        ALLOWED_HOSTS=build.invalid \
        SITE_URL=https://build.invalid \
        DATABASE_URL=postgres://build@build.invalid/build \
        CELERY_BROKER_URL=redis://build.invalid:6379/0 \
        EMAIL_BACKEND=digest.mail.SmtpEmailBackend \
        DEFAULT_FROM_EMAIL=digest@build.invalid \
        "$PYTHON" manage.py collectstatic --noinput -v0
}

role="${1:-web}"
case "$role" in
web)
    shift || true
    check_settings
    wait_for_database
    if [[ "${MIGRATE:-true}" == "true" ]]; then
        log "applying migrations"
        "$PYTHON" manage.py migrate --noinput
    fi
    exec gunicorn -c docker/gunicorn.conf.py digest.wsgi "$@"
    ;;
worker)
    shift
    check_settings
    wait_for_database
    queues=()
    if [[ -n "${CELERY_QUEUES:-}" ]]; then
        queues=(--queues "$CELERY_QUEUES")
    fi
    exec celery -A digest worker --loglevel="${LOG_LEVEL:-INFO}" "${queues[@]}" "$@"
    ;;
beat)
    shift
    check_settings
    wait_for_database
    exec celery -A digest beat --loglevel="${LOG_LEVEL:-INFO}" \
        --schedule="${BEAT_SCHEDULE_FILE:-/tmp/celerybeat-schedule}" "$@"
    ;;
healthcheck)
    healthcheck
    ;;
collectstatic)
    collectstatic
    ;;
*)
    exec "$@"
    ;;
esac
