"""gunicorn's access and error logs in the format of the app's (LOG_FORMAT, log_format.py).

deploy/gunicorn.conf.py names this class as `logger_class`. With LOG_FORMAT=json both logs are
JSON lines: gunicorn's own messages (start, stop, worker timeouts) with time, level, logger,
message and pid, and one access line per request with the fields below. With LOG_FORMAT=text
gunicorn logs as it always does (its own formats, `access_log_format`).
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from gunicorn.glogging import Logger

from storefront.ops import log_format
from storefront.ops.request_id import (
    ENVIRON_REQUEST_ID,
    ENVIRON_USER_ID,
    REQUEST_ID_HEADER,
    clean_request_id,
)


def _header(headers: Any, name: str) -> str | None:
    """A header of gunicorn's request or response (a list of (name, value) pairs)."""
    if hasattr(headers, "items"):
        headers = headers.items()
    for key, value in headers or ():
        if key.lower() == name.lower():
            return value
    return None


def access_fields(
    resp: Any, req: Any, environ: dict[str, Any], request_time: datetime.timedelta
) -> dict[str, Any]:
    """The fields of one JSON access line (docs/logging.md lists them)."""
    status = resp.status
    if isinstance(status, str):
        status = status.split(None, 1)[0]
    # The id Django answered with (well-formed, perhaps new); for a request Django never saw
    # (gunicorn refused it), the one that came in, checked the same way.
    request_id = (
        environ.get(ENVIRON_REQUEST_ID)
        or _header(resp.headers, REQUEST_ID_HEADER)
        or clean_request_id(environ.get("HTTP_X_REQUEST_ID"))
    )
    user_id = environ.get(ENVIRON_USER_ID)
    return {
        "remote": environ.get("REMOTE_ADDR") or None,
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("PATH_INFO"),
        "query": environ.get("QUERY_STRING") or None,
        "status": int(status) if str(status).isdigit() else status,
        "bytes": getattr(resp, "sent", None),
        "duration_ms": round(request_time.total_seconds() * 1000, 1),
        "request_id": request_id,
        "user_id": int(user_id) if user_id and user_id.isdigit() else None,
        "user_agent": environ.get("HTTP_USER_AGENT"),
        "referer": environ.get("HTTP_REFERER"),
    }


class StorefrontLogger(Logger):
    """gunicorn's Logger, writing JSON lines when LOG_FORMAT says json."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        try:
            self.log_format = log_format.log_format_from_environ(os.environ)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
        if self.log_format != "json":
            return
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):
                    handler.setFormatter(log_format.formatter("json"))

    def access(
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: datetime.timedelta
    ) -> None:
        if self.log_format != "json":
            super().access(resp, req, environ, request_time)
            return
        if not self.access_log_enabled:
            return
        try:
            values = access_fields(resp, req, environ, request_time)
            self.access_log.info(
                "%s %s %s",
                values["method"],
                values["path"],
                values["status"],
                extra=log_format.fields(**values),
            )
        except Exception:
            self.error_log.exception("could not write the access log line")
