#!/usr/bin/env python3
"""gixy on the nginx configuration as it runs: deploy/nginx rendered by scripts/render_nginx.py.

    python scripts/lint_nginx.py

Renders each variant the stack uses (dev and production profiles, microcache on and off) into
a temporary directory and runs gixy (the `gixy-ng` dev dependency, next to this interpreter)
on it. Exits 1 and prints gixy's report when it finds a problem. The pre-commit hook `gixy`
runs it (`make lint`, CI); tests/stack/nginx checks the same variants.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import render_nginx  # a sibling script, found through the path set above

VARIANTS = [("dev", "on"), ("production", "on"), ("dev", "off")]


def main() -> int:
    gixy = Path(sys.executable).with_name("gixy")
    if not gixy.exists():
        print(f"error: {gixy} not found; run `make install` (gixy-ng)", file=sys.stderr)
        return 1
    failed = False
    for profile, microcache in VARIANTS:
        with tempfile.TemporaryDirectory(prefix="storefront-gixy-") as out:
            # The defaults only, as the tests render it: no NGINX_* of the shell leaks in.
            render_nginx.render(Path(out), {"NGINX_MICROCACHE": microcache}, profile)
            done = subprocess.run(
                [str(gixy), str(Path(out) / "nginx.conf")], capture_output=True, text=True
            )
        if done.returncode != 0 or "Problem:" in done.stdout:
            failed = True
            print(f"gixy: profile={profile} microcache={microcache}", file=sys.stderr)
            print(done.stdout + done.stderr, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
