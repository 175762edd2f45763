"""gunicorn settings for the web container, from the environment.

Used as ``gunicorn -c docker/gunicorn.conf.py digest.wsgi`` (docker/entrypoint.sh ``web``).
Setting names and meanings: https://docs.gunicorn.org/en/stable/settings.html

| variable | default | meaning |
|---|---|---|
| ``PORT`` | ``8000`` | port to listen on, all interfaces |
| ``WEB_CONCURRENCY`` | 2 × CPUs + 1 | worker processes |
| ``GUNICORN_THREADS`` | ``1`` | threads per worker (more than 1 uses the gthread worker) |
| ``ACCESS_LOG`` | ``true`` | one line per request on stdout |
| ``LOG_FORMAT`` | ``json`` unless ``DEBUG`` | ``json``: gunicorn's lines are JSON too |
"""

import multiprocessing
import os


def _flag(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).lower() in {"1", "true", "yes", "on"}


bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
threads = int(os.environ.get("GUNICORN_THREADS") or 1)
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 30)
graceful_timeout = 30
# The proxy in front keeps connections open; a little longer than nginx's default.
keepalive = 5
# Recycle workers now and then so a slow leak cannot grow without bound.
max_requests = 2000
max_requests_jitter = 200
# Heartbeat files on tmpfs: a container's overlay filesystem can stall workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# The runtime control socket (gunicornc) is not used; the image's home is read-only.
control_socket_disable = True

accesslog = "-" if _flag("ACCESS_LOG", True) else None
# ``key=%(atom)s`` pairs become JSON fields (digest/logs.py); see gunicorn's access log
# atoms: m method, U path without query, s status, B bytes, M duration in milliseconds.
access_log_format = (
    "request method=%(m)s path=%(U)s status=%(s)s bytes=%(B)s duration_ms=%(M)s "
    'remote=%({x-forwarded-for}i)s agent="%(a)s"'
)

_debug = os.environ.get("DEBUG", "true").lower() in {"1", "true", "yes", "on"}
if os.environ.get("LOG_FORMAT", "plain" if _debug else "json") == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "digest.logs.JsonFormatter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {
                "level": "INFO",
                "handlers": ["stdout"] if accesslog else [],
                "propagate": False,
            },
        },
    }
