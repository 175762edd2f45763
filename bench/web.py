"""Web throughput of the pages subscribers reach from an email, under wrk.

Serves the app with gunicorn and docker/gunicorn.conf.py (production settings, JSON
access logs) on 127.0.0.1, on a PostgreSQL database of its own (``bench_web`` on the
server of ``DATABASE_URL``, migrated here), with 1,000 subscribers. Each endpoint gets
``BENCH_SECONDS`` (default 10) of wrk load with ``BENCH_CONNECTIONS`` (default 32)
connections:

- ``unsubscribe_get``: the page a ``List-Unsubscribe`` link opens (GET, a button);
- ``unsubscribe_post``: the RFC 8058 one-click POST (``List-Unsubscribe=One-Click``);
- ``manage``: the settings page of a signed-in subscriber (session cookie).

Links and sessions rotate over the subscribers. The baseline is the same load on one
sync gunicorn worker, measured in the same run. Prints one JSON line::

    {"name": "web", "seconds": ..., "rate": ..., "unit": "requests/s", "p99_ms": ...,
     "errors": ..., "endpoints": {...}, "baseline": "...", "baseline_rate": ...,
     "ratio": ..., "workers": ..., "goal": 500, "goal_met": true}

``rate`` is all endpoints' requests over their time together; ``p99_ms`` the worst
endpoint's 99th percentile; ``errors`` wrk's socket errors, timeouts and responses that
are not 2xx or 3xx, and ``bad_status`` those responses alone: the bench exits 1 when
there are any (timeouts on an overloaded machine are slow, not wrong). ``BENCH_SCALE``
multiplies the seconds per endpoint (at least 1) and the subscribers (at least 20).
Needs ``wrk`` on PATH.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from tests.support import ROOT
from tests.support.benchdb import recreate_database
from tests.support.net import free_port

SCALE = float(os.environ.get("BENCH_SCALE") or 1)
SECONDS = int(os.environ.get("BENCH_SECONDS") or max(1, round(10 * SCALE)))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
SUBSCRIBERS = max(20, int(1000 * SCALE))
GOAL = 500.0
DATABASE = "bench_web"

# wrk's Lua API (https://github.com/wg/wrk/blob/master/SCRIPTING): request() builds each
# request; done() reports once, latencies in microseconds.
LUA = """
local targets = %(targets)s
local method, body = "%(method)s", %(body)s
math.randomseed(os.time())
request = function()
  local t = targets[math.random(#targets)]
  local headers = {}
  if t.cookie ~= "" then headers["Cookie"] = t.cookie end
  if body then headers["Content-Type"] = "application/x-www-form-urlencoded" end
  return wrk.format(method, t.path, headers, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "p99_us": %%d, "errors": %%d, "bad_status": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout, e.status))
end
"""


def seed() -> dict[str, list[dict[str, str]]]:
    """Fresh bench subscribers; the wrk targets of each endpoint."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    from subscriptions.models import Filter, Subscriber
    from subscriptions.tokens import unsubscribe_url
    from subscriptions.views import SESSION_KEY

    Subscriber.objects.filter(email__startswith="bench-").delete()
    Session.objects.all().delete()  # the bench database's own sessions only
    now = timezone.now()
    subscribers = Subscriber.objects.bulk_create(
        Subscriber(email=f"bench-{n}@example.org", confirmed_at=now, next_digest_at=now)
        for n in range(SUBSCRIBERS)
    )
    Filter.objects.bulk_create(Filter(subscriber=s, query="diffusion") for s in subscribers)
    half = SUBSCRIBERS // 2
    unsubscribe = [
        {"path": urlsplit(unsubscribe_url(s.uuid)).path, "cookie": ""} for s in subscribers[:half]
    ]
    manage = []
    for subscriber in subscribers[half:]:
        session = SessionStore()
        session[SESSION_KEY] = str(subscriber.uuid)
        session.create()
        manage.append({"path": "/manage/", "cookie": f"sessionid={session.session_key}"})
    return {"unsubscribe_get": unsubscribe, "unsubscribe_post": unsubscribe, "manage": manage}


def lua_script(path: Path, targets: list[dict[str, str]], method: str) -> Path:
    listed = ", ".join(f'{{path = "{t["path"]}", cookie = "{t["cookie"]}"}}' for t in targets)
    body = '"List-Unsubscribe=One-Click"' if method == "POST" else "nil"
    path.write_text(LUA % {"targets": "{" + listed + "}", "method": method, "body": body})
    return path


def check(base: str, target: dict[str, str], method: str) -> None:
    """One request first: the load must measure the real page, not an error or redirect."""
    data = b"List-Unsubscribe=One-Click" if method == "POST" else None
    request = urllib.request.Request(base + target["path"], data=data, method=method)
    if target["cookie"]:
        request.add_header("Cookie", target["cookie"])
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200 or response.url != base + target["path"]:
            sys.exit(f"{method} {target['path']}: {response.status} at {response.url}")


def serve(env: dict[str, str], workers: int, port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "docker/gunicorn.conf.py", "digest.wsgi"],
        cwd=ROOT,
        env={**env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers)},
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            sys.exit(f"gunicorn exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                return proc
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                sys.exit("gunicorn did not answer /healthz within 30 s")
            time.sleep(0.2)


def load(
    env: dict[str, str], workers: int, targets: dict[str, list[dict[str, str]]], tmp: Path
) -> dict[str, dict[str, float]]:
    """wrk each endpoint against gunicorn with ``workers`` processes."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(env, workers, port, tmp / "gunicorn.log")
    results: dict[str, dict[str, float]] = {}
    try:
        for name, endpoint_targets in targets.items():
            method = "POST" if name.endswith("_post") else "GET"
            check(base, endpoint_targets[0], method)
            script = lua_script(tmp / f"{name}.lua", endpoint_targets, method)
            wrk = subprocess.run(
                ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "-s", str(script), base],
                capture_output=True,
                text=True,
                timeout=SECONDS + 60,
            )
            if wrk.returncode != 0:
                sys.exit(f"wrk failed: {wrk.stderr}")
            summary = json.loads(wrk.stdout.strip().splitlines()[-1])
            seconds = summary["duration_us"] / 1e6
            results[name] = {
                "requests": summary["requests"],
                "seconds": round(seconds, 2),
                "rate": round(summary["requests"] / seconds, 1),
                "p99_ms": round(summary["p99_us"] / 1000, 1),
                "errors": summary["errors"],
                "bad_status": summary["bad_status"],
            }
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return results


def overall(results: dict[str, dict[str, float]]) -> float:
    return sum(r["requests"] for r in results.values()) / sum(
        r["seconds"] for r in results.values()
    )


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("bench/web.py needs wrk (apt-get install wrk)")
    started = time.monotonic()
    database_url = recreate_database(DATABASE)
    tmp = Path(tempfile.mkdtemp(prefix="bench-web-"))
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        # Loopback http: production settings without TLS in front.
        "SITE_URL": "http://127.0.0.1:8000",
        "DATABASE_URL": database_url,
        "DB_CONN_MAX_AGE": "60",
        "CELERY_BROKER_URL": os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/15"),
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "STATIC_ROOT": str(tmp / "static"),
        "VAR_DIR": str(tmp / "var"),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digest.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    targets = seed()

    workers = (os.cpu_count() or 1) * 2 + 1  # docker/gunicorn.conf.py's default
    measured = load(env, workers, targets, tmp)
    baseline = load(env, 1, seed(), tmp)
    rate, baseline_rate = overall(measured), overall(baseline)
    errors = sum(int(r["errors"]) for r in measured.values())
    bad_status = sum(int(r["bad_status"]) for r in measured.values())
    shutil.rmtree(tmp, ignore_errors=True)
    print(
        json.dumps(
            {
                "name": "web",
                "seconds": round(time.monotonic() - started, 1),
                "rate": round(rate, 1),
                "unit": "requests/s",
                "p99_ms": max(r["p99_ms"] for r in measured.values()),
                "errors": errors,
                "bad_status": bad_status,
                "endpoints": measured,
                "workers": workers,
                "connections": CONNECTIONS,
                "baseline": "one sync gunicorn worker, same load",
                "baseline_rate": round(baseline_rate, 1),
                "baseline_endpoints": baseline,
                "ratio": round(rate / baseline_rate, 2),
                "bench_scale": SCALE,
                "goal": GOAL,
                "goal_met": rate >= GOAL and errors == 0,
            }
        )
    )
    if bad_status:
        sys.exit(1)


if __name__ == "__main__":
    main()
