"""The WSGI app gunicorn serves in `make faults`: Storefront's own, plus one path that sleeps.

GET /_faults/sleep/<seconds> holds its worker that long and then answers 200: "a request that
runs past the gunicorn timeout", without changing anything else the app does. It exists only in
this module, which only faults/stack.py names (storefront.wsgi is what production serves).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from storefront.wsgi import application as storefront_application

PREFIX = "/_faults/sleep/"
MAX_SECONDS = 120


def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path.startswith(PREFIX):
        try:
            seconds = min(float(path[len(PREFIX) :].strip("/")), MAX_SECONDS)
        except ValueError:
            seconds = 0.0
        time.sleep(seconds)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept\n"]
    return storefront_application(environ, start_response)
