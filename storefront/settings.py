"""Storefront settings: one module, every deploy-relevant value read from the environment.

Each knob has a default suited to `make run` on a developer machine and a one-line comment.
The full table lives in docs/configuration.md; keep the two in step.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab

from storefront import redis_sentinel
from storefront.ops.errors import init_error_reporting
from storefront.ops.log_format import log_format_from_environ
from storefront.ops.metrics_dirs import (
    given_multiproc_dir,
    group_name,
    metrics_root,
    use_group_dir,
)
from storefront.ops.profiling import profiling_setup
from storefront.redis_breaker import (
    BreakerConnection,
    BreakerSentinelConnection,
    BreakerUnixConnection,
)

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

# Debug pages: never on unless asked for explicitly, and never in production.
DEBUG = env.bool("DJANGO_DEBUG", default=False)
if DEBUG and IS_PRODUCTION:
    # Debug pages show settings, SQL and tracebacks to anyone who triggers an error.
    raise environ.ImproperlyConfigured(
        "DJANGO_DEBUG=true is refused when STOREFRONT_ENV=production: debug pages would show "
        "settings, SQL and tracebacks to every visitor. Unset DJANGO_DEBUG, or run with "
        "STOREFRONT_ENV=dev."
    )

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
    # API tokens: expiring, revocable, stored hashed (storefront/accounts/api.py).
    "knox",
    # Lockout after repeated failed logins (storefront/accounts/lockout.py).
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "storefront.accounts",
    "storefront.catalog",
    "storefront.orders",
    "storefront.dashboards",
    "storefront.ops",
]

MIDDLEWARE = [
    # First: every log line of the request, probes included, carries its X-Request-ID.
    "storefront.ops.request_id.RequestIdMiddleware",
    # Then: /metrics (before host validation, like the probes) and per-request metrics.
    "storefront.ops.metrics_middleware.MetricsMiddleware",
    # /healthz and /readyz answer before host validation and the HTTPS redirect (see there).
    "storefront.ops.middleware.HealthProbeMiddleware",
    "storefront.ops.middleware.ProxyClientAddressMiddleware",
    # Which reads may go to a read replica, and the pin after a write (storefront/db_router.py).
    "storefront.db_router.ReplicaReadsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Above CachedPageMiddleware, so the pages it answers carry X-Frame-Options too.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Serves hashed static files when no nginx sits in front (embedded mode, Docker without proxy).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A cached page for a request without cookies, before sessions, CSRF, auth and messages
    # (storefront/cache_pages.py): they have nothing to do for it.
    "storefront.cache_pages.CachedPageMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Answers a request axes flagged as locked out with 429 (storefront/accounts/lockout.py).
    "axes.middleware.AxesMiddleware",
    # Last: body-less 4xx get the site's error page, /api/ errors JSON (storefront/error_pages.py).
    "storefront.error_pages.ErrorPageMiddleware",
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
                # Last: inside a cached anonymous page, {% csrf_token %} renders a placeholder.
                "storefront.cache_pages.csrf_placeholder",
            ],
            # {% load links %}: {% url %} and {% static %} remembered per process.
            "libraries": {"links": "storefront.template_links"},
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

# Scale-out (docs/scaling.md). What a connection through PgBouncer's transaction pooling must
# not rely on: state kept in the server session between transactions. Django's server-side
# cursors (QuerySet.iterator()) are named cursors that outlive the transaction's statement, and
# psycopg prepares a statement after 5 runs on a connection (PgBouncer 1.18, Debian 12's, cannot
# track prepared statements); both off. Session advisory locks use DATABASE_DIRECT_URL.
_POOLED_SAFE = {"DISABLE_SERVER_SIDE_CURSORS": True, "OPTIONS": {"prepare_threshold": None}}
# PGBOUNCER_URL: the app's queries go through PgBouncer (pool_mode = transaction), e.g.
# postgres://storefront@127.0.0.1:6432/storefront. DATABASE_URL then names the primary itself,
# used only for what needs a session of its own (the CSV import's advisory lock, a plain
# psycopg connection: not an alias, so tests need not declare it).
PGBOUNCER_URL = env.str("PGBOUNCER_URL", default="")
DATABASE_DIRECT_URL = DATABASE_URL if PGBOUNCER_URL else ""
if PGBOUNCER_URL:
    DATABASES["default"] = {
        **env.db_url_config(PGBOUNCER_URL),
        "CONN_MAX_AGE": DATABASES["default"]["CONN_MAX_AGE"],
        "CONN_HEALTH_CHECKS": True,
        **_POOLED_SAFE,
    }
# DATABASE_REPLICA_URLS: streaming replicas (comma separated) for catalog and dashboard reads;
# storefront/db_router.py sends every write, and every read of a visitor who wrote in the last
# DATABASE_REPLICA_PIN_SECONDS, to the primary; a replica that does not answer is skipped for
# DATABASE_REPLICA_RETRY_SECONDS. The replicas may be behind a PgBouncer too (hence pooled-safe).
DATABASE_REPLICA_URLS = env.list("DATABASE_REPLICA_URLS", default=[])
DATABASE_REPLICAS = [f"replica_{i}" for i in range(len(DATABASE_REPLICA_URLS))]
for _alias, _url in zip(DATABASE_REPLICAS, DATABASE_REPLICA_URLS, strict=True):
    DATABASES[_alias] = {
        **env.db_url_config(_url),
        "CONN_MAX_AGE": DATABASES["default"]["CONN_MAX_AGE"],
        "CONN_HEALTH_CHECKS": True,  # a replica that died is found at the request's first read
        **_POOLED_SAFE,
        # Never built as a test database: tests name the replica's real database.
        "TEST": {"MIRROR": "default"},
    }
    DATABASES[_alias]["OPTIONS"] = {**DATABASES[_alias]["OPTIONS"], "connect_timeout": 2}
# Seconds after a visitor's write (any POST, PUT, PATCH, DELETE) during which their reads skip
# the replicas: longer than the replication lag you expect, so nobody misses their own order.
DATABASE_REPLICA_PIN_SECONDS = env.int("DATABASE_REPLICA_PIN_SECONDS", default=5)
# Seconds a replica that refused a connection is left out before it is tried again.
DATABASE_REPLICA_RETRY_SECONDS = env.float("DATABASE_REPLICA_RETRY_SECONDS", default=10.0)
DATABASE_ROUTERS = ["storefront.db_router.ReplicaRouter"] if DATABASE_REPLICAS else []

# Cache: Redis when REDIS_URL (or REDIS_CACHE_URL) is set, otherwise a file cache shared by every
# worker process. Two Redis roles, because the eviction policy (maxmemory-policy) belongs to a
# whole server, not to a database number (/0 and /1 of one server share one policy and limit):
# - REDIS_URL, durable: sessions (the "sessions" alias) and the Celery broker. Run it with
#   `--maxmemory-policy noeviction` and persistence: nothing there may ever be dropped.
# - REDIS_CACHE_URL, evicting: the "default" alias (pages, fragments, query results, all
#   rebuildable). Run it with `--maxmemory 256mb --maxmemory-policy allkeys-lru --save ""`:
#   a flood of cache entries then evicts old entries instead of growing without bound or
#   pushing out sessions and queued tasks. Default REDIS_URL: one server for both (fine for a
#   trial; `make run` starts a separate cache server when redis-server is installed).
# Redis errors are swallowed and logged (django-redis IGNORE_EXCEPTIONS) for every alias (except
# a cache-only session store, see Sessions): a Redis outage makes pages slower (every lookup
# misses), never broken. Short socket timeouts bound the wait when Redis hangs instead of
# refusing connections.
REDIS_URL = env.str("REDIS_URL", default="")
REDIS_CACHE_URL = env.str("REDIS_CACHE_URL", default=REDIS_URL)
# Redis Sentinel (docs/redis-failover.md): "host:port,host:port" of the sentinels watching
# master REDIS_SENTINEL_MASTER; empty = no Sentinel, REDIS_URL names the server itself. When set,
# cache, sessions and the Celery broker all go to the master the sentinels name, and a failover
# moves them: REDIS_URL and REDIS_CACHE_URL (optional then) only give the database number and
# password, their host becomes the master's name (redis://<master>/<db>, what django-redis's
# Sentinel support reads). REDIS_SENTINEL_PASSWORD: the sentinels' own (requirepass).
REDIS_SENTINELS = redis_sentinel.parse_sentinels(env.str("REDIS_SENTINELS", default=""))
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="storefront")
REDIS_SENTINEL_PASSWORD = env.str("REDIS_SENTINEL_PASSWORD", default="")
# The broker's URL before the translation (its database number and password), see Celery.
_REDIS_BROKER_BASE_URL = REDIS_URL
if REDIS_SENTINELS:
    REDIS_URL = redis_sentinel.cache_location(REDIS_URL, REDIS_SENTINEL_MASTER)
    REDIS_CACHE_URL = redis_sentinel.cache_location(REDIS_CACHE_URL, REDIS_SENTINEL_MASTER)
# Seconds a cache connect or read may take. A healthy Redis on the same network answers in well
# under a millisecond; a hung one costs this much once per process (then the breaker), plus the
# queue that piled up meanwhile: 0.25 s keeps every page under 1 s with Redis frozen
# (make faults, redis_hung), where 0.5 s measured 0.56-0.88 s and went past 1 s on a busy host.
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=0.25)
# memcached://host:port (comma separated for a pool): enables the "memcached" cache alias.
MEMCACHED_URL = env.str("MEMCACHED_URL", default="")
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
DJANGO_REDIS_LOGGER = "storefront.cache"


# After a Redis failure, cache connections fail at once for this many seconds (one trial then):
# a down or hung Redis costs one timeout per period per process (storefront/redis_breaker.py).
REDIS_BREAKER_COOLDOWN = env.float("REDIS_BREAKER_COOLDOWN", default=5.0)


def _redis_cache(url: str, key_prefix: str) -> dict:
    # Aliases on one server are kept apart by prefix.
    config = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": key_prefix,
        "OPTIONS": {
            "PARSER_CLASS": "redis.connection._HiredisParser",
            "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "IGNORE_EXCEPTIONS": True,
            "CONNECTION_POOL_KWARGS": {
                "connection_class": BreakerUnixConnection
                if url.startswith("unix:")
                else BreakerConnection
            },
        },
    }
    if REDIS_SENTINELS:
        # django-redis's Sentinel support: LOCATION redis://<master name>/<db>, each connection
        # asks the sentinels for the master's address. The default client, not SentinelClient:
        # that one reads from replicas, and a session or cache entry read right after its write
        # (or its invalidation) must come from the master.
        config["OPTIONS"].update(
            CONNECTION_FACTORY="django_redis.pool.SentinelConnectionFactory",
            SENTINELS=REDIS_SENTINELS,
            SENTINEL_KWARGS=redis_sentinel.sentinel_kwargs(
                REDIS_SENTINEL_PASSWORD, REDIS_SOCKET_TIMEOUT
            ),
            CONNECTION_POOL_KWARGS={"connection_class": BreakerSentinelConnection},
        )
    return config


def _file_cache(key_prefix: str, directory: str) -> dict:
    return {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        # File names are hashes of the full key (prefix included): prefixes can share it.
        "LOCATION": str(VAR_DIR / "cache" / directory),
        "KEY_PREFIX": key_prefix,
        "OPTIONS": {"MAX_ENTRIES": 20000},
    }


# Prefix of every cache key (sessions: with "s" appended); lets deployments share one Redis.
CACHE_KEY_PREFIX = env.str("STOREFRONT_CACHE_KEY_PREFIX", default="sf")


def _cache(url: str, key_prefix: str, directory: str) -> dict:
    return _redis_cache(url, key_prefix) if url else _file_cache(key_prefix, directory)


CACHES = {
    # Pages, fragments and query results (storefront/caching.py owns the keys): evictable.
    "default": _cache(REDIS_CACHE_URL, CACHE_KEY_PREFIX, "data"),
    # Session data (SESSION_CACHE_ALIAS), on the durable Redis; own prefix, so clearing the
    # data cache logs no one out even when both share a server.
    "sessions": _cache(REDIS_URL, f"{CACHE_KEY_PREFIX}s", "sessions"),
}
if MEMCACHED_URL:
    CACHES["memcached"] = {
        "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
        "LOCATION": [
            loc.strip().removeprefix("memcached://").removeprefix("pymemcache://")
            for loc in MEMCACHED_URL.split(",")
            if loc.strip()
        ],
        "KEY_PREFIX": CACHE_KEY_PREFIX,
        "OPTIONS": {
            "connect_timeout": REDIS_SOCKET_TIMEOUT,
            "timeout": REDIS_SOCKET_TIMEOUT,
            "no_delay": True,
            # Like IGNORE_EXCEPTIONS for Redis: a memcached outage reads as a miss.
            "ignore_exc": True,
        },
    }

# What the cache layer keeps and for how long (seconds). See docs/caching.md.
# Global cache version: bump it (e.g. to the release id) to invalidate every cached entry at once.
STOREFRONT_CACHE_VERSION = env.str("STOREFRONT_CACHE_VERSION", default="1")
# Anonymous product listing and product pages.
STOREFRONT_CACHE_TTL_PAGES = env.int("STOREFRONT_CACHE_TTL_PAGES", default=300)
# The login page (its CSRF token is filled in per request).
STOREFRONT_CACHE_TTL_LOGIN = env.int("STOREFRONT_CACHE_TTL_LOGIN", default=3600)
# A customer's dashboard, per user (invalidated when that customer orders).
STOREFRONT_CACHE_TTL_DASHBOARD = env.int("STOREFRONT_CACHE_TTL_DASHBOARD", default=600)
# Staff dashboard fragments: also the length of their time buckets (figures at most this stale).
STOREFRONT_CACHE_TTL_STAFF = env.int("STOREFRONT_CACHE_TTL_STAFF", default=60)
# Query results: product detail and the category tree.
STOREFRONT_CACHE_TTL_QUERIES = env.int("STOREFRONT_CACHE_TTL_QUERIES", default=3600)

# Sessions: cached_db (Redis/file cache in front of the database: survives a cache restart),
# cache (Redis only: fastest, a Redis restart logs everyone out), memcached (memcached only,
# needs MEMCACHED_URL), db (database only).
STOREFRONT_SESSION_STORE = env.str("STOREFRONT_SESSION_STORE", default="cached_db")
_SESSION_ENGINES = {
    "cached_db": ("django.contrib.sessions.backends.cached_db", "sessions"),
    "cache": ("django.contrib.sessions.backends.cache", "sessions"),
    "memcached": ("django.contrib.sessions.backends.cache", "memcached"),
    "db": ("django.contrib.sessions.backends.db", "sessions"),
}
if STOREFRONT_SESSION_STORE not in _SESSION_ENGINES:
    raise environ.ImproperlyConfigured(
        "STOREFRONT_SESSION_STORE must be one of "
        f"{', '.join(_SESSION_ENGINES)}, not {STOREFRONT_SESSION_STORE!r}"
    )
if STOREFRONT_SESSION_STORE == "memcached" and not MEMCACHED_URL:
    raise environ.ImproperlyConfigured("STOREFRONT_SESSION_STORE=memcached needs MEMCACHED_URL")
SESSION_ENGINE, SESSION_CACHE_ALIAS = _SESSION_ENGINES[STOREFRONT_SESSION_STORE]
# A cache-only store must raise its errors, not swallow them: Django's cache session backend
# reads a silently failed write as a key collision and retries 10,000 times before its 500
# (seconds against a stopped server, hours against a hung one, every worker stuck meanwhile).
# Raising fails login and cart changes at once during an outage; reading a session still
# tolerates one (a read error is "no session": the visitor is anonymous, logout still works).
if STOREFRONT_SESSION_STORE == "cache" and REDIS_URL:
    CACHES["sessions"]["OPTIONS"]["IGNORE_EXCEPTIONS"] = False
elif STOREFRONT_SESSION_STORE == "memcached":
    CACHES["memcached"]["OPTIONS"]["ignore_exc"] = False
# Two weeks, renewed on activity only when the session changes (Django's default behaviour).
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=1209600)

# Header naming the client address, set by our nginx (X-Real-IP); empty = use the socket peer.
# Set it only when the app is reachable through nginx alone.
STOREFRONT_PROXY_CLIENT_IP_HEADER = env.str("STOREFRONT_PROXY_CLIENT_IP_HEADER", default="")
# /metrics (storefront/ops/metrics_view.py): besides local clients, answered to requests with
# "Authorization: Bearer <token>". Empty: local clients only.
STOREFRONT_METRICS_TOKEN = env.str("STOREFRONT_METRICS_TOKEN", default="")
# Prometheus metrics (docs/monitoring.md): a root directory shared by every Storefront process
# of the host, one subdirectory per process group (storefront/ops/metrics_dirs.py). Tests: a
# fresh root per test process (their Celery worker is handed it).
STOREFRONT_METRICS_DIR = env.str(
    "STOREFRONT_METRICS_DIR",
    default=(
        tempfile.mkdtemp(prefix="storefront-metrics-")
        if STOREFRONT_ENV == "test"
        else str(metrics_root(VAR_DIR))
    ),
)
if STOREFRONT_ENV == "test" and "STOREFRONT_METRICS_DIR" not in os.environ:
    atexit.register(shutil.rmtree, STOREFRONT_METRICS_DIR, ignore_errors=True)
# This process's group directory, exported as PROMETHEUS_MULTIPROC_DIR before prometheus_client
# is imported (it picks multiprocess mode then). Gunicorn's master and Celery's worker_init
# switch to their own group (and empty it) before any metric is written. A PROMETHEUS_MULTIPROC_DIR
# given by the environment (a parent process's, or prometheus-client's own convention) is used
# as it is: whoever set it owns emptying it.
PROMETHEUS_MULTIPROC_DIR_GIVEN = bool(given_multiproc_dir())
if PROMETHEUS_MULTIPROC_DIR_GIVEN:
    PROMETHEUS_MULTIPROC_DIR = given_multiproc_dir()
    os.makedirs(PROMETHEUS_MULTIPROC_DIR, exist_ok=True)
else:
    PROMETHEUS_MULTIPROC_DIR = str(
        use_group_dir(Path(STOREFRONT_METRICS_DIR), group_name("web"), wipe=False)
    )
# The app is reachable only through our TLS-terminating nginx, which overwrites
# X-Forwarded-Proto: only then is that header believed (SECURE_PROXY_SSL_HEADER), or anyone
# reaching gunicorn directly could claim HTTPS. `make run` (with nginx), compose and systemd set
# it; on by default when the client-address header is configured (the same promise).
STOREFRONT_BEHIND_PROXY = env.bool(
    "STOREFRONT_BEHIND_PROXY", default=bool(STOREFRONT_PROXY_CLIENT_IP_HEADER)
)

# Celery broker (Redis by default, amqp:// for RabbitMQ); /readyz pings it. Empty: no broker,
# tasks run in-process right after the transaction commits (embedded mode). With
# REDIS_SENTINELS: sentinel://h1:p1/<db>;sentinel://h2:p2/<db> (kombu asks them for the master;
# database number and password from REDIS_URL), unless CELERY_BROKER_URL says otherwise.
STOREFRONT_BROKER_URL = env.str(
    "CELERY_BROKER_URL",
    default=redis_sentinel.broker_url(REDIS_SENTINELS, _REDIS_BROKER_BASE_URL)
    if REDIS_SENTINELS
    else REDIS_URL,
)
CELERY_BROKER_URL = STOREFRONT_BROKER_URL or "memory://"
# Run tasks in the calling process instead of a worker. On without a broker, and in the tests
# (which start a real worker where they need one).
CELERY_TASK_ALWAYS_EAGER = env.bool(
    "CELERY_TASK_ALWAYS_EAGER", default=not STOREFRONT_BROKER_URL or STOREFRONT_ENV == "test"
)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# Task state lives in our own tables (import jobs, email deliveries), not in a result backend.
CELERY_TASK_IGNORE_RESULT = True
# Queue name: lets several checkouts (or test runs) share one broker without stealing tasks.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="storefront")
# Acknowledge after the task ran, and redeliver when the worker died mid-task: every task is
# idempotent (see storefront/*/tasks.py), so running one twice is safe; losing one is not.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis redelivers an unacknowledged task after this many seconds: longer than any countdown or
# retry backoff (at most 10 minutes) and any time limit, or a delayed task would run twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
}
if redis_sentinel.is_sentinel_url(STOREFRONT_BROKER_URL):
    # kombu's Sentinel transport: which master to ask the sentinels for, and how to reach them.
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        master_name=REDIS_SENTINEL_MASTER,
        sentinel_kwargs=redis_sentinel.sentinel_kwargs(REDIS_SENTINEL_PASSWORD, 1.0),
    )
# Soft limit raises SoftTimeLimitExceeded inside the task (it can clean up); hard limit kills it.
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=660)
CELERY_WORKER_MAX_TASKS_PER_CHILD = 1000  # recycle worker processes against slow leaks
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = env.str("TIME_ZONE", default="UTC")
# Beat's schedule state file (celery beat -s), under var/.
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Periodic tasks run by `celery beat` (one beat per deployment), in TIME_ZONE.
CELERY_BEAT_SCHEDULE = {
    "refresh-daily-sales": {
        # Reconciles the denormalized sales tables with the orders (kept current on commit).
        "task": "storefront.dashboards.tasks.refresh_daily_sales",
        "schedule": crontab(hour=2, minute=30),
    },
    "resend-owed-confirmations": {
        # The checkout's outbox: confirmations whose task was lost are queued again.
        "task": "storefront.orders.tasks.resend_owed_confirmations",
        "schedule": crontab(minute="*/10"),
    },
    "clear-expired-sessions": {
        "task": "storefront.ops.tasks.clear_expired_sessions",
        "schedule": crontab(hour=3, minute=15),
    },
    "sample-metrics": {
        # The operations page's minute samples (storefront/ops/sampling.py); also prunes them.
        "task": "storefront.ops.tasks.sample_metrics",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
}

# Outgoing email: smtp://user:password@host:port (smtp+tls://, smtp+ssl://), consolemail://.
EMAIL_CONFIG = env.email_url(
    "EMAIL_URL", default="smtp://127.0.0.1:25" if IS_PRODUCTION else "consolemail://"
)
globals().update(EMAIL_CONFIG)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
# The longest wait between two tries of an email task after an SMTP error (seconds; the wait
# doubles from 1 s with full jitter up to this cap): how late an email can arrive after the SMTP
# server returns from an outage.
EMAIL_RETRY_BACKOFF_MAX = env.int("EMAIL_RETRY_BACKOFF_MAX", default=600)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Storefront <shop@storefront.test>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Absolute base of links in emails sent without a request (order confirmation, by Celery), no
# trailing slash. `make run` sets it to the address it serves; production defaults to HTTPS on
# the first ALLOWED_HOSTS name. (Emails sent during a request, such as password reset, use the
# scheme, host and port of that request.)
STOREFRONT_SITE_URL = env.str(
    "STOREFRONT_SITE_URL",
    default=f"https://{ALLOWED_HOSTS[0]}" if IS_PRODUCTION else "http://127.0.0.1:8000",
).rstrip("/")
# Who gets low-stock alerts (comma separated); empty: every active staff user with an email.
STOREFRONT_STAFF_ALERT_EMAILS = env.list("STOREFRONT_STAFF_ALERT_EMAILS", default=[])

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "dashboards:customer"
LOGOUT_REDIRECT_URL = "catalog:home"
# axes first: it refuses a locked-out client before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# Login lockout (django-axes; storefront/accounts/lockout.py). Every login surface counts: the
# site's and the admin's login, /api/auth/token/, and each password-reset request. Failures are
# kept in the database (survive restarts); staff unlock in the admin (Axes > Access attempts) or
# with `storefront axes_reset_username NAME` / `axes_reset_ip ADDRESS` / `axes_reset`.
# Failures for one account from one address before that pair is locked out.
AXES_FAILURE_LIMIT = env.int("STOREFRONT_LOCKOUT_FAILURES", default=5)
# Failures from one address, whatever the accounts, before the address is locked out (higher:
# an office or a mobile carrier puts many people behind one address).
STOREFRONT_LOCKOUT_ADDRESS_FAILURES = env.int("STOREFRONT_LOCKOUT_ADDRESS_FAILURES", default=20)
# Minutes a lockout lasts after the latest failure (an attempt while locked out restarts it).
STOREFRONT_LOCKOUT_MINUTES = env.int("STOREFRONT_LOCKOUT_MINUTES", default=15)
if min(STOREFRONT_LOCKOUT_MINUTES, AXES_FAILURE_LIMIT, STOREFRONT_LOCKOUT_ADDRESS_FAILURES) < 1:
    raise environ.ImproperlyConfigured(
        "STOREFRONT_LOCKOUT_MINUTES, STOREFRONT_LOCKOUT_FAILURES and "
        "STOREFRONT_LOCKOUT_ADDRESS_FAILURES must be at least 1"
    )
AXES_COOLOFF_TIME = timedelta(minutes=STOREFRONT_LOCKOUT_MINUTES)
# Per account+address pair, and per address: nobody can lock a customer out from elsewhere, and
# one address cannot try many accounts. (No per-account lock: anyone could lock anyone out.)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_HANDLER = "storefront.accounts.lockout.TieredLimitDatabaseHandler"
# The address ProxyClientAddressMiddleware resolved, never a client-sent X-Forwarded-For.
AXES_CLIENT_IP_CALLABLE = "storefront.accounts.lockout.client_address"
AXES_LOCKOUT_CALLABLE = "storefront.accounts.lockout.lockout_response"
# A successful login keeps the failures: it would otherwise clear its whole address's count.
AXES_RESET_ON_SUCCESS = False
# Failed attempts are recorded; successful logins are not (Django's last_login has them).
AXES_DISABLE_ACCESS_LOG = True

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

# Files only staff may download (order exports): never under MEDIA_ROOT, which nginx serves.
PRIVATE_MEDIA_ROOT = Path(env.str("PRIVATE_MEDIA_ROOT", default=str(VAR_DIR / "private")))

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
        # django-rest-knox tokens, one query per request (storefront/accounts/authentication.py).
        "storefront.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    # The browsable API's inline styles break nginx's CSP (style-src 'self'): DJANGO_DEBUG only.
    # Elsewhere a browser gets JSON, even for Accept: text/html; /api/docs/ documents the API.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "storefront.api_negotiation.FirstRendererWhenNoneAccepted",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "storefront.api.exception_handler",
}
# API tokens (django-rest-knox): hours a token from /api/auth/token/ works; stored hashed.
STOREFRONT_API_TOKEN_TTL_HOURS = env.int("STOREFRONT_API_TOKEN_TTL_HOURS", default=24 * 30)
if STOREFRONT_API_TOKEN_TTL_HOURS < 1:
    raise environ.ImproperlyConfigured("STOREFRONT_API_TOKEN_TTL_HOURS must be at least 1")
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=STOREFRONT_API_TOKEN_TTL_HOURS),
    "AUTH_HEADER_PREFIX": "Token",  # the header API clients already send
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
    # The enum names drf-spectacular picks, then the 401/403/429 every operation can answer.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "storefront.api_schema.add_common_error_responses",
    ],
}

# Secure defaults in production. X-Forwarded-Proto is trusted only behind our nginx.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if STOREFRONT_BEHIND_PROXY else None
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=IS_PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=IS_PRODUCTION)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=IS_PRODUCTION)
# HSTS max-age in seconds, sent over HTTPS only (one year; 0 disables). nginx sends the same
# value (scripts/render_nginx.py and compose render it as NGINX_HSTS_MAX_AGE from this variable).
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=IS_PRODUCTION)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# json: one JSON object per log line (Django, gunicorn, Celery), for Loki or ELK; text: readable
# lines for a terminal. Each line has the request id (and user id) of its request or task.
try:
    LOG_FORMAT = log_format_from_environ(env.ENVIRON)
except ValueError as exc:
    raise environ.ImproperlyConfigured(str(exc)) from None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # storefront/ops/log_format.py; fields and shipping in docs/logging.md.
    "formatters": {
        "plain": {"()": "storefront.ops.log_format.formatter", "log_format": LOG_FORMAT}
    },
    "filters": {
        # Cache outages: one line per error kind every 30 s instead of a traceback per call.
        "throttled": {"()": "storefront.ops.logging.ThrottledErrorFilter", "interval": 30.0}
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "console_throttled": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["throttled"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Failed logins and lockouts are warnings; every successful login would be an info line.
        "axes": {"level": "WARNING"},
        "storefront.cache": {"handlers": ["console_throttled"], "propagate": False},
    },
}

if STOREFRONT_ENV == "test":
    # Fast hashing and plain static storage keep the suite quick and independent of collectstatic.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"

# Errors to Sentry when SENTRY_DSN is set (storefront/ops/errors.py; release STOREFRONT_RELEASE,
# environment SENTRY_ENVIRONMENT or STOREFRONT_ENV, SENTRY_TRACES_SAMPLE_RATE default 0).
SENTRY_OPTIONS = init_error_reporting(env.ENVIRON, storefront_env=STOREFRONT_ENV)

# Profilers (docs/profiling.md), development only: refused when STOREFRONT_ENV=production.
# django-debug-toolbar on pages from this machine; needs DJANGO_DEBUG=true.
STOREFRONT_PROFILING = env.bool("STOREFRONT_PROFILING", default=False)
# django-silk: records a sample of requests with their SQL; staff read them at /silk/.
STOREFRONT_SILK = env.bool("STOREFRONT_SILK", default=False)
# Percentage of requests silk records (sampling).
STOREFRONT_SILK_PERCENT = env.float("STOREFRONT_SILK_PERCENT", default=10.0)
# Silk keeps at most this many requests, and none older than STOREFRONT_SILK_MAX_AGE_HOURS.
STOREFRONT_SILK_MAX_REQUESTS = env.int("STOREFRONT_SILK_MAX_REQUESTS", default=10000)
STOREFRONT_SILK_MAX_AGE_HOURS = env.int("STOREFRONT_SILK_MAX_AGE_HOURS", default=24)
_profiling = profiling_setup(
    is_production=IS_PRODUCTION,
    debug=DEBUG,
    toolbar_flag=STOREFRONT_PROFILING,
    silk_flag=STOREFRONT_SILK,
    silk_percent=STOREFRONT_SILK_PERCENT,
    silk_max_requests=STOREFRONT_SILK_MAX_REQUESTS,
)
STOREFRONT_TOOLBAR_ON = _profiling.toolbar
STOREFRONT_SILK_ON = _profiling.silk
INSTALLED_APPS += _profiling.installed_apps
for _middleware, _after in _profiling.middleware:
    MIDDLEWARE.insert(MIDDLEWARE.index(_after) + 1, _middleware)
globals().update(_profiling.settings)
if STOREFRONT_SILK_ON:
    CELERY_BEAT_SCHEDULE["prune-silk"] = {
        "task": "storefront.ops.tasks.prune_silk",
        "schedule": crontab(minute=5),
    }
