"""Kehu's one settings module.

Every deployment-specific value comes from an environment variable (see docs/configuration.md).
A production start-up with a required variable missing stops with a message naming the variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off.")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None


def env_required(name: str, hint: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(f"Set the environment variable {name}: {hint}")
    return value


DEBUG = env_bool("KEHU_DEBUG", False)

DATA_DIR = (
    Path(
        os.environ.get("KEHU_DATA_DIR")
        or Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "kehu"
    )
    .expanduser()
    .resolve()
)

if DEBUG:
    SECRET_KEY = os.environ.get("KEHU_SECRET_KEY") or "kehu-insecure-development-key-never-use-in-production"
    ALLOWED_HOSTS = [h.strip() for h in os.environ.get("KEHU_ALLOWED_HOSTS", "*").split(",") if h.strip()]
else:
    SECRET_KEY = env_required(
        "KEHU_SECRET_KEY",
        "a long random string, e.g. the output of "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'` (or KEHU_DEBUG=1 for development).",
    )
    ALLOWED_HOSTS = [
        h.strip()
        for h in env_required(
            "KEHU_ALLOWED_HOSTS",
            "the comma-separated host names Kehu is served under, e.g. crm.example.cn,127.0.0.1",
        ).split(",")
        if h.strip()
    ]

# HTTPS-only cookies, redirects and HSTS. On by default in production; a plain-http intranet or the demo sets 0.
HTTPS = env_bool("KEHU_HTTPS", not DEBUG)

INSTALLED_APPS = [
    "kehu.core",
    "kehu.accounts",
    "kehu.org",
    "kehu.customers",
    "kehu.audit",
    "kehu.jobs",
    "kehu.metrics",
    "kehu.policies",
    "kehu.web",
    "kehu.api",
    "ninja",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "kehu.core.middleware.RequestContextMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "kehu.accounts.middleware.SessionSecurityMiddleware",
    "kehu.accounts.middleware.UserLanguageMiddleware",
    "kehu.accounts.middleware.PasswordChangeRequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "kehu.urls"
WSGI_APPLICATION = "kehu.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "kehu.web.context_processors.navigation",
            ],
        },
    },
]

if not os.environ.get("DATABASE_URL"):
    # The embedded default: SQLite in the data directory, created on first use.
    DATA_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'kehu.sqlite3'}",
        conn_max_age=env_int("KEHU_DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # WAL and a busy timeout let the web server and a background import share the file.
        # A 64 MB page cache and memory-mapped reads: list pages touch rows all over a large file.
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
            "PRAGMA cache_size=-65536; PRAGMA mmap_size=2147483648;"
        ),
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["kehu.accounts.backends.LockoutModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "kehu.accounts.passwords.ComplexityValidator", "OPTIONS": {"min_length": 8, "min_classes": 3}},
    {"NAME": "kehu.accounts.passwords.NotContainingUsernameValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# Login and session security (MLPS level 3). All configurable, see docs/configuration.md.
KEHU_PASSWORD_MAX_AGE_DAYS = env_int("KEHU_PASSWORD_MAX_AGE_DAYS", 90)
KEHU_LOCKOUT_THRESHOLD = env_int("KEHU_LOCKOUT_THRESHOLD", 5)
KEHU_LOCKOUT_MINUTES = env_int("KEHU_LOCKOUT_MINUTES", 30)
KEHU_SESSION_IDLE_MINUTES = env_int("KEHU_SESSION_IDLE_MINUTES", 30)
KEHU_SESSION_MAX_HOURS = env_int("KEHU_SESSION_MAX_HOURS", 12)
KEHU_API_TOKEN_HOURS = env_int("KEHU_API_TOKEN_HOURS", 12)
# Personal data at rest (kehu/core/crypto.py): data keys (id=base64key,… the first encrypts), cipher, and
# the blind-index key, which must never change. Unset: derived from KEHU_SECRET_KEY (development only).
KEHU_DATA_KEYS = os.environ.get("KEHU_DATA_KEYS", "")
KEHU_DATA_CIPHER = os.environ.get("KEHU_DATA_CIPHER", "aes-256-gcm").strip().lower()
KEHU_INDEX_KEY = os.environ.get("KEHU_INDEX_KEY", "")
# Key of the audit trail's hash chain; keep it stable for the life of the database (docs/decisions/0003).
KEHU_AUDIT_KEY = os.environ.get("KEHU_AUDIT_KEY", "")

SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = KEHU_SESSION_MAX_HOURS * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
CSRF_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SECURE = HTTPS
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = HTTPS and env_bool("KEHU_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("KEHU_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("KEHU_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]
# Client IPs for the audit trail: trust X-Forwarded-For only behind a known proxy.
KEHU_TRUST_X_FORWARDED_FOR = env_bool("KEHU_BEHIND_PROXY", False)

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "Asia/Shanghai"
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Serve straight from the apps' static folders when collectstatic has not run (tests, development).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = DATA_DIR / "media"
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# The largest file an import takes (web upload, `kehu import`); bigger uploads are cut off while streaming.
KEHU_MAX_UPLOAD_MB = env_int("KEHU_MAX_UPLOAD_MB", 50)
# Uploaded import files of background jobs that ended more than this many days ago are deleted by
# `kehu cleanup-files` (after a dry run the file waits there for "import this file now").
KEHU_UPLOAD_RETENTION_DAYS = env_int("KEHU_UPLOAD_RETENTION_DAYS", 7)
# Parquet files beside the database: sales-fact snapshots and transaction ledgers (decision 0007). On
# several servers, a directory every web and worker process shares, backed up with the database.
KEHU_FACTS_DIR = os.environ.get("KEHU_FACTS_DIR", "") or str(DATA_DIR / "facts")

# Celery: Redis in production; with no broker configured tasks run in-process.
CELERY_BROKER_URL = os.environ.get("KEHU_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE

# The cache carries background jobs' progress from the worker to the web pages: it must be shared by
# them, so Redis in production (KEHU_CACHE_URL, default: the broker when that is Redis).
CACHE_URL = os.environ.get("KEHU_CACHE_URL") or (
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else ""
)
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    if CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("KEHU_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

NINJA_PAGINATION_PER_PAGE = 50

# Translatable names used in settings-level choices.
KEHU_PRODUCT_NAME = _("Kehu CRM")
