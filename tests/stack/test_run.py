"""`make run` (scripts/run.sh) end to end: it prepares, serves, prints the logins, and Ctrl-C
stops every process it started. Runs on the embedded defaults (SQLite, file cache) in a
temporary var directory, on a free port instead of 8000."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import skip_or_fail
from harness import REPO_ROOT, free_port, isolated_environ
from harness.served import RunScript
from storefront.seeding import DEMO_CUSTOMER, DEMO_STAFF

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("make-run")]

VENV = Path(sys.prefix)


@pytest.fixture
def run_env(tmp_path: Path) -> dict[str, str]:
    if not (VENV / "bin" / "gunicorn").exists() or sys.prefix == sys.base_prefix:
        skip_or_fail("run.sh needs the tests to run from the project's virtualenv")
    env = isolated_environ("GUNICORN_")
    env.update(
        VENV=str(VENV),
        STOREFRONT_ENV="dev",
        STOREFRONT_VAR_DIR=str(tmp_path / "var"),
        GUNICORN_BIND=f"127.0.0.1:{free_port()}",
        GUNICORN_WORKERS="2",
        GUNICORN_GRACEFUL_TIMEOUT="5",
        PYTHONUNBUFFERED="1",
    )
    return env


def test_run_serves_prints_logins_and_stops_on_ctrl_c(run_env: dict[str, str]) -> None:
    base = f"http://{run_env['GUNICORN_BIND']}"

    first = RunScript(run_env)
    first.wait_until_serving(f"{base}/", timeout=600)
    with urllib.request.urlopen(f"{base}/products/", timeout=10) as response:
        assert response.status == 200
        assert b'class="product-card"' in response.read(), "the demo data was not seeded"
    for expected in [
        f"{base}/",
        f"{base}/staff/dashboard/",
        f"{base}/staff/ops/",
        f"{base}/admin/",
        f"{base}/api/docs/",
        *DEMO_CUSTOMER,
        *DEMO_STAFF,
    ]:
        assert expected in first.text, f"{expected!r} missing from the banner:\n{first.text}"
    status = first.interrupt()
    assert status == 0, f"gunicorn exited with {status} on Ctrl-C:\n{first.text[-3000:]}"
    assert not first.survivors(), "processes outlived Ctrl-C"

    # A second start reuses the database: nothing to install, migrate or seed.
    second = RunScript(run_env)
    second.wait_until_serving(f"{base}/", timeout=120)
    assert second.interrupt() == 0
    assert "installing" not in second.text, second.text
    assert not second.survivors(), "processes outlived Ctrl-C"


def test_run_through_nginx_with_two_instances_and_celery(run_env: dict[str, str]) -> None:
    """Without GUNICORN_BIND and with nginx installed: nginx in front of INSTANCES gunicorns on
    unix sockets, HTTP and HTTPS, plus a Celery worker and beat because a broker is set, all
    supervised by honcho; Ctrl-C stops every one of them."""
    import shutil
    import ssl

    if not shutil.which("nginx"):
        skip_or_fail("nginx not installed (apt-get install nginx)")
    if not os.environ.get("REDIS_URL"):
        skip_or_fail("needs Redis for the Celery broker (set REDIS_URL)")
    env = {k: v for k, v in run_env.items() if k != "GUNICORN_BIND"}
    http_addr, https_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    queue = f"storefront-run-test-{os.getpid()}"
    env.update(
        NGINX_LISTEN_HTTP=http_addr,
        NGINX_LISTEN_HTTPS=https_addr,
        INSTANCES="2",
        REDIS_URL=os.environ["REDIS_URL"],
        CELERY_QUEUE=queue,
        CELERY_CONCURRENCY="1",
    )
    run = RunScript(env)
    run.wait_until_serving(f"http://{http_addr}/", timeout=600)
    procfile = (Path(env["STOREFRONT_VAR_DIR"]) / "Procfile").read_text()
    # REDIS_URL without REDIS_CACHE_URL: the cache gets an evicting Redis of its own.
    cache_redis = ["cache-redis"] if shutil.which("redis-server") else []
    assert sorted(
        line.split(":", 1)[0] for line in procfile.splitlines() if not line.startswith("#")
    ) == sorted(["beat", "nginx", "web1", "web2", "worker", *cache_redis]), procfile
    # The worker consumes this run's queue: a task sent there is executed by it.
    deadline = time.monotonic() + 60
    while " ready." not in run.text and time.monotonic() < deadline:
        time.sleep(0.3)
    subprocess.run(
        [
            str(VENV / "bin" / "celery"),
            "-A",
            "storefront",
            "call",
            "storefront.ops.tasks.clear_expired_sessions",
        ],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    while "clear_expired_sessions" not in run.text and time.monotonic() < deadline:
        time.sleep(0.3)
    assert re.search(
        r"worker\.1 .*Task storefront\.ops\.tasks\.clear_expired_sessions\[.*\] "
        r"succeeded",
        run.text,
    ), run.text[-3000:]
    assert "beat.1" in run.text and "beat: Starting" in run.text, run.text[-3000:]
    with urllib.request.urlopen(f"http://{http_addr}/products/", timeout=10) as response:
        assert response.headers["Server"] == "nginx"
        assert "strict-transport-security" not in response.headers
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"https://{https_addr}/", timeout=10, context=context) as resp:
        assert resp.status == 200
        assert "max-age" in resp.headers["Strict-Transport-Security"]
    sockets = sorted(p.name for p in (Path(env["STOREFRONT_VAR_DIR"]) / "run").iterdir())
    assert sockets == sorted(
        ["gunicorn-1.sock", "gunicorn-2.sock", *(f"{c}.sock" for c in cache_redis)]
    )
    assert f"https://{https_addr}/" in run.text
    # /metrics: never through nginx; on gunicorn's socket, one scrape covers every process of
    # the run, the Celery worker's task included (docs/monitoring.md).
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{http_addr}/metrics", timeout=10)
    assert refused.value.code == 404
    socket_path = Path(env["STOREFRONT_VAR_DIR"]) / "run" / "gunicorn-1.sock"
    assert f"curl --unix-socket {socket_path} http://localhost/metrics" in run.text
    metrics = unix_socket_get(socket_path, "/metrics")
    assert (
        'storefront_celery_tasks_total{outcome="succeeded",'
        'task="storefront.ops.tasks.clear_expired_sessions"} 1.0'
    ) in metrics, metrics[-3000:]
    assert 'storefront_http_requests_total{method="GET",status="200",view="catalog:' in metrics
    assert run.interrupt() == 0, run.text[-3000:]
    assert not run.survivors(), "processes outlived Ctrl-C"


def unix_socket_get(path: Path, url: str) -> str:
    """GET `url` from the HTTP server on the unix socket `path` (as `curl --unix-socket`)."""
    import http.client
    import socket

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(str(path))

    connection = UnixConnection("localhost")
    try:
        connection.request("GET", url)
        response = connection.getresponse()
        assert response.status == 200, (response.status, response.read()[:500])
        return response.read().decode()
    finally:
        connection.close()
