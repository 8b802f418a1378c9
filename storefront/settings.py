"""Storefront settings: one module, every deploy-relevant value read from the environment.

Each knob has a default suited to `make run` on a developer machine and a one-line comment.
The full table lives in README.md ("Configuration"); keep the two in step.
"""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent  # the repository root
PACKAGE_DIR = Path(__file__).resolve().parent

env = environ.Env()

# dev | test | production: production turns on the secure defaults and refuses a missing key.
STOREFRONT_ENV = env.str("STOREFRONT_ENV", default="dev")
if STOREFRONT_ENV not in {"dev", "test", "production"}:
    raise environ.ImproperlyConfigured(
        f"STOREFRONT_ENV must be dev, test or production, not {STOREFRONT_ENV!r}"
    )
IS_PRODUCTION = STOREFRONT_ENV == "production"

# Where runtime state lives (SQLite file, file cache, media, collected static, sockets).
VAR_DIR = Path(env.str("STOREFRONT_VAR_DIR", default=str(BASE_DIR / "var")))

# Secret key: required in production; dev/test get a fixed, clearly insecure one.
SECRET_KEY = env.str("SECRET_KEY", default="" if IS_PRODUCTION else "dev-insecure-storefront-key")
if not SECRET_KEY:
    raise environ.ImproperlyConfigured("SECRET_KEY must be set when STOREFRONT_ENV=production")

# Debug pages: never on unless asked for explicitly.
DEBUG = env.bool("DJANGO_DEBUG", default=False)

# Host names this site answers to (comma separated).
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

# Origins allowed to POST forms over HTTPS through a proxy (comma separated, with scheme).
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "storefront.accounts",
    "storefront.catalog",
    "storefront.orders",
    "storefront.dashboards",
    "storefront.ops",
]

MIDDLEWARE = [
    # /healthz and /readyz answer before host validation and the HTTPS redirect (see there).
    "storefront.ops.middleware.HealthProbeMiddleware",
    "storefront.ops.middleware.ProxyClientAddressMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves hashed static files when no nginx sits in front (embedded mode, Docker without proxy).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "storefront.urls"
WSGI_APPLICATION = "storefront.wsgi.application"
AUTH_USER_MODEL = "accounts.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [PACKAGE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "storefront.orders.context_processors.cart_summary",
            ],
        },
    }
]

# Database: SQLite file by default, PostgreSQL with e.g. postgres://user@127.0.0.1:5432/storefront.
# (An empty DATABASE_URL counts as unset.)
DATABASE_URL = env.str("DATABASE_URL", default="")
if not DATABASE_URL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not its directory
DATABASES = {"default": env.db_url_config(DATABASE_URL or f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
# Seconds a PostgreSQL connection is kept open between requests (0 = close after each request).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run while the checkout writes; several gunicorn workers share the file.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache: Redis when REDIS_URL is set, otherwise a file cache shared by every worker process.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "sf",
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            "KEY_PREFIX": "sf",
        }
    }

# Header naming the client address, set by our nginx (X-Real-IP); empty = use the socket peer.
# Set it only when the app is reachable through nginx alone.
STOREFRONT_PROXY_CLIENT_IP_HEADER = env.str("STOREFRONT_PROXY_CLIENT_IP_HEADER", default="")

# Celery broker (Redis by default); /readyz pings it. Empty: no broker, tasks run in-process.
STOREFRONT_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "dashboards:customer"
LOGOUT_REDIRECT_URL = "catalog:home"

LANGUAGE_CODE = "en-us"
# Time zone used for "revenue per day" buckets and displayed times.
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# collectstatic target, served by nginx (or WhiteNoise when no nginx runs).
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATICFILES_DIRS = [PACKAGE_DIR / "static"]
MEDIA_URL = "/media/"
# User uploads (product images).
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
# Let Django serve /media/ itself: only for running without nginx; production leaves it off.
SERVE_MEDIA = env.bool("SERVE_MEDIA", default=not IS_PRODUCTION)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Hashed, precompressed files; the test settings swap in the plain storage.
        "BACKEND": env.str(
            "STATICFILES_STORAGE",
            default="whitenoise.storage.CompressedManifestStaticFilesStorage",
        )
    },
}

# Largest upload in megabytes (product images, CSV files); nginx's client_max_body_size matches.
STOREFRONT_MAX_UPLOAD_MB = env.int("STOREFRONT_MAX_UPLOAD_MB", default=10)
# Request bodies beyond this go to a temporary file (deleted by Django after the request).
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_PERMISSIONS = 0o644  # readable by the nginx worker that serves /media/
DATA_UPLOAD_MAX_MEMORY_SIZE = STOREFRONT_MAX_UPLOAD_MB * 1024 * 1024

# Products per listing page and orders per history page.
STOREFRONT_PAGE_SIZE = env.int("STOREFRONT_PAGE_SIZE", default=24)
# Stock level at or below which the staff dashboard lists a product as low.
STOREFRONT_LOW_STOCK_THRESHOLD = env.int("STOREFRONT_LOW_STOCK_THRESHOLD", default=5)
# Largest quantity of one product in one cart line or order.
STOREFRONT_MAX_LINE_QUANTITY = env.int("STOREFRONT_MAX_LINE_QUANTITY", default=99)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + ([] if IS_PRODUCTION else ["rest_framework.renderers.BrowsableAPIRenderer"]),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "storefront.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Storefront API",
    "DESCRIPTION": "Products and the caller's own orders. Token or session authentication.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets come from the drf-spectacular-sidecar package, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Secure defaults in production (behind TLS-terminating nginx, which sets X-Forwarded-Proto).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=IS_PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=IS_PRODUCTION)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=IS_PRODUCTION)
# HSTS max-age in seconds (production default one year; 0 disables).
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if IS_PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=IS_PRODUCTION)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

if STOREFRONT_ENV == "test":
    # Fast hashing and plain static storage keep the suite quick and independent of collectstatic.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"
