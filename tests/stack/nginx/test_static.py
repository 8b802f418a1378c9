"""Static files and media served by nginx from disk: immutable and precompressed static files,
sandboxed media."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stack.conftest import StackServer
from tests.stack.nginx.helpers import Nginx, assert_security_headers, fetch, static_file

pytestmark = pytest.mark.stack


def test_static_served_by_nginx_immutable_and_precompressed(
    nginx: Nginx, stack_server: StackServer
) -> None:
    name = static_file(Path(stack_server.env["STATIC_ROOT"]))
    plain = fetch(nginx.http_port, f"/static/{name}")
    assert plain.status == 200
    # Exactly one Cache-Control (nginx's `expires` once added a second, plain `max-age` one).
    assert plain.all("cache-control") == ["public, max-age=31536000, immutable"]
    assert_security_headers(plain)
    brotli = fetch(nginx.http_port, f"/static/{name}", headers={"Accept-Encoding": "br"})
    assert brotli.headers.get("content-encoding") == "br"
    gz = fetch(nginx.http_port, f"/static/{name}", headers={"Accept-Encoding": "gzip"})
    assert gz.headers.get("content-encoding") == "gzip"
    # Served from disk: nginx's access log has it, gunicorn never saw it.
    assert name not in stack_server.log_path.read_text(errors="replace")


def test_media_sandboxed_and_not_sniffed(nginx: Nginx, stack_server: StackServer) -> None:
    media = Path(stack_server.env["MEDIA_ROOT"])
    media.mkdir(parents=True, exist_ok=True)
    (media / "evil.unknownext").write_text("<script>alert(1)</script>")
    (media / ".secret").write_text("x")
    answer = fetch(nginx.http_port, "/media/evil.unknownext")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert fetch(nginx.http_port, "/media/.secret").status == 404
    assert fetch(nginx.http_port, "/media/").status in {403, 404}  # no autoindex
