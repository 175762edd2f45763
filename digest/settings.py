"""Django settings, all from the environment.

A fresh clone runs with no configuration at all: SQLite under ``var/``, tasks run
in-process, mail written to ``var/outbox/``. Production sets ``DEBUG=False`` and the
variables documented in the README; start-up refuses settings that are missing or
unsafe there.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
# What production (DEBUG off) refuses; all of it is reported at once at the end.
PRODUCTION_PROBLEMS: list[str] = []
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        PRODUCTION_PROBLEMS.append("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"
elif not DEBUG and (
    len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure-")
):
    # The thresholds of Django's own deploy check (security.W009).
    PRODUCTION_PROBLEMS.append(
        "SECRET_KEY is too weak: use 50 or more random characters, e.g. the output of "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )

SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
SITE_NAME = env_str("SITE_NAME", "Trending papers")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver" if DEBUG else "")
if not DEBUG and not ALLOWED_HOSTS:
    PRODUCTION_PROBLEMS.append("ALLOWED_HOSTS must be set when DEBUG is off")
# Links in emails leave the machine, so they must be https; plain http is accepted only
# for a loopback SITE_URL (trying the containers out on one machine).
_site = urlsplit(SITE_URL)
SITE_IS_LOOPBACK = _site.hostname in {"localhost", "127.0.0.1", "::1"}
if not DEBUG and not (_site.scheme == "https" or (_site.scheme == "http" and SITE_IS_LOOPBACK)):
    PRODUCTION_PROBLEMS.append(f"SITE_URL={SITE_URL!r} must be an https:// URL when DEBUG is off")

INSTALLED_APPS = [
    # The admin with the moderation dashboard and throttled login (digest/admin_site.py).
    "digest.apps.ModerationAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "anymail",
    "digest",
    "subscriptions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves collected static files from gunicorn itself, before sessions or auth run.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "digest.urls"
WSGI_APPLICATION = "digest.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "digest.context_processors.site",
            ],
        },
    },
]

if not env_str("DATABASE_URL"):
    VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # A dead or unreachable server fails fast (/healthz, start-up) instead of hanging.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int(
        "DB_CONNECT_TIMEOUT", 5
    )
if not DEBUG and DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    PRODUCTION_PROBLEMS.append(
        "DATABASE_URL must name a PostgreSQL database when DEBUG is off "
        "(SQLite cannot be shared by the web server and the workers)"
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# Production serves hashed, compressed copies made by collectstatic (the image runs it).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Locally, static files are found in the apps on each request, with no collectstatic.
WHITENOISE_AUTOREFRESH = WHITENOISE_USE_FINDERS = DEBUG

# --- HTTPS (see `manage.py check --deploy`) ----------------------------------------
if not DEBUG:
    # Set BEHIND_PROXY=true only when a proxy that terminates TLS sets X-Forwarded-Proto;
    # otherwise a client could claim https by sending the header itself.
    if env_bool("BEHIND_PROXY", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not SITE_IS_LOOPBACK)
    # The container's health check asks over plain http from inside.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", f"{_site.scheme}://{_site.netloc}")

# --- Mail -------------------------------------------------------------------------
# Any Django or django-anymail backend by name, e.g.
# "anymail.backends.postmark.EmailBackend"; the local default writes .eml files.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "digest.mail.OutboxEmailBackend")
OUTBOX_DIR = Path(env_str("OUTBOX_DIR", str(VAR_DIR / "outbox")))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Trending papers <digest@localhost>")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
# DKIM signing by digest.mail.SmtpEmailBackend (RFC 6376): the private key in PEM (or a
# file holding it), the selector whose TXT record at <selector>._domainkey.<domain>
# publishes the public key, and the signing domain (d=), which DMARC wants aligned with
# the From domain. Unset: the relay signs, or nothing does.
DKIM_PRIVATE_KEY = env_str("DKIM_PRIVATE_KEY")
if env_str("DKIM_PRIVATE_KEY_FILE"):
    DKIM_PRIVATE_KEY = Path(env_str("DKIM_PRIVATE_KEY_FILE")).read_text()
DKIM_SELECTOR = env_str("DKIM_SELECTOR")
DKIM_DOMAIN = env_str("DKIM_DOMAIN")
if not DEBUG and len({bool(DKIM_PRIVATE_KEY), bool(DKIM_SELECTOR), bool(DKIM_DOMAIN)}) == 2:
    PRODUCTION_PROBLEMS.append(
        "DKIM_PRIVATE_KEY (or DKIM_PRIVATE_KEY_FILE), DKIM_SELECTOR and DKIM_DOMAIN "
        "go together: set all three or none"
    )
# Bounces on the SMTP path (digest.delivery.bounces): the envelope sender of every
# message SmtpEmailBackend sends, with "+d<digest id>-<hmac>" added for digests (VERP),
# and the mailbox it delivers to, read every READ_BOUNCES_EVERY seconds by the beat
# (imaps://user:password@host/INBOX or pop3s://user:password@host). Or pipe each bounce
# from the MTA into "manage.py read_bounces -".
BOUNCE_ADDRESS = env_str("BOUNCE_ADDRESS")
BOUNCE_MAILBOX_URL = env_str("BOUNCE_MAILBOX_URL")
# With DEBUG off and SITE_URL not on loopback, a sender at localhost, or at a domain that
# is not SITE_URL's host or a parent of it, is refused (receivers reject or junk such
# mail) unless this is on.
ALLOW_UNRELATED_SENDER = env_bool("ALLOW_UNRELATED_SENDER", False)

# The ESPs whose webhooks sign their posts, and anymail's setting for the key each
# signature is checked with (https://anymail.dev/en/stable/esps/ "Status tracking
# webhooks"). Their tracking webhooks are only served with that key set.
ESP_WEBHOOK_SIGNING_KEYS = {
    "mailgun": "MAILGUN_WEBHOOK_SIGNING_KEY",
    "mailersend": "MAILERSEND_SIGNING_SECRET",
    "mailtrap": "MAILTRAP_TRACKING_SECRET",
    "mandrill": "MANDRILL_WEBHOOK_KEY",
    "postal": "POSTAL_WEBHOOK_KEY",
    "resend": "RESEND_SIGNING_SECRET",
    "sendgrid": "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY",
}
ANYMAIL = {
    key: os.environ[key]
    for key in (
        "POSTMARK_SERVER_TOKEN",
        "MAILGUN_API_KEY",
        "MAILGUN_SENDER_DOMAIN",
        "AMAZON_SES_CONFIGURATION_SET_NAME",
        *ESP_WEBHOOK_SIGNING_KEYS.values(),
    )
    if os.environ.get(key)
}
# The ESP's stream for each kind of mail (digest.delivery.compose.esp_stream): digests
# and "nothing matched" notes are bulk, confirmations and settings links transactional.
# Empty: the ESP's default (Postmark's "outbound" stream, SES's default configuration set).
ESP_STREAMS = {
    "postmark": {
        "bulk": env_str("POSTMARK_BULK_STREAM"),
        "transactional": env_str("POSTMARK_TRANSACTIONAL_STREAM"),
    },
    "amazon_ses": {
        "bulk": env_str("AMAZON_SES_BULK_CONFIGURATION_SET"),
        "transactional": env_str("AMAZON_SES_TRANSACTIONAL_CONFIGURATION_SET"),
    },
}
if env_str("ANYMAIL_WEBHOOK_SECRET"):
    ANYMAIL["WEBHOOK_SECRET"] = env_str("ANYMAIL_WEBHOOK_SECRET")
# The ESPs whose tracking webhooks (/esp/<esp>/tracking/) are served, by anymail's name
# for them; by default the ESP of an anymail EMAIL_BACKEND, else none. Each is served
# only with ANYMAIL_WEBHOOK_SECRET (basic auth) and, where the ESP signs, its signing key
# (digest.delivery.tracking.webhook_urlpatterns); any other /esp/ address is a 404.
_backend_esp = EMAIL_BACKEND.split(".")[2] if EMAIL_BACKEND.startswith("anymail.backends.") else ""
ESP_WEBHOOKS = env_list("ESP_WEBHOOKS", _backend_esp)


def sender_problem(from_email: str, site_host: str) -> str | None:
    """Why ``from_email`` would be rejected or junked by receivers when sent for a site
    at ``site_host``, or None: its domain is ``localhost`` (or has no dot), or neither
    ``site_host``, a parent of it, nor a subdomain of one of those (DMARC's relaxed
    alignment works on organisational domains, RFC 7489 section 3.1)."""
    from email.utils import parseaddr

    domain = parseaddr(from_email)[1].rpartition("@")[2].lower().rstrip(".")
    if not domain or "." not in domain or domain == "localhost" or domain.endswith(".localhost"):
        return f"DEFAULT_FROM_EMAIL={from_email!r} is at localhost: receivers reject it"
    labels = site_host.lower().split(".")
    parents = {".".join(labels[i:]) for i in range(len(labels) - 1)}
    if domain in parents or any(domain.endswith("." + parent) for parent in parents):
        return None
    return (
        f"DEFAULT_FROM_EMAIL={from_email!r} is not at SITE_URL's domain {site_host!r}: "
        "receivers check that the sender's domain is the one its links and DKIM "
        "signature name (set ALLOW_UNRELATED_SENDER=true if it is on purpose)"
    )


if not DEBUG:
    # A site at localhost (the Docker Compose trial) mails only a local catcher.
    if (
        not ALLOW_UNRELATED_SENDER
        and not SITE_IS_LOOPBACK
        and (_sender := sender_problem(DEFAULT_FROM_EMAIL, _site.hostname or ""))
    ):
        PRODUCTION_PROBLEMS.append(_sender)
    if not env_str("EMAIL_BACKEND"):
        PRODUCTION_PROBLEMS.append(
            "EMAIL_BACKEND must be set when DEBUG is off (the default only writes files), "
            "e.g. anymail.backends.postmark.EmailBackend"
        )
    # The credential each ESP backend cannot send without (django-anymail's docs).
    for _esp, _key in (("postmark", "POSTMARK_SERVER_TOKEN"), ("mailgun", "MAILGUN_API_KEY")):
        if EMAIL_BACKEND.startswith(f"anymail.backends.{_esp}.") and _key not in ANYMAIL:
            PRODUCTION_PROBLEMS.append(f"{_key} must be set to send through {EMAIL_BACKEND}")
    # Bounces and complaints arrive on the tracking webhooks: an unauthenticated one
    # would let anyone suppress or unsubscribe any address.
    if ESP_WEBHOOKS and ":" not in env_str("ANYMAIL_WEBHOOK_SECRET"):
        PRODUCTION_PROBLEMS.append(
            "ANYMAIL_WEBHOOK_SECRET must be set to user:password (random) so the ESP's "
            f"bounce webhooks ({', '.join(ESP_WEBHOOKS)}) are accepted; or set "
            "ESP_WEBHOOKS= (empty) to serve none"
        )
    for _esp in ESP_WEBHOOKS:
        _signing = ESP_WEBHOOK_SIGNING_KEYS.get(_esp, "")
        if _signing and _signing not in ANYMAIL:
            PRODUCTION_PROBLEMS.append(
                f"{_signing} must be set to check {_esp}'s webhook signatures"
            )

# --- Digests ----------------------------------------------------------------------
DIGEST_MAX_PAPERS = env_int("DIGEST_MAX_PAPERS", 10)
# A sent digest's "view in browser" copy (/d/TOKEN/) works this long after sending
# (seconds), and only while its subscriber is subscribed.
DIGEST_WEB_MAX_AGE = env_int("DIGEST_WEB_MAX_AGE", 90 * 24 * 3600)
# Octets of text and HTML body a digest may hold: Gmail clips a message past 102 KB and
# hides the unsubscribe footer with it. Larger digests get shorter summaries, then fewer
# cards (digest.delivery.render.fit_digest); 88,000 keeps the whole message under 90 KB.
DIGEST_MAX_BYTES = env_int("DIGEST_MAX_BYTES", 88_000)
# Unsubscribe links in old emails keep working this long (seconds).
UNSUBSCRIBE_LINK_MAX_AGE = env_int("UNSUBSCRIBE_LINK_MAX_AGE", 365 * 24 * 3600)
# --- Delivery (digest/delivery.py; README "Delivery") ------------------------------
# An edition where nothing matched sends a short "nothing matched" note instead of nothing.
DIGEST_SEND_EMPTY = env_bool("DIGEST_SEND_EMPTY", False)
# The welcome digest and one asked for from the settings page look back this many days
# (digest.delivery.extra).
DIGEST_EXTRA_DAYS = env_int("DIGEST_EXTRA_DAYS", 7)
# Due subscribers per send_digests task.
DIGEST_CHUNK_SIZE = env_int("DIGEST_CHUNK_SIZE", 500)
# A digest is given up (failed, its papers released) after this many send attempts.
DIGEST_MAX_ATTEMPTS = env_int("DIGEST_MAX_ATTEMPTS", 8)
# Retries after transient errors wait BACKOFF × 2^(attempt−1) seconds, at most
# BACKOFF_MAX, with jitter.
DIGEST_RETRY_BACKOFF = env_float("DIGEST_RETRY_BACKOFF", 30.0)
DIGEST_RETRY_BACKOFF_MAX = env_float("DIGEST_RETRY_BACKOFF_MAX", 600.0)
# Seconds after which a digest left "sending" (its worker died) is sent again, with the
# same Message-ID. Must be far longer than one message takes to send.
DIGEST_SENDING_LEASE = env_float("DIGEST_SENDING_LEASE", 900.0)
# Messages a sending worker process keeps in flight, each over a mail connection of its
# own thread: an ESP answers in 50-200 ms, so one connection caps a worker near 10/s.
DIGEST_SEND_CONCURRENCY = env_int("DIGEST_SEND_CONCURRENCY", 16)
# Days a digest keeps its papers (DigestItem rows) for the "view in browser" page and
# the feed; older ones are pruned nightly, except papers still in the candidate window.
DIGEST_ARCHIVE_DAYS = env_int("DIGEST_ARCHIVE_DAYS", 90)
# Seconds the beat's claim on a due subscriber lasts: a chunk not run by then (its task
# lost) is enqueued again. Longer than a chunk can wait in the queue behind a backlog.
DIGEST_DUE_LEASE = env_float("DIGEST_DUE_LEASE", 3600.0)
# Seconds a worker keeps reconnecting to record a "sent" mark (and claims) after losing
# its database connection (a failover, a restart, a statement timeout) before it stops
# the chunk. Far below the lease: a digest still unmarked then is sent again.
DIGEST_DB_RETRY_SECONDS = env_float("DIGEST_DB_RETRY_SECONDS", min(30.0, DIGEST_SENDING_LEASE / 4))

# --- Celery -----------------------------------------------------------------------
# With no broker configured every task runs in-process, so the demo needs no server.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
if not DEBUG and not CELERY_BROKER_URL:
    PRODUCTION_PROBLEMS.append(
        "CELERY_BROKER_URL must be set when DEBUG is off (e.g. redis://redis:6379/0); "
        "without it every task would run inside the web server"
    )
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# Redis hands an unacknowledged task to another worker after this many seconds. Tasks
# are acknowledged after they ran (acks_late), so a worker killed mid-task has its task
# redone; retry countdowns stay far below it, or a waiting retry would run twice.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
# One task at a time per worker process: a killed worker takes no unstarted tasks with it.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
if DIGEST_RETRY_BACKOFF_MAX * 4 > CELERY_VISIBILITY_TIMEOUT:
    raise ImproperlyConfigured(
        f"DIGEST_RETRY_BACKOFF_MAX={DIGEST_RETRY_BACKOFF_MAX:g} must be at most a quarter of "
        f"CELERY_VISIBILITY_TIMEOUT={CELERY_VISIBILITY_TIMEOUT}"
    )
if DIGEST_DB_RETRY_SECONDS * 2 > DIGEST_SENDING_LEASE:
    raise ImproperlyConfigured(
        f"DIGEST_DB_RETRY_SECONDS={DIGEST_DB_RETRY_SECONDS:g} must be at most half of "
        f"DIGEST_SENDING_LEASE={DIGEST_SENDING_LEASE:g}"
    )
if DIGEST_SENDING_LEASE <= 2 * EMAIL_TIMEOUT:
    raise ImproperlyConfigured(
        f"DIGEST_SENDING_LEASE={DIGEST_SENDING_LEASE:g} must exceed twice "
        f"EMAIL_TIMEOUT={EMAIL_TIMEOUT}, or a slow send could be taken for a dead one"
    )
CELERY_BEAT_SCHEDULE = {
    "send-due-digests": {
        "task": "digest.tasks.send_due_digests",
        "schedule": float(env_int("SEND_DUE_DIGESTS_EVERY", 300)),
    },
    "ingest-sources": {
        "task": "digest.tasks.ingest_sources",
        "schedule": float(env_int("INGEST_SOURCES_EVERY", 900)),
    },
    "prune-digest-items": {
        "task": "digest.tasks.prune_digest_items",
        "schedule": float(env_int("PRUNE_DIGEST_ITEMS_EVERY", 24 * 3600)),
    },
    # Each Source (managed in the admin) has its own interval; this finds the due ones.
    "fetch-due-sources": {
        "task": "digest.tasks.fetch_due_sources",
        "schedule": float(env_int("FETCH_DUE_SOURCES_EVERY", 60)),
    },
}
if BOUNCE_MAILBOX_URL:
    CELERY_BEAT_SCHEDULE["read-bounces"] = {
        "task": "digest.tasks.read_bounces",
        "schedule": float(env_int("READ_BOUNCES_EVERY", 300)),
    }
# One queue per stage, so each is given its own workers (`celery worker -Q sending`)
# and sending can be scaled alone. A worker started without -Q consumes them all;
# "celery" takes tasks sent by name from elsewhere without a route.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES: dict[str, dict[str, str]] = {
    name: {} for name in ("celery", "ingest", "matching", "sending")
}
CELERY_TASK_ROUTES = {
    "digest.tasks.ingest_*": {"queue": "ingest"},
    "digest.tasks.fetch_*": {"queue": "ingest"},
    "digest.tasks.send_due_digests": {"queue": "matching"},
    "digest.tasks.send_digests": {"queue": "sending"},
    "digest.tasks.send_planned_digests": {"queue": "sending"},
    "digest.tasks.prune_digest_items": {"queue": "matching"},
    # Signup and "email me my link" mail, handed off by the pages.
    "subscriptions.tasks.*": {"queue": "sending"},
    "digest.tasks.read_bounces": {"queue": "sending"},
}
# Workers log through LOGGING below (JSON lines in production), not Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Fetching sources (digest.ingest.fetch): hosts that resolve to loopback, private,
# link-local or reserved addresses are refused unless this is true (a source on the
# operator's own network); one fetch, retries included, ends after FETCH_DEADLINE seconds.
FETCH_ALLOW_PRIVATE_ADDRESSES = env_bool("FETCH_ALLOW_PRIVATE_ADDRESSES", False)
FETCH_DEADLINE = env_float("FETCH_DEADLINE", 60.0)
# Paths or URLs the beat ingests every 15 minutes, whole each time; for URLs fetched
# with conditional GETs on their own intervals, add Sources in the admin instead.
INGEST_SOURCES = env_list("INGEST_SOURCES")
# arXiv's etiquette (https://info.arxiv.org/help/api/tou.html): at most one request every
# three seconds from all workers together, and a bounded number of pages per fetch.
ARXIV_REQUEST_INTERVAL = env_float("ARXIV_REQUEST_INTERVAL", 3.0)
ARXIV_MAX_PAGES = env_int("ARXIV_MAX_PAGES", 20)

# --- Web pages (signup, manage, feeds) ---------------------------------------------
# Double opt-in links work once, for this long (seconds).
CONFIRM_LINK_MAX_AGE = env_int("CONFIRM_LINK_MAX_AGE", 3 * 24 * 3600)
# Magic links to the settings page (in every digest, and emailed on request) work once,
# for this long: a weekly digest's link must outlive the week.
MANAGE_LINK_MAX_AGE = env_int("MANAGE_LINK_MAX_AGE", 30 * 24 * 3600)
# "More / less like this" links of a digest work this long (seconds), and never less
# than DIGEST_ARCHIVE_DAYS: as long as the digest can still be read.
FEEDBACK_LINK_MAX_AGE = env_int("FEEDBACK_LINK_MAX_AGE", 365 * 24 * 3600)
# The throttles count in the cache, so several web processes share one count: Redis when
# one is configured, else memory of this process.
REDIS_URL = env_str("REDIS_URL") or CELERY_BROKER_URL
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "papers",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# (requests, seconds) per client IP (an IPv6 /64 counts as one client) and per address.
THROTTLES = {
    "signup-ip": (env_int("THROTTLE_SIGNUP_PER_IP", 20), 3600),
    "signup-address": (env_int("THROTTLE_SIGNUP_PER_ADDRESS", 3), 3600),
    "link-ip": (env_int("THROTTLE_LINK_PER_IP", 20), 3600),
    "link-address": (env_int("THROTTLE_LINK_PER_ADDRESS", 3), 3600),
    "preview-ip": (env_int("THROTTLE_PREVIEW_PER_IP", 120), 60),
    # "Send me one now" of the whole site (each subscriber may ask once an hour).
    "send-now": (env_int("THROTTLE_SEND_NOW", 200), 3600),
}
# Filter previews index at most this many recent papers (the most upvoted) per process.
PREVIEW_MAX_PAPERS = env_int("PREVIEW_MAX_PAPERS", 20_000)
# Seconds a process answers previews from its index before checking the papers changed.
PREVIEW_INDEX_TTL = env_float("PREVIEW_INDEX_TTL", 5.0)
# How many reverse proxies stand between the clients and the app (0: none, the client
# is REMOTE_ADDR). Behind N proxies that each append to X-Forwarded-For, the client is
# the N-th entry from the right: entries further left are written by the client and
# never trusted (django-ipware reads them: subscriptions.throttle.client_ip).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
if env_str("CLIENT_IP_META"):
    raise ImproperlyConfigured(
        "CLIENT_IP_META is gone: set TRUSTED_PROXY_COUNT to the number of reverse proxies "
        "in front of the app (see docs/operations.md)"
    )
# Sent on every response that sets no policy of its own (the "view in browser" digest page
# allows the email's inline styles). Pages load only our own static JS and CSS.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
MIDDLEWARE += ["subscriptions.middleware.ContentSecurityPolicyMiddleware"]

# --- Admin ------------------------------------------------------------------------
# A client address and username pair is locked out of the admin login for
# ADMIN_LOGIN_LOCKOUT_SECONDS after ADMIN_LOGIN_MAX_FAILURES failed attempts (counted in
# the cache above).
ADMIN_LOGIN_MAX_FAILURES = env_int("ADMIN_LOGIN_MAX_FAILURES", 5)
# ...and a username from any address, or an address for any username, after these many.
ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME = env_int("ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME", 20)
ADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("ADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS", 20)
ADMIN_LOGIN_LOCKOUT_SECONDS = env_int("ADMIN_LOGIN_LOCKOUT_SECONDS", 15 * 60)

# One line per event on stderr; LOG_FORMAT=json writes JSON lines (digest/logs.py).
LOG_FORMAT = env_str("LOG_FORMAT", "plain" if DEBUG else "json")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} must be plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "digest.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {
        "handlers": ["console"],
        "level": env_str("LOG_LEVEL", "WARNING" if DEBUG else "INFO"),
    },
}

if PRODUCTION_PROBLEMS:
    raise ImproperlyConfigured(
        "Unsafe or incomplete production settings (DEBUG is off):\n"
        + "\n".join(f"  - {problem}" for problem in PRODUCTION_PROBLEMS)
    )
