"""deploy/gunicorn.conf.py: the defaults the README documents, and GUNICORN_* overrides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _print_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """gunicorn --print-config with this checkout's config and only the given GUNICORN_*."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GUNICORN_")}
    clean.update(STOREFRONT_VAR_DIR=str(tmp_path / "var"), **env)
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--print-config",
         "storefront.wsgi"],
        cwd=REPO, env=clean, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _config(tmp_path: Path, **env: str) -> dict[str, str]:
    """What gunicorn resolves from the config file, setting by setting."""
    result = _print_config(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    values = {}
    for line in result.stdout.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            values[name.strip()] = value.strip()
    return values


def test_defaults(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert config["bind"] == f"['unix:{tmp_path}/var/run/gunicorn.sock']"
    assert (tmp_path / "var" / "run").is_dir()  # created for the socket
    assert config["workers"] == str(os.cpu_count())
    assert config["worker_class"] == "sync"
    assert config["preload_app"] == "True"
    assert config["worker_tmp_dir"] == "/dev/shm"
    assert (config["max_requests"], config["max_requests_jitter"]) == ("1000", "100")
    assert (config["timeout"], config["graceful_timeout"]) == ("30", "30")
    # Longer than nginx's upstream keepalive_timeout (60 s): gunicorn never closes first.
    assert int(config["keepalive"]) > 60
    assert config["accesslog"] == "-"
    # The id Django answered with (checked, or made when the proxy sent none).
    assert "%({x-request-id}o)s" in config["access_log_format"]
    assert config["logger_class"] == "storefront.ops.gunicorn_logging.StorefrontLogger"
    assert "%(M)s" in config["access_log_format"]  # response time in ms
    # The scheme is Django's decision (SECURE_PROXY_SSL_HEADER), never gunicorn's.
    assert config["secure_scheme_headers"] == "{}"


def test_every_value_comes_from_the_environment(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        GUNICORN_BIND="127.0.0.1:8123",
        GUNICORN_WORKERS="3",
        GUNICORN_WORKER_CLASS="gthread",
        GUNICORN_THREADS="4",
        GUNICORN_TIMEOUT="120",
        GUNICORN_PRELOAD="false",
    )
    assert config["bind"] == "['127.0.0.1:8123']"
    assert (config["workers"], config["worker_class"], config["threads"]) == ("3", "gthread", "4")
    assert config["timeout"] == "120"
    assert config["preload_app"] == "False"


def test_a_bad_value_is_a_clear_error(tmp_path: Path) -> None:
    result = _print_config(tmp_path, GUNICORN_WORKERS="many")
    assert result.returncode != 0
    assert "GUNICORN_WORKERS must be a whole number, not 'many'" in result.stdout + result.stderr


def test_gevent_workers_load_the_app_themselves(tmp_path: Path) -> None:
    # Preloading before gevent patches the worker makes every request fail (bench finding).
    assert _config(tmp_path, GUNICORN_WORKER_CLASS="gevent")["preload_app"] == "False"
    assert _config(tmp_path, GUNICORN_WORKER_CLASS="gthread")["preload_app"] == "True"
