"""One way to start Storefront's servers, for the tests, `make bench`, `make loadtest` and
`make security`: throwaway PostgreSQL databases, gunicorn, runserver, nginx, Redis, memcached,
an SMTP sink and `make run`'s own script, each on free loopback ports with isolated state.

Not part of the storefront package (not installed with it): the tests import it from the
repository root (pytest puts the root conftest's directory on sys.path), the scripts put the
repository root on sys.path themselves.

    processes.py      free ports, bounded waits, the registry that stops every process
    postgres.py       throwaway databases
    app.py            the app's environment, management commands, gunicorn, runserver
    nginx.py          deploy/nginx rendered and started, with the dev certificate
    http.py           fetch() and a cookie-keeping Client (TLS without verification)
    cache_servers.py  private redis-server / memcached / a black-hole port (tests)
    smtp.py           a real SMTP sink (aiosmtpd)
    served.py         scripts/run.sh (`make run`) as a whole stack

A missing binary or service raises `Unavailable`: tests skip (root conftest.py), scripts stop
with its message. The core API is importable from `harness` itself; cache_servers, smtp and
served (which need test-only packages) are imported from their modules.
"""

from harness.app import (
    ISOLATED_VARIABLES,
    Server,
    app_env,
    isolated_environ,
    redis_available,
    redis_delete_prefix,
    seed,
    serve_gunicorn,
    start_gunicorn,
    start_runserver,
    storefront_command,
)
from harness.http import Client, fetch
from harness.nginx import Nginx, make_dev_cert, render_nginx, start_nginx
from harness.postgres import Database
from harness.processes import (
    HOST,
    PROCESSES,
    PYTHON,
    REPO_ROOT,
    Unavailable,
    free_port,
    log,
    require_binary,
    run,
    stop_process,
    temp_dir,
    wait_http,
)

__all__ = [
    "HOST",
    "ISOLATED_VARIABLES",
    "PROCESSES",
    "PYTHON",
    "REPO_ROOT",
    "Client",
    "Database",
    "Nginx",
    "Server",
    "Unavailable",
    "app_env",
    "fetch",
    "free_port",
    "isolated_environ",
    "log",
    "make_dev_cert",
    "redis_available",
    "redis_delete_prefix",
    "render_nginx",
    "require_binary",
    "run",
    "seed",
    "serve_gunicorn",
    "start_gunicorn",
    "start_nginx",
    "start_runserver",
    "stop_process",
    "storefront_command",
    "temp_dir",
    "wait_http",
]
