"""Tooltrail settings: one file, read from the environment through small typed helpers.

Embedded defaults (no environment at all) give SQLite under ``var/`` and expect the
launcher (``python -m tooltrail.launcher``) to have started an embedded Redis and
exported ``REDIS_URL``. Production sets ``DATABASE_URL``, ``REDIS_URL`` and
``SECRET_KEY``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TOOLTRAIL_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


# Under pytest: the test client's host name is allowed, and no production checks.
TESTING = "pytest" in sys.modules
DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    """A SECRET_KEY from the environment, else one generated once into var/.

    A generated key is per host: several servers sharing one database (DATABASE_URL
    naming a server, DEBUG off) would each sign with their own, so there it is required.
    """
    key = env_str("SECRET_KEY")
    if key:
        return key
    database_url = env_str("DATABASE_URL")
    if database_url and not database_url.startswith("sqlite") and not DEBUG and not TESTING:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DATABASE_URL names a database server and DEBUG is "
            "off: a key generated on each host breaks sessions across servers"
        )
    path = VAR_DIR / "secret_key"
    if not path.exists():
        import secrets

        # Created owner-only from the start (never chmodded after the key is written),
        # under another name and linked into place, so a process starting alongside
        # never reads a half-written key.
        tmp = path.with_name(f".secret_key.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            tmp.unlink()
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = [h for h in env_str("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]
if TESTING:
    ALLOWED_HOSTS.append("testserver")

# Behind TLS (set these in production): cookies only over HTTPS, HSTS, and the proxy's
# header that says a request came in over HTTPS.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", SESSION_COOKIE_SECURE)
SECURE_HSTS_SECONDS = int(env_float("SECURE_HSTS_SECONDS", 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Request bodies above this answer 413 (JSON on /api/), never a traceback.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(env_float("DATA_UPLOAD_MAX_MEMORY_SIZE", 2.5 * 1024 * 1024))
TOOLTRAIL_MAX_UPLOAD_BYTES = int(env_float("TOOLTRAIL_MAX_UPLOAD_BYTES", 64 * 1024 * 1024))
CSRF_TRUSTED_ORIGINS = [o for o in env_str("CSRF_TRUSTED_ORIGINS").split(",") if o]
CSRF_FAILURE_VIEW = "tooltrail.views.csrf_failure"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "channels",
    "tooltrail",
    "toolsapp",
    "traces",
    "agents",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "tooltrail.middleware.RequestSizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tooltrail.middleware.LoginRequiredEverywhereMiddleware",
    "tooltrail.middleware.ApiJsonErrorsMiddleware",
    "tooltrail.middleware.IdsInRangeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "tooltrail.urls"
ASGI_APPLICATION = "tooltrail.asgi.application"
WSGI_APPLICATION = None

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
            ],
        },
    },
]

_default_db = f"sqlite:///{VAR_DIR / 'tooltrail.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", _default_db), conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while a worker writes; IMMEDIATE makes writers
    # queue on the lock instead of failing with "database is locked" mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }

# Tests share the database with real worker and server processes (they are given its
# name explicitly), so on SQLite it is a file, never the private in-memory database;
# the pid keeps two test sessions on one machine apart.
_test_db = f"test_tooltrail_{os.getpid()}"
DATABASES["default"]["TEST"] = {
    "NAME": str(VAR_DIR / f"{_test_db}.sqlite3")
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    else _test_db
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Redis: Celery broker and the Channels layer -----------------------------------
# `make up` starts an embedded Redis and writes its URL here, so that manage.py
# commands run beside it (run_agent, shell) reach the same server.
EMBEDDED_REDIS_URL_FILE = VAR_DIR / "embedded_redis_url"


def _redis_url() -> str:
    url = env_str("REDIS_URL")
    if url:
        return url
    if EMBEDDED_REDIS_URL_FILE.exists():
        return EMBEDDED_REDIS_URL_FILE.read_text().strip()
    return "redis://127.0.0.1:6379/0"


REDIS_URL = _redis_url()

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "agents"
CELERY_TASK_ROUTES = {
    "agents.tasks.agent_run_task": {"queue": "agents"},
    "agents.tasks.experiment_tick_task": {"queue": "agents"},
    "agents.tasks.experiment_item_task": {"queue": "agents"},
    "agents.tasks.job_run_task": {"queue": "gpu"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# An unacknowledged task (acks_late) goes back to the queue after this long: longer than
# the longest run may last, or a long run would be started a second time.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(env_float("TOOLTRAIL_RUN_DEADLINE_MAX_SECONDS", 3600.0)) + 600
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Tooltrail ---------------------------------------------------------------------
# A running trace whose worker has not written a heartbeat for this long is declared
# lost by the reaper and ends "failed".
TOOLTRAIL_HEARTBEAT_SECONDS = env_float("TOOLTRAIL_HEARTBEAT_SECONDS", 2.0)
TOOLTRAIL_STALE_AFTER_SECONDS = env_float("TOOLTRAIL_STALE_AFTER_SECONDS", 30.0)
TOOLTRAIL_TOOL_TIMEOUT_SECONDS = env_float("TOOLTRAIL_TOOL_TIMEOUT_SECONDS", 30.0)
# A run's total deadline (an agent may set its own, up to the max); a run past it ends
# failed, and one stuck past it (plus the stale limit) is reaped like a dead worker.
TOOLTRAIL_RUN_DEADLINE_SECONDS = env_float("TOOLTRAIL_RUN_DEADLINE_SECONDS", 900.0)
TOOLTRAIL_RUN_DEADLINE_MAX_SECONDS = env_float("TOOLTRAIL_RUN_DEADLINE_MAX_SECONDS", 3600.0)
# A model call's overall deadline (not only each read's timeout); an endpoint's
# config "deadline" overrides it.
TOOLTRAIL_MODEL_DEADLINE_SECONDS = env_float("TOOLTRAIL_MODEL_DEADLINE_SECONDS", 300.0)
TOOLTRAIL_MODEL_REPLY_MAX_BYTES = int(env_float("TOOLTRAIL_MODEL_REPLY_MAX_BYTES", 8 * 1024 * 1024))
# A trace queued this long without a worker taking it (its task lost with a restarted
# Redis or a killed worker) is enqueued again; after three tries it ends failed.
# An open websocket re-checks the login or token it was opened with this often.
TOOLTRAIL_WS_REAUTH_SECONDS = env_float("TOOLTRAIL_WS_REAUTH_SECONDS", 30.0)
TOOLTRAIL_QUEUED_LOST_AFTER_SECONDS = env_float("TOOLTRAIL_QUEUED_LOST_AFTER_SECONDS", 600.0)
TOOLTRAIL_LOCAL_MODEL_PATH = env_str("TOOLTRAIL_LOCAL_MODEL_PATH")
# Where people reach this server: links the CLI prints (and e-mails) start with it.
# TOOLTRAIL_BASE_URL is its older name.
SITE_URL = (
    env_str("SITE_URL")
    or env_str("TOOLTRAIL_BASE_URL")
    or f"http://127.0.0.1:{env_str('PORT', '8000')}"
).rstrip("/")
# Tool retrieval (docs/tool-retrieval.md): an agent whose toolset has more active tools
# than the threshold gets tool_search plus the top-k tools for its request (0: never).
TOOLTRAIL_TOOL_SEARCH_THRESHOLD = int(env_float("TOOLTRAIL_TOOL_SEARCH_THRESHOLD", 30))
TOOLTRAIL_TOOL_SEARCH_TOP_K = int(env_float("TOOLTRAIL_TOOL_SEARCH_TOP_K", 8))
TOOLTRAIL_TOOL_SEARCH_METHOD = env_str("TOOLTRAIL_TOOL_SEARCH_METHOD", "hybrid")
TOOLTRAIL_TOOL_INDEX_PATH = Path(
    env_str("TOOLTRAIL_TOOL_INDEX_PATH", str(VAR_DIR / "tool_index.npz"))
)
# Model artifacts made here (embedded SmolLM2, merge and fine-tune outputs).
TOOLTRAIL_ARTIFACTS_DIR = env_str("TOOLTRAIL_ARTIFACTS_DIR", str(VAR_DIR / "artifacts"))
# A step row keeps at most this many bytes of its input, output and error each; the
# rest of a bigger value goes to a StepBlob (itself capped), read on demand.
TOOLTRAIL_STEP_FIELD_MAX_BYTES = int(env_float("TOOLTRAIL_STEP_FIELD_MAX_BYTES", 256 * 1024))
TOOLTRAIL_STEP_BLOB_MAX_BYTES = int(env_float("TOOLTRAIL_STEP_BLOB_MAX_BYTES", 16 * 1024 * 1024))

# Tool registry. Python tools may only name functions matched here (fnmatch patterns
# over "module:function"); nothing from user input is imported otherwise. Add more with
# a comma-separated TOOLTRAIL_PYTHON_TOOLS.
TOOLTRAIL_PYTHON_TOOLS = ["toolsapp.builtin:*"] + [
    p.strip() for p in env_str("TOOLTRAIL_PYTHON_TOOLS").split(",") if p.strip()
]
TOOLTRAIL_OPENAPI_MAX_BYTES = int(env_float("TOOLTRAIL_OPENAPI_MAX_BYTES", 64 * 1024 * 1024))
TOOLTRAIL_OPENAPI_MAX_OPERATIONS = int(env_float("TOOLTRAIL_OPENAPI_MAX_OPERATIONS", 25_000))
TOOLTRAIL_HTTP_TOOL_MAX_BYTES = int(env_float("TOOLTRAIL_HTTP_TOOL_MAX_BYTES", 1024 * 1024))

# --- Trace ingest (OTLP, SDK) and retention (docs/ingest.md) ---
# An OTLP/HTTP request body over this many bytes (after gzip) is refused with 413.
TOOLTRAIL_OTLP_MAX_BYTES = int(env_float("TOOLTRAIL_OTLP_MAX_BYTES", 16 * 1024 * 1024))
# Ingest requests waiting in one server process beyond this get 503 + Retry-After.
TOOLTRAIL_OTLP_MAX_PENDING = int(env_float("TOOLTRAIL_OTLP_MAX_PENDING", 16))
# An ingested trace whose spans stopped coming this long ago is closed (finished).
TOOLTRAIL_INGEST_IDLE_SECONDS = env_float("TOOLTRAIL_INGEST_IDLE_SECONDS", 60.0)
# Finished traces older than this many days, or beyond the newest N, are deleted by
# the Celery beat task traces.tasks.traces_upkeep_task (0 keeps them).
TOOLTRAIL_RETENTION_DAYS = env_float("TOOLTRAIL_RETENTION_DAYS", 0)
TOOLTRAIL_RETENTION_MAX_TRACES = int(env_float("TOOLTRAIL_RETENTION_MAX_TRACES", 0))
# A claimed queue item whose annotator has not labelled it after this many minutes may
# be taken over by the next annotator who asks for work (0: claims never expire).
TOOLTRAIL_ANNOTATION_CLAIM_MINUTES = env_float("TOOLTRAIL_ANNOTATION_CLAIM_MINUTES", 30.0)

# The sandbox of `code` tools (toolsapp/sandbox.py): limits, and the paths it hides (the
# app, its data and secrets, the virtualenv, homes, service state; more with
# TOOLTRAIL_SANDBOX_HIDE="/a:/b").
TOOLTRAIL_SANDBOX_MEMORY_MB = int(env_float("TOOLTRAIL_SANDBOX_MEMORY_MB", 256))
TOOLTRAIL_SANDBOX_FILE_BYTES = int(env_float("TOOLTRAIL_SANDBOX_FILE_BYTES", 1 << 20))
TOOLTRAIL_SANDBOX_PROCESSES = int(env_float("TOOLTRAIL_SANDBOX_PROCESSES", 16))
TOOLTRAIL_SANDBOX_MAX_OUTPUT = int(env_float("TOOLTRAIL_SANDBOX_MAX_OUTPUT", 256 * 1024))
TOOLTRAIL_SANDBOX_HIDDEN_PATHS = [
    str(BASE_DIR),
    str(VAR_DIR),
    os.environ.get("VIRTUAL_ENV", ""),
    sys.prefix,
    *[
        "/root",
        "/home",
        "/run",
        "/var/run",
        "/var/lib",
        "/var/log",
        "/srv",
        "/opt",
        "/mnt",
        "/media",
    ],
    *filter(None, env_str("TOOLTRAIL_SANDBOX_HIDE").split(":")),
]

# MCP servers (toolsapp/mcpclient.py): the deadline of a connect, tools/list or tools/call,
# the biggest answer taken, and how often beat re-syncs every enabled server.
TOOLTRAIL_MCP_TIMEOUT_SECONDS = env_float("TOOLTRAIL_MCP_TIMEOUT_SECONDS", 30.0)
TOOLTRAIL_MCP_MAX_RESULT_BYTES = int(env_float("TOOLTRAIL_MCP_MAX_RESULT_BYTES", 1 << 20))
CELERY_BEAT_SCHEDULE = {
    "mcp-sync-all": {
        "task": "toolsapp.tasks.mcp_sync_all_task",
        "schedule": env_float("TOOLTRAIL_MCP_SYNC_SECONDS", 3600.0),
    },
    # Ingested traces that went idle are closed, then the retention policy runs.
    "traces-upkeep": {"task": "traces.tasks.traces_upkeep_task", "schedule": 60.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        # Answered 413 with a message (tooltrail.views.bad_request): not a traceback.
        "django.security.RequestDataTooBig": {"handlers": [], "propagate": False},
    },
}
