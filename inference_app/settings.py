"""Yardstick settings: one module, driven by the environment.

Defaults are the embedded, single-machine configuration (SQLite, in-process channel layer,
filesystem Celery broker, in-process concurrency counters, the embedded llama.cpp engine).
Setting DATABASE_URL switches to PostgreSQL; setting REDIS_URL switches the channel layer, the
Celery broker and the concurrency counters to Redis. The same code runs both ways.
"""

import os
from pathlib import Path

import dj_database_url

from inference_app.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
# Runtime state (SQLite file, Celery's filesystem broker, engine logs) lives here, never in git.
VAR_DIR = Path(env_str("YARDSTICK_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-key-set-SECRET_KEY-in-production")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
# The public base URL shown in examples ("base_url" for the openai client); blank = from the request.
SITE_URL = env_str("SITE_URL", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "billing",
    "inference_app",
    "playground",
    "traces",
    "evaluations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # WhiteNoise, async (inference_app/static_files.py): a sync middleware would put every
    # request through a thread of its own.
    "inference_app.static_files.AsyncWhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "inference_app.urls"
ASGI_APPLICATION = "inference_app.asgi.application"
WSGI_APPLICATION = "inference_app.wsgi.application"

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

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'yardstick.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the web process, the Celery worker and tests share one file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # The test database in a file too, as the product runs (WAL: readers never wait for the
    # gateway's writer), not Django's shared in-memory database, whose table locks fail a
    # reader at once while another connection writes. One file per test process.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/inference/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise warns at start-up when this is missing (before the first collectstatic).
STATIC_ROOT.mkdir(exist_ok=True)
# Finders let whitenoise serve straight from static/ in tests and dev, without collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- Redis: one switch for the channel layer, the Celery broker and concurrency counters ----
REDIS_URL = env_str("REDIS_URL", "")
# Prefix for every Redis key this deployment writes; lets tests share one Redis safely.
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "yardstick")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_KEY_PREFIX}:asgi"},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    # The embedded broker: a folder on disk, so one machine needs no Redis or RabbitMQ.
    _broker_dir = VAR_DIR / "celery-broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # Without this kombu writes its control files into the current directory.
        "control_folder": str(_broker_dir / "control"),
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"
from billing.beat import BEAT_SCHEDULE as BILLING_BEAT  # noqa: E402
from evaluations.beat import EVALUATIONS_BEAT  # noqa: E402
from traces.beat import TRACES_BEAT  # noqa: E402

CELERY_BEAT_SCHEDULE = {**BILLING_BEAT, **TRACES_BEAT, **EVALUATIONS_BEAT}

# --- The gateway -----------------------------------------------------------------------------
# Where the embedded llama.cpp engine listens (started by `manage.py run_engine`).
EMBEDDED_ENGINE_HOST = env_str("EMBEDDED_ENGINE_HOST", "127.0.0.1")
EMBEDDED_ENGINE_PORT = env_int("EMBEDDED_ENGINE_PORT", 8081)
EMBEDDED_ENGINE_URL = env_str(
    "EMBEDDED_ENGINE_URL", f"http://{EMBEDDED_ENGINE_HOST}:{EMBEDDED_ENGINE_PORT}/v1"
)
EMBEDDED_ENGINE_PARALLEL = env_int("EMBEDDED_ENGINE_PARALLEL", 4)
EMBEDDED_ENGINE_CONTEXT = env_int("EMBEDDED_ENGINE_CONTEXT", 8192)
# How long after a web process starts an embedded engine that has not answered yet counts as
# loading (/healthz: "starting", 503) rather than down. `run_stack --no-engine` sets it to 0.
EMBEDDED_ENGINE_START_SECONDS = env_float("EMBEDDED_ENGINE_START_SECONDS", 120.0)
# A TOML file of deployments, loaded by `manage.py load_deployments` (see README).
DEPLOYMENTS_FILE = env_str("DEPLOYMENTS_FILE", "")

# Geographic restriction: the header a trusted load balancer sets, and the blocked countries.
COUNTRY_HEADER = env_str("COUNTRY_HEADER", "CF-IPCountry")
BLOCKED_COUNTRIES = [c.upper() for c in env_list("BLOCKED_COUNTRIES", "")]

# Default concurrency limits when a plan or project sets none.
DEFAULT_USER_CONCURRENCY = env_int("DEFAULT_USER_CONCURRENCY", 8)
DEFAULT_PROJECT_CONCURRENCY = env_int("DEFAULT_PROJECT_CONCURRENCY", 16)
# A slot's lease: a crashed process's slots expire after this many seconds. Running requests
# renew theirs every third of it, so it bounds only how long a dead process's slots stay taken.
CONCURRENCY_LEASE_SECONDS = env_int("CONCURRENCY_LEASE_SECONDS", 30)
# Each gateway process beats a heartbeat this often; a process silent for LOST_AFTER_SECONDS is
# dead, and its requests are settled as `lost` by the next sweep (Celery beat, every 30 s).
HOLDER_HEARTBEAT_SECONDS = env_float("HOLDER_HEARTBEAT_SECONDS", 10.0)
LOST_AFTER_SECONDS = env_float("LOST_AFTER_SECONDS", 90.0)

MAX_REQUEST_BYTES = env_int("MAX_REQUEST_BYTES", 8 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
# An image sent inline (data: URL), decoded; larger ones get 400.
IMAGE_DATA_URL_MAX_BYTES = env_int("IMAGE_DATA_URL_MAX_BYTES", 5 * 1024 * 1024)
# Image URLs naming a private, loopback or link-local address (cloud metadata at
# 169.254.169.254, the engine's own admin ports) are refused unless this is set.
ALLOW_PRIVATE_IMAGE_URLS = env_bool("ALLOW_PRIVATE_IMAGE_URLS", False)
ENGINE_CONNECT_TIMEOUT = env_float("ENGINE_CONNECT_TIMEOUT", 5.0)
ENGINE_READ_TIMEOUT = env_float("ENGINE_READ_TIMEOUT", 300.0)
# A deployment out of rotation (no answer, or failing requests from several organizations) is
# probed this often (GET /models) and is back as soon as it answers.
DEPLOYMENT_PROBE_SECONDS = env_float("DEPLOYMENT_PROBE_SECONDS", 2.0)
# How long the gateway caches API keys, projects and deployments in process memory: a revoked
# key or a changed deployment takes effect within this many seconds.
GATEWAY_CACHE_SECONDS = env_float("GATEWAY_CACHE_SECONDS", 5.0)

# Traces (traces/): every chat completion is recorded as a call, with its bodies unless the
# project switched them off. Off only for benchmarks comparing the cost of tracing.
TRACES_ENABLED = env_bool("YARDSTICK_TRACES", True)
# Days calls are kept when an organization has set no retention period of its own.
TRACE_RETENTION_DAYS = env_int("TRACE_RETENTION_DAYS", 30)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        # httpx logs every engine request at INFO: one line per API call.
        "httpx": {"level": "WARNING"},
    },
}
