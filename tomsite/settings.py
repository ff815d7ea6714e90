"""Django settings for TOM: every value comes from the environment (see env.sample).

With no environment at all TOM runs on the *embedded default*: SQLite and media
under ``TOM_DATA_DIR`` (default ``./var``), the in-memory channel layer, a
local-memory cache and a filesystem Celery broker, so a newcomer needs nothing
but Python. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL, Redis
(cache, channel layer, JWT nonces) and a Redis Celery broker.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from celery.schedules import crontab

from tomsite.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_is_set,
    env_list,
    env_path,
    env_str,
)
from tomsite.localsecrets import GENERATED_NAMES, local_secrets

BASE_DIR = Path(__file__).resolve().parent.parent

# prometheus_client turns to multiprocess mode when this variable merely exists; left empty
# (as env.sample has it) every process would write its metric files into the working
# directory and the exporter would read none of them. Empty means unset.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

# --- Backend -----------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)
TOM_DATA_DIR = env_path("TOM_DATA_DIR", BASE_DIR / "var")
DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL")
TOM_EMBEDDED = not DATABASE_URL and not REDIS_URL

# Secrets: from the environment, else generated once per data folder (see localsecrets).
TOM_SECRETS_GENERATED = [name for name in GENERATED_NAMES if not env_is_set(name)]
_local = local_secrets(TOM_DATA_DIR) if TOM_SECRETS_GENERATED else {}

# Spelled out per name (not a loop) so the env.sample test can find each variable.
SECRET_KEY = env_str("SECRET_KEY") if env_is_set("SECRET_KEY") else _local["SECRET_KEY"]
# Phone numbers are hashed with HMAC-SHA256 under the newest key; older keys stay
# searchable until removed from TOM_PHONE_HASH_OLD_KEYS (README: "Rotating keys").
TOM_PHONE_HASH_KEY = (
    env_str("TOM_PHONE_HASH_KEY") if env_is_set("TOM_PHONE_HASH_KEY")
    else _local["TOM_PHONE_HASH_KEY"]
)
TOM_PHONE_HASH_OLD_KEYS = env_list("TOM_PHONE_HASH_OLD_KEYS")
TOM_DEFAULT_REGION = env_str("TOM_DEFAULT_REGION", "DE").upper()
TOM_JWT_SECRET = (
    env_str("TOM_JWT_SECRET") if env_is_set("TOM_JWT_SECRET") else _local["TOM_JWT_SECRET"]
)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
TIME_ZONE = env_str("TIME_ZONE", "Europe/Berlin")
LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
TOM_SESSION_BACKEND = env_choice("TOM_SESSION_BACKEND", "local", ("local", "provider", "echo"))
TOM_LANGUAGE = env_str("TOM_LANGUAGE", "en")

INSTALLED_APPS = [
    "daphne",  # first, so runserver serves ASGI (WebSockets) too
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_htmx",
    "django_prometheus",
    "tomsite",
    "calls",
    "voice",
    "toolhub",
    "greenlights",
    "axes",  # admin login throttling (AXES_* below)
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires
]

ROOT_URLCONF = "tomsite.urls"
ASGI_APPLICATION = "tomsite.asgi.application"
WSGI_APPLICATION = "tomsite.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "tomsite" / "templates"],
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

if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
            conn_health_checks=True,
        )
    }
else:
    TOM_DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(TOM_DATA_DIR / "tom.sqlite3"),
            # A file, not memory, so live-server tests' daphne process sees the test data.
            "TEST": {"NAME": str(TOM_DATA_DIR / "test.sqlite3")},
            # daphne, the Celery worker and beat share the file: WAL lets readers run
            # beside a writer, IMMEDIATE transactions and a busy timeout make writers
            # queue instead of failing with "database is locked".
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 10,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]
# Admin login throttling (django-axes): AXES_FAILURE_LIMIT failed logins for one username
# from one address lock that pair out for AXES_COOLOFF_MINUTES, right password or not.
AUTHENTICATION_BACKENDS = [
    "tomsite.auth_backends.LoginThrottleBackend",  # axes' AxesStandaloneBackend, first
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# axes announces itself at INFO in every process (each manage.py command too); its lockouts
# are still logged as warnings.
AXES_VERBOSE = False
# The address is REMOTE_ADDR alone: behind a trusted proxy tomsite.proxy has already put
# the client there (TOM_TRUSTED_PROXIES); a forwarding header is never believed here.
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)

STATIC_URL = "static/"
STATIC_ROOT = TOM_DATA_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = TOM_DATA_DIR / "media"
# Daphne serves no static files; for an on-prem admin with a handful of users the
# staticfiles ASGI handler is enough. Set false when a reverse proxy serves STATIC_ROOT.
TOM_SERVE_STATIC = env_bool("TOM_SERVE_STATIC", True)

# --- Redis, cache, channel layer -----------------------------------------------
# A Redis that is down or unreachable must cost a bounded wait, never a hung request
# or handshake: connect and read timeouts for both (redis-py waits forever by default).
TOM_REDIS_CONNECT_TIMEOUT_S = env_float("TOM_REDIS_CONNECT_TIMEOUT_S", 2.0)
TOM_REDIS_TIMEOUT_S = env_float("TOM_REDIS_TIMEOUT_S", 3.0)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tom",
            # Passed to redis-py's ConnectionPool (django/core/cache/backends/redis.py).
            "OPTIONS": {"socket_connect_timeout": TOM_REDIS_CONNECT_TIMEOUT_S,
                        "socket_timeout": TOM_REDIS_TIMEOUT_S},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # channels-redis blocks 5 s in BZPOPMIN per receive; redis-py 8 times reads out
            # after 5 s by default, which kills every consumer after 5 s of quiet: the read
            # timeout stays above that block, so it is not TOM_REDIS_TIMEOUT_S.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30,
                                  "socket_connect_timeout": TOM_REDIS_CONNECT_TIMEOUT_S}],
                       "prefix": "tom"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery ------------------------------------------------------------------------
_celery_dir = TOM_DATA_DIR / "celery"
# kombu's filesystem transport wants a host name even though it ignores it.
EMBEDDED_BROKER_URL = "filesystem://localhost//"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or EMBEDDED_BROKER_URL
if CELERY_BROKER_URL == EMBEDDED_BROKER_URL:
    # One folder is both inbox and outbox: producer and worker share this host.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "queue"),
        "data_folder_out": str(_celery_dir / "queue"),
        "control_folder": str(_celery_dir / "control"),
        "store_processed": False,
    }
    for _sub in ("queue", "control"):
        (_celery_dir / _sub).mkdir(parents=True, exist_ok=True)
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_TASK_IGNORE_RESULT = True  # no task waits on another's result
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_SOFT_TIME_LIMIT = env_int("TOM_CELERY_SOFT_TIME_LIMIT_S", 120)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 30
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CONCURRENCY = env_int("TOM_CELERY_CONCURRENCY", 2)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Seeded into django-celery-beat's tables when beat starts; supervisors edit them there.
CELERY_BEAT_SCHEDULE = {
    "calls.reap-stale": {
        "task": "calls.tasks.calls_reap_stale",
        "schedule": 300.0,
        "options": {"expires": 240},
    },
    "calls.recordings-publish-spooled": {  # TOM_RECORDING_STORAGE: what a crash left
        "task": "calls.tasks.recordings_publish_spooled",
        "schedule": crontab(minute="*/15"),
        "options": {"expires": 600},
    },
    "calls.recordings-expire": {  # TOM_RECORDING_RETENTION_DAYS
        "task": "calls.tasks.recordings_delete_expired",
        "schedule": crontab(hour=4, minute=30),
        "options": {"expires": 3600},
    },
    "greenlights.selfcheck": {
        "task": "greenlights.tasks.selfcheck",
        "schedule": crontab(),  # every minute
        "options": {"expires": 50},
    },
    "greenlights.nightly": {
        "task": "greenlights.tasks.nightly",
        "schedule": crontab(hour=3, minute=15),
        "options": {"expires": 3600},
    },
}

# --- TLS and HTTP security ------------------------------------------------------
TOM_HTTPS = env_bool("TOM_HTTPS", False)
TOM_TLS_CERT_FILE = env_str("TOM_TLS_CERT_FILE")
TOM_TLS_KEY_FILE = env_str("TOM_TLS_KEY_FILE")
# Reverse proxies whose X-Forwarded-For TOM believes (IPs or CIDRs): the client is the
# right-most hop that is not one of them (tomsite.proxy). Empty: the header is never read.
TOM_TRUSTED_PROXIES = env_list("TOM_TRUSTED_PROXIES")
_proxy_sets_proto = env_bool("TOM_BEHIND_PROXY", False)
# Behind a proxy an address allow-list says little: /fork/token and /metrics then need
# their secret (voice.access.client_in; tomsite.E007/E008 when it is empty).
TOM_BEHIND_PROXY = _proxy_sets_proto or bool(TOM_TRUSTED_PROXIES)
if _proxy_sets_proto:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = TOM_HTTPS
SESSION_COOKIE_SECURE = TOM_HTTPS
CSRF_COOKIE_SECURE = TOM_HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if TOM_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = TOM_HTTPS
SECURE_HSTS_PRELOAD = TOM_HTTPS
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# The fork endpoint is exempt from redirects: FreeSWITCH dials the URL it was given.
SECURE_REDIRECT_EXEMPT = [r"^ws/", r"^fork/", r"^healthz$"]

# --- Settings for TOM's own features (groups as in env.sample) ---------------------
from tomsite.tom_settings import *  # noqa: E402,F403  (kept apart to keep this file readable)

# Django's two storages, and "recordings" when TOM_RECORDING_STORAGE names one
# (calls.storage: without it, files under TOM_RECORDING_DIR).
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if TOM_RECORDING_STORAGE:  # noqa: F405
    STORAGES["recordings"] = {"BACKEND": TOM_RECORDING_STORAGE,  # noqa: F405
                              "OPTIONS": TOM_RECORDING_STORAGE_OPTIONS}  # noqa: F405

# --- Logging -------------------------------------------------------------------
TOM_LOG_LEVEL = env_str("TOM_LOG_LEVEL", "INFO").upper()
TOM_LOG_FORMAT = env_choice("TOM_LOG_FORMAT", "console", ("console", "json"))
TOM_LOG_PII = env_bool("TOM_LOG_PII", False)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "tomsite.logformat.RedactFilter"}},
    "formatters": {
        "console": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s%(extras)s",
                    "()": "tomsite.logformat.ConsoleFormatter"},
        "json": {"()": "tomsite.logformat.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": TOM_LOG_FORMAT,
            "filters": ["redact"],
        },
    },
    "root": {"handlers": ["console"], "level": TOM_LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},  # SQL at DEBUG would log parameters
        "faster_whisper": {"level": "WARNING"},  # one INFO line per utterance
    },
}

# --- Development -------------------------------------------------------------------
TOM_HOST = env_str("TOM_HOST", "127.0.0.1")
TOM_PORT = env_int("TOM_PORT", 8000)
TOM_DEMO_USERNAME = env_str("TOM_DEMO_USERNAME", "supervisor")
# Models ship inside packages; nothing may reach a model hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
