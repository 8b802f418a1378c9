#!/usr/bin/env python3
"""Render deploy/nginx/ into a directory nginx can run from (`make run`, the stack tests).

    python scripts/render_nginx.py OUT_DIR [--profile dev|production]

Substitutes only the NGINX_* variables listed in VARIABLES, like `envsubst '${NGINX_A} ...'`
(the official nginx image's templates step), so nginx's own `$host`, `$request_id` ... stay
untouched. Values come from the environment; a variable set but empty counts as unset and
gets its default. Writes:

    OUT/nginx.conf                main config (deploy/nginx/nginx.conf), paths under OUT
    OUT/conf.d/storefront.conf    from templates/storefront.conf.template
    OUT/snippets/*.conf           from templates/snippets/*.template, plus brotli*.conf
    OUT/modules.conf              load_module lines for the brotli modules, when installed
    OUT/user.conf                 `user root;` when run as root (see below)
    OUT/logs/ OUT/tmp/

NGINX_UPSTREAMS is built from NGINX_UPSTREAM_SOCKETS (space-separated `unix:/path` or
`host:port` entries) unless given literally; NGINX_REAL_IP_FROM likewise from
NGINX_TRUSTED_PROXIES (space-separated addresses or CIDRs of load balancers in front of nginx),
and NGINX_HTTPS_PUBLIC_PORT defaults to the port of NGINX_LISTEN_HTTPS. The microcache lives
in OUT/cache unless NGINX_CACHE_DIR says otherwise; NGINX_MICROCACHE=off turns it off (on by
default).

HSTS has one source, Django's settings: NGINX_HSTS_MAX_AGE defaults to SECURE_HSTS_SECONDS and
NGINX_HSTS_PRELOAD to SECURE_HSTS_PRELOAD, each with settings.py's default (one year; preload
with STOREFRONT_ENV=production), so nginx sends the header Django sends without nginx.

The access log (NGINX_ACCESS_LOG, default OUT/logs/access.log) is JSON lines or readable text
(NGINX_LOG_FORMAT json|text): by default the app's LOG_FORMAT, else json with the production
profile or STOREFRONT_ENV=production, else text (docs/logging.md).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NGINX_DIR = REPO_ROOT / "deploy" / "nginx"
MODULES_DIR = Path("/usr/lib/nginx/modules")
BROTLI_MODULES = ("ngx_http_brotli_filter_module.so", "ngx_http_brotli_static_module.so")
UPSTREAM_OPTIONS = "max_fails=3 fail_timeout=10s"
# An nginx time: a number with an optional unit (proxy_cache_valid).
NGINX_TIME = re.compile(r"[1-9][0-9]*(ms|s|m|h|d)?")
# The upstream group of storefront.conf.template (NGINX_UPSTREAMS).
POOL = "storefront_app"
# host:port, or a bare host name (port 80).
BACKEND = re.compile(r"[A-Za-z0-9_.-]+(:[0-9]{1,5})?")
# settings.py's default SECURE_HSTS_SECONDS (one year).
DEFAULT_HSTS_SECONDS = 31536000


def defaults(out: Path) -> dict[str, str]:
    var = REPO_ROOT / "var"
    return {
        "NGINX_PROFILE": "dev",
        "NGINX_LISTEN_HTTP": "8000",
        "NGINX_LISTEN_HTTPS": "8443",
        "NGINX_SERVER_NAME": "localhost",
        "NGINX_UPSTREAM_SOCKETS": f"unix:{var / 'run' / 'gunicorn.sock'}",
        "NGINX_UPSTREAMS": "",
        # The pool of NGINX_UPSTREAMS; a host:port instead is resolved at request time through
        # NGINX_RESOLVER (compose's web replicas, see storefront.conf.template).
        "NGINX_BACKEND": POOL,
        "NGINX_RESOLVER": "",
        "NGINX_STATIC_ROOT": str(var / "static"),
        "NGINX_MEDIA_ROOT": str(var / "media"),
        "NGINX_TLS_CERT": str(var / "tls" / "dev-cert.pem"),
        "NGINX_TLS_KEY": str(var / "tls" / "dev-key.pem"),
        "NGINX_CLIENT_MAX_BODY_SIZE": "10m",
        "NGINX_RATE_AUTH": "5r/m",
        "NGINX_RATE_API": "10r/s",
        "NGINX_RATE_GENERAL": "20r/s",
        "NGINX_CONN_PER_IP": "50",
        "NGINX_ACME_ROOT": str(var / "acme"),
        "NGINX_SNIPPET_DIR": str(out / "snippets"),
        "NGINX_ERROR_PAGES": str(NGINX_DIR / "errors"),
        # Inside the prefix, next to tmp/: each rendered nginx (tests run several) has its own.
        "NGINX_CACHE_DIR": str(out / "cache"),
        "NGINX_MICROCACHE": "on",
        "NGINX_MICROCACHE_SECONDS": "1s",
        "NGINX_HTTPS_PUBLIC_PORT": "",
        "NGINX_TRUSTED_PROXIES": "",
        "NGINX_REAL_IP_FROM": "",
        # Empty: from SECURE_HSTS_SECONDS / SECURE_HSTS_PRELOAD, see hsts_values().
        "NGINX_HSTS_MAX_AGE": "",
        "NGINX_HSTS_PRELOAD": "",
        "NGINX_ACCESS_LOG": str(out / "logs" / "access.log"),
        # Empty: from LOG_FORMAT, see log_format_value().
        "NGINX_LOG_FORMAT": "",
    }


def upstream_lines(sockets: str) -> str:
    entries = sockets.split()
    if not entries:
        raise SystemExit("NGINX_UPSTREAM_SOCKETS lists no socket")
    return "\n    ".join(f"server {entry} {UPSTREAM_OPTIONS};" for entry in entries)


def real_ip_lines(proxies: str) -> str:
    """`set_real_ip_from` per trusted proxy; a comment when there is none (nothing is trusted)."""
    entries = proxies.replace(",", " ").split()
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SystemExit(
                f"NGINX_TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR range"
            ) from None
    if not entries:
        return "# No trusted proxy in front (NGINX_TRUSTED_PROXIES): forwarded headers are ignored."
    return "\n".join(f"set_real_ip_from {entry};" for entry in entries)


def hsts_values(environ: dict[str, str]) -> dict[str, str]:
    """NGINX_HSTS_* from Django's variables, with settings.py's defaults."""
    preload_default = "true" if environ.get("STOREFRONT_ENV") == "production" else "false"
    return {
        "NGINX_HSTS_MAX_AGE": environ.get("SECURE_HSTS_SECONDS") or str(DEFAULT_HSTS_SECONDS),
        "NGINX_HSTS_PRELOAD": environ.get("SECURE_HSTS_PRELOAD") or preload_default,
    }


def log_format_value(environ: dict[str, str], profile: str) -> str:
    """NGINX_LOG_FORMAT's default: the app's LOG_FORMAT, else json in production, else text."""
    if environ.get("LOG_FORMAT"):
        return environ["LOG_FORMAT"].strip().lower()
    production = profile == "production" or environ.get("STOREFRONT_ENV") == "production"
    return "json" if production else "text"


def port_of(listen: str) -> str:
    """The port of a `listen` value: "8443", "127.0.0.1:8443", "[::1]:8443" -> "8443"."""
    return listen.rsplit(":", 1)[-1] if not listen.isdigit() else listen


def resolve(out: Path, environ: dict[str, str], profile: str | None) -> dict[str, str]:
    values = defaults(out)
    for name in values:
        if environ.get(name):
            values[name] = environ[name]
    if profile:
        values["NGINX_PROFILE"] = profile
    if values["NGINX_PROFILE"] not in {"dev", "production"}:
        raise SystemExit(
            f"NGINX_PROFILE must be dev or production, not {values['NGINX_PROFILE']!r}"
        )
    if values["NGINX_MICROCACHE"] not in {"on", "off"}:
        raise SystemExit(f"NGINX_MICROCACHE must be on or off, not {values['NGINX_MICROCACHE']!r}")
    if not NGINX_TIME.fullmatch(values["NGINX_MICROCACHE_SECONDS"]):
        raise SystemExit(
            "NGINX_MICROCACHE_SECONDS must be an nginx time such as 1s or 500ms, not "
            f"{values['NGINX_MICROCACHE_SECONDS']!r}"
        )
    if not values["NGINX_UPSTREAMS"]:
        values["NGINX_UPSTREAMS"] = upstream_lines(values["NGINX_UPSTREAM_SOCKETS"])
    if not values["NGINX_REAL_IP_FROM"]:
        values["NGINX_REAL_IP_FROM"] = real_ip_lines(values["NGINX_TRUSTED_PROXIES"])
    backend = values["NGINX_BACKEND"]
    if not BACKEND.fullmatch(backend):
        raise SystemExit(f"NGINX_BACKEND must be {POOL} or host:port, not {backend!r}")
    if not values["NGINX_RESOLVER"]:
        if backend != POOL:
            raise SystemExit(
                f"NGINX_BACKEND={backend} is resolved at request time: set NGINX_RESOLVER "
                "(e.g. 'resolver 127.0.0.53 valid=5s;')"
            )
        values["NGINX_RESOLVER"] = (
            f"# No resolver: NGINX_BACKEND is the {POOL} group, its addresses fixed at start."
        )
    if not values["NGINX_HTTPS_PUBLIC_PORT"]:
        values["NGINX_HTTPS_PUBLIC_PORT"] = port_of(values["NGINX_LISTEN_HTTPS"])
    for name, value in hsts_values(environ).items():
        values[name] = values[name] or value
    values["NGINX_LOG_FORMAT"] = values["NGINX_LOG_FORMAT"] or log_format_value(
        environ, values["NGINX_PROFILE"]
    )
    if values["NGINX_LOG_FORMAT"] not in {"json", "text"}:
        raise SystemExit(
            "NGINX_LOG_FORMAT (LOG_FORMAT) must be json or text, not "
            f"{values['NGINX_LOG_FORMAT']!r}"
        )
    if not values["NGINX_HSTS_MAX_AGE"].isdigit():
        raise SystemExit(
            "NGINX_HSTS_MAX_AGE (SECURE_HSTS_SECONDS) must be a whole number of seconds, not "
            f"{values['NGINX_HSTS_MAX_AGE']!r}"
        )
    public_port = values["NGINX_HTTPS_PUBLIC_PORT"]
    if not public_port.isdigit():
        raise SystemExit(f"NGINX_HTTPS_PUBLIC_PORT must be a port number, not {public_port!r}")
    return values


def substitute(text: str, values: dict[str, str]) -> str:
    """envsubst with a variable list: `${NAME}` and `$NAME` of listed names only."""
    names = "|".join(sorted(map(re.escape, values), key=len, reverse=True))
    pattern = re.compile(rf"\$(?:\{{({names})\}}|({names})(?![A-Za-z0-9_]))")
    return pattern.sub(lambda m: values[m.group(1) or m.group(2)], text)


def brotli_available() -> bool:
    return all((MODULES_DIR / name).is_file() for name in BROTLI_MODULES)


def render(out: Path, environ: dict[str, str], profile: str | None = None) -> dict[str, str]:
    out = out.resolve()
    values = resolve(out, environ, profile)
    for sub in ("conf.d", "snippets", "logs", "tmp"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for template in (NGINX_DIR / "templates").rglob("*.template"):
        relative = template.relative_to(NGINX_DIR / "templates").with_suffix("")
        target = out / ("conf.d" if relative.parent == Path(".") else "") / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(substitute(template.read_text(), values))
    shutil.copyfile(NGINX_DIR / "nginx.conf", out / "nginx.conf")

    snippets = out / "snippets"
    if brotli_available():
        modules = "".join(f"load_module {MODULES_DIR / name};\n" for name in BROTLI_MODULES)
        brotli = (
            "brotli on;\nbrotli_comp_level 5;\nbrotli_min_length 1024;\n"
            "brotli_types text/plain text/css text/csv application/json application/javascript"
            " text/javascript application/xml image/svg+xml;\n"
        )
        brotli_static = "brotli_static on;\n"
    else:
        modules = brotli = brotli_static = "# brotli modules not installed\n"
    (out / "modules.conf").write_text(modules)
    (snippets / "brotli.conf").write_text(brotli)
    (snippets / "brotli-static.conf").write_text(brotli_static)
    # Started by root, nginx would run its workers as `nobody`, which cannot enter a root-only
    # checkout (static files, error pages) or connect to gunicorn's socket: local runs as root
    # keep the workers as root. Production images run nginx with their own user instead.
    user = "user root;\n" if os.geteuid() == 0 else "# workers run as the invoking user\n"
    (out / "user.conf").write_text(user)
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory to render into (nginx -p prefix)")
    parser.add_argument("--profile", choices=["dev", "production"], default=None)
    args = parser.parse_args(argv)
    render(args.out, dict(os.environ), args.profile)
    print(f"nginx config rendered into {args.out.resolve()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
