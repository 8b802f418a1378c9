"""nginx in front of gunicorn, config rendered from deploy/nginx/ by scripts/render_nginx.py.

One nginx for the package (the `nginx` fixture), proxying to the session's gunicorn plus a second
gunicorn, with free ports and a throwaway prefix. Tests that need other settings (a dead upstream,
the production profile, trusted proxies, microcache off) start an nginx of their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.stack.conftest import StackServer, start_gunicorn
from tests.stack.nginx.helpers import Nginx, start_nginx, stop


@pytest.fixture(scope="package")
def nginx(stack_server: StackServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """nginx proxying to the session gunicorn (TCP) and a second gunicorn on a unix socket,
    one for all the test modules of this package."""
    prefix = tmp_path_factory.mktemp("nginx")
    socket_path = prefix / "second.sock"
    env = {**stack_server.env, "GUNICORN_BIND": f"unix:{socket_path}"}
    second = start_gunicorn(env, prefix / "second-gunicorn.log")
    try:
        deadline = time.monotonic() + 60
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        server = start_nginx(prefix, [stack_server.netloc, f"unix:{socket_path}"], stack_server.env)
        try:
            yield server
        finally:
            stop(server.proc)
    finally:
        stop(second)
