"""nginx from deploy/nginx, rendered by scripts/render_nginx.py as `make run` renders it, on
free loopback ports with the self-signed certificate of scripts/make_dev_cert.sh."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.app import Server
from harness.processes import (
    HOST,
    PROCESSES,
    PYTHON,
    REPO_ROOT,
    free_port,
    require_binary,
    run,
    wait_http,
)

RENDER_NGINX = REPO_ROOT / "scripts" / "render_nginx.py"
MAKE_DEV_CERT = REPO_ROOT / "scripts" / "make_dev_cert.sh"


@dataclass
class Nginx(Server):
    """A running nginx: `url` is its HTTP address, `https_url` its HTTPS one."""

    prefix: Path
    http_port: int
    https_port: int

    @property
    def https_url(self) -> str:
        return f"https://{HOST}:{self.https_port}"


def make_dev_cert(directory: Path) -> tuple[Path, Path]:
    """The certificate and key `make run` uses (localhost, 127.0.0.1), made once per directory."""
    done = run([str(MAKE_DEV_CERT), str(directory)], timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"make_dev_cert.sh failed:\n{done.stderr}")
    return directory / "dev-cert.pem", directory / "dev-key.pem"


def render_nginx(prefix: Path, variables: dict[str, str]) -> None:
    """Render deploy/nginx into `prefix`: the outer NGINX_* variables replaced by `variables`
    (the others, such as STOREFRONT_ENV for the HSTS defaults, come from the environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NGINX_")}
    env.update(variables)
    done = run([PYTHON, str(RENDER_NGINX), str(prefix)], timeout=60, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"render_nginx.py failed:\n{done.stderr}")


def start_nginx(
    prefix: Path,
    upstreams: list[str],
    *,
    static_root: Path,
    media_root: Path,
    variables: dict[str, str] | None = None,
    ready_path: str = "/nginx_status",
    timeout: float = 90,
    edit: Callable[[Path], None] | None = None,
) -> Nginx:
    """nginx rendered into `prefix` in front of `upstreams` (`host:port` or `unix:/path`),
    HTTP and HTTPS on free ports; `variables` are more NGINX_* values (NGINX_PROFILE,
    limits, microcache). `edit(prefix)` may change the rendered files first (the bench raises
    the fixed limit_req bursts). Checked with `nginx -t`, then waited for on `ready_path`."""
    binary = require_binary("nginx", "nginx")
    cert, key = make_dev_cert(prefix / "tls")
    media_root.mkdir(parents=True, exist_ok=True)
    http_port, https_port = free_port(), free_port()
    render_nginx(
        prefix,
        {
            "NGINX_LISTEN_HTTP": f"{HOST}:{http_port}",
            "NGINX_LISTEN_HTTPS": f"{HOST}:{https_port}",
            "NGINX_UPSTREAM_SOCKETS": " ".join(upstreams),
            "NGINX_STATIC_ROOT": str(static_root),
            "NGINX_MEDIA_ROOT": str(media_root),
            "NGINX_TLS_CERT": str(cert),
            "NGINX_TLS_KEY": str(key),
            **(variables or {}),
        },
    )
    if edit:
        edit(prefix)
    log_path = prefix / "logs" / "error.log"
    args = [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(log_path)]
    checked = run([*args, "-t", "-q"], timeout=30)
    if checked.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{checked.stderr}")
    proc = PROCESSES.spawn(
        [*args, "-g", "daemon off;"], env=dict(os.environ), log_path=prefix / "nginx.out"
    )
    url = f"http://{HOST}:{http_port}"
    # The production profile closes connections for other host names without an answer.
    host = (variables or {}).get("NGINX_SERVER_NAME") or "localhost"
    wait_http(f"{url}{ready_path}", proc, log_path, timeout, headers={"Host": host})
    return Nginx(
        proc=proc,
        url=url,
        log_path=log_path,
        kind="nginx",
        prefix=prefix,
        http_port=http_port,
        https_port=https_port,
    )
