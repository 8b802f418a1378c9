"""Logging filters."""

from __future__ import annotations

import logging
import threading
import time


class ThrottledErrorFilter(logging.Filter):
    """One line per distinct message and exception type every `interval` seconds.

    django-redis logs every ignored Redis error with a full traceback; during an outage that is
    one traceback per cache call. This keeps the first occurrence (as one line naming the
    exception) and counts the repeats it drops, reported with the next line it lets through.
    """

    def __init__(self, interval: float = 30.0) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[tuple[str, str], float] = {}
        self._dropped: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        key = (str(record.msg), type(exc).__name__ if exc else "")
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -self.interval) < self.interval:
                self._dropped[key] = self._dropped.get(key, 0) + 1
                return False
            self._last[key] = now
            dropped = self._dropped.pop(key, 0)
        if exc is not None:
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        if dropped:
            record.msg = f"{record.getMessage()} ({dropped} more in the last {self.interval:.0f}s)"
            record.args = None
        return True
