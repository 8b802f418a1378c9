"""`storefront profile URL`: one request under pyinstrument, its call tree saved as HTML.

The request goes through the whole Django stack in this process (middleware, view, template,
queries against the configured database and cache) via Django's test client, so it needs no
running server. docs/profiling.md has a worked example.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import Client
from django.urls import Resolver404, resolve
from django.utils import timezone
from pyinstrument import Profiler

METHODS = ("GET", "HEAD", "POST")


def profile_file_name(url: str) -> str:
    """`20261206-011500-products-page-2.html` for /products/?page=2 at that time (UTC)."""
    slug = re.sub(r"[^a-z0-9]+", "-", url.lower()).strip("-")[:60] or "root"
    return f"{timezone.now():%Y%m%d-%H%M%S}-{slug}.html"


class Command(BaseCommand):
    help = "Render one request under pyinstrument and save its call tree as HTML."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", help="path and query string, e.g. /products/?sort=price")
        parser.add_argument("--user", help="log in as this username first (force_login)")
        parser.add_argument("--method", default="GET", type=str.upper, choices=METHODS)
        parser.add_argument(
            "--repeat",
            type=int,
            default=1,
            help="requests before the profiled one, to warm caches (default 1; 0 = profile a "
            "cold first request)",
        )
        parser.add_argument(
            "--output",
            type=Path,
            help="HTML file to write (default var/profiles/<time>-<url>.html)",
        )
        parser.add_argument("--text", action="store_true", help="also print the call tree as text")
        parser.add_argument(
            "--interval", type=float, default=0.001, help="sampling interval in seconds"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        url: str = options["url"]
        if not url.startswith("/"):
            raise CommandError(f"URL must be a path starting with /, e.g. /products/, not {url!r}")
        if options["repeat"] < 0:
            raise CommandError("--repeat must be 0 or more")
        if options["interval"] <= 0:
            raise CommandError("--interval must be positive")
        try:
            resolve(url.split("?", 1)[0])
        except Resolver404:
            raise CommandError(f"no page at {url}: it matches no URL pattern") from None

        host = settings.ALLOWED_HOSTS[0].lstrip(".").strip("[]") if settings.ALLOWED_HOSTS else ""
        client = Client(
            SERVER_NAME=host if host and host != "*" else "localhost", raise_request_exception=False
        )
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user named {options['user']!r}")
            client.force_login(user)
        send = getattr(client, options["method"].lower())

        def method(path: str) -> Any:
            # HTTPS where production redirects plain HTTP, so the page itself is profiled.
            return send(path, secure=settings.SECURE_SSL_REDIRECT)

        for _ in range(options["repeat"]):
            method(url)
        profiler = Profiler(interval=options["interval"])
        started = time.perf_counter()
        profiler.start()
        response = method(url)
        profiler.stop()
        elapsed_ms = (time.perf_counter() - started) * 1000

        output: Path = options["output"] or (
            Path(settings.VAR_DIR) / "profiles" / profile_file_name(url)
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(profiler.output_html(), encoding="utf-8")
        self.stdout.write(
            f"{options['method']} {url}: {response.status_code} in {elapsed_ms:.1f} ms\n"
            f"call tree: {output}"
        )
        if options["text"]:
            self.stdout.write(profiler.output_text(unicode=True, color=False))
        if response.status_code >= 400:
            raise CommandError(
                f"{url} answered {response.status_code}; the call tree of that answer is saved"
            )
