"""Gunicorn configuration: every value comes from a GUNICORN_* environment variable.

Used by `make run`, the stack tests and (later) the Docker and systemd deployments alike:

    gunicorn -c deploy/gunicorn.conf.py storefront.wsgi

The defaults suit one machine serving Storefront directly; docs/configuration.md lists each
variable. A variable that is set but empty counts as unset.
"""

from __future__ import annotations

import multiprocessing
import os


def _env_str(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {raw!r}") from None


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if not raw:
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise SystemExit(f"{name} must be true or false, not {raw!r}")


# --- Server socket -------------------------------------------------------------------------

# A unix socket behind nginx by default (no TCP port to expose or firewall, and a little
# faster than loopback TCP); "host:port" binds TCP instead (containers: 0.0.0.0:8000).
# Under systemd socket activation the socket handed over (LISTEN_FDS) replaces this.
_var_dir = os.environ.get("STOREFRONT_VAR_DIR") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "var"
)
bind = [_env_str("GUNICORN_BIND", f"unix:{_var_dir}/run/gunicorn.sock")]
for _address in bind:
    if _address.startswith("unix:"):
        os.makedirs(os.path.dirname(_address[len("unix:") :]), exist_ok=True)
# Connections the kernel queues while every worker is busy (gunicorn's own default).
backlog = _env_int("GUNICORN_BACKLOG", 2048)

# --- Workers -------------------------------------------------------------------------------

# One per core: measured best here (make bench's worker sweep, bench/REPORT.md), where nginx,
# PostgreSQL and Redis share the cores. The usual 2 x cores + 1 lost 11-23 % on the uncached
# listing to context switches; with the database on other machines (more time waiting per
# request) more workers can pay: measure with the sweep and set GUNICORN_WORKERS.
workers = _env_int("GUNICORN_WORKERS", multiprocessing.cpu_count())
# sync workers are the simplest and fastest for short requests behind a buffering proxy.
worker_class = _env_str("GUNICORN_WORKER_CLASS", "sync")
# Threads per worker; only the gthread worker uses more than one.
threads = _env_int("GUNICORN_THREADS", 1)
# Seconds a worker may stay silent before it is killed and replaced (a stuck request). nginx's
# proxy_read_timeout (25 s, deploy/nginx) stays below it, so the visitor gets the 504 page;
# keep it so when raising this.
timeout = _env_int("GUNICORN_TIMEOUT", 30)
# Seconds in-flight requests get to finish on reload or shutdown before workers are killed.
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Seconds an idle keep-alive connection is held open (gthread/gevent; sync workers close
# after each response). Longer than nginx's upstream keepalive_timeout (60 s), so gunicorn
# never closes a connection at the moment nginx reuses it (which would turn into a 502).
keepalive = _env_int("GUNICORN_KEEPALIVE", 75)
# Recycle each worker after this many requests so slow leaks never grow without bound.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 1000)
# Random extra requests per worker so the workers do not all restart at the same moment.
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 100)
# Load Django once in the master: faster worker start, shared memory pages, and an import
# error stops the server at start instead of crash-looping workers. Not with gevent: its
# monkey-patching happens in each worker after the fork, so objects Django made in the master
# (thread-locals of the database connections) belong to the wrong "thread" and every request
# fails; gevent workers load the app themselves (and want DATABASE_CONN_MAX_AGE=0: one
# persistent connection per greenlet would exhaust PostgreSQL's).
preload_app = _env_bool("GUNICORN_PRELOAD", worker_class != "gevent")
# The worker heartbeat file lives in RAM: on a disk-backed /tmp its fchmod can block workers.
_RAM_DIR = "/dev/shm"  # noqa: S108 - gunicorn creates its heartbeat file there with mkstemp
if os.path.isdir(_RAM_DIR):
    worker_tmp_dir = _RAM_DIR

# --- Control socket ------------------------------------------------------------------------

# Gunicorn's default control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl), shared
# by every instance that user starts: it is off unless a per-instance path is given.
_control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
if _control_socket:
    control_socket = _control_socket
else:
    control_socket_disable = True

# --- Proxy headers -------------------------------------------------------------------------

# gunicorn would set the request's scheme from X-Forwarded-Proto (and friends) for any client on
# loopback or a unix socket (forwarded_allow_ips), whatever Django is told: gunicorn alone on
# 127.0.0.1 would let a local client claim HTTPS. Django decides instead, from its own
# SECURE_PROXY_SSL_HEADER, set only with STOREFRONT_BEHIND_PROXY (nginx in front).
secure_scheme_headers: dict[str, str] = {}
forwarded_allow_ips = ""


# --- Logging -------------------------------------------------------------------------------

# Access log to stdout ("-"), so the process manager or container runtime collects it.
accesslog = _env_str("GUNICORN_ACCESSLOG", "-")
# LOG_FORMAT=json (the default with STOREFRONT_ENV=production): access and error logs are JSON
# lines like the app's, fields in docs/logging.md (storefront/ops/gunicorn_logging.py).
# LOG_FORMAT=text (`make run`): gunicorn's own formats, the access line as below.
logger_class = "storefront.ops.gunicorn_logging.StorefrontLogger"
# Text access lines: combined log format plus the response time in ms, the request id Django
# answered with (the proxy's X-Request-ID when well-formed) and the signed-in user's id.
access_log_format = _env_str(
    "GUNICORN_ACCESS_LOG_FORMAT",
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'
    " rid=%({x-request-id}o)s uid=%({storefront.user_id}e)s",
)
# Errors and gunicorn's own messages to stderr, for the same reason.
errorlog = _env_str("GUNICORN_ERRORLOG", "-")
# info shows start, stop and worker recycling without per-request noise.
loglevel = _env_str("GUNICORN_LOGLEVEL", "info")


# --- Metrics -------------------------------------------------------------------------------


def on_starting(server: object) -> None:
    """The master, before forking workers: this instance's own metrics directory, emptied (its
    counters start over; other instances' and Celery workers' files are left alone)."""
    from storefront.ops.metrics_dirs import group_name, metrics_root, use_group_dir

    use_group_dir(metrics_root(), group_name("web"), wipe=True)


def child_exit(server: object, worker: object) -> None:
    """A worker exited (recycled by max_requests, killed, stopped): its live gauges (memory,
    CPU) leave /metrics; its counters and histograms stay (docs/monitoring.md)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
