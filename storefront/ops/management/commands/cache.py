"""`storefront cache stats|clear`: the cache layer's counters and manual invalidation."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from storefront import caching


class Command(BaseCommand):
    help = "Show cache hit ratios and size, or invalidate a namespace or everything."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        stats = sub.add_parser("stats", help="hits, misses, ratio per namespace; memory and keys")
        stats.add_argument("--json", action="store_true", help="machine-readable output")
        stats.add_argument("--reset", action="store_true", help="zero the counters afterwards")
        clear = sub.add_parser("clear", help="invalidate cached entries (no FLUSHDB)")
        clear.add_argument(
            "--namespace",
            choices=caching.NAMESPACES,
            help="only this namespace (default: everything, by a new global generation)",
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "clear":
            namespace = options["namespace"]
            caching.clear(namespace)
            self.stdout.write(
                f"Invalidated {'namespace ' + namespace if namespace else 'every namespace'}."
            )
            return
        stats, size = caching.stats(), caching.backend_size()
        if options["json"]:
            self.stdout.write(json.dumps({"namespaces": stats, "backend": size}, indent=2))
        else:
            self.stdout.write(f"{'namespace':12} {'hits':>10} {'misses':>10} {'hit ratio':>10}")
            for namespace, row in stats.items():
                hits, misses, ratio = row["hits"], row["misses"], row["hit_ratio"]
                self.stdout.write(f"{namespace:12} {hits:>10} {misses:>10} {ratio:>10.1%}")
            memory = size.get("used_memory")
            self.stdout.write(
                f"backend {size['backend']}: {size.get('keys')} keys, "
                + (f"{memory / 1_048_576:.1f} MiB used" if memory is not None else "memory unknown")
            )
        if options["reset"]:
            caching.reset_stats()
