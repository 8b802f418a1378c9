# ruff: noqa: E501, B007
"""bench/REPORT.md and its PNG plots from one results JSON (bench/run.py calls this).

.venv/bin/python bench/report.py bench/results/<timestamp>.json   # re-render a past run

The report and plots are written next to the JSON's results/ directory (bench/ for
bench/results/*.json, DIR for a `bench/run.py --out DIR` run).

Throughput is 2xx responses per second only (bench/measure.py); a failed run (any other
status, a socket error, a probe that does not show what the run measures) is shown as FAILED
with its status counts, never with a rate, and never enters a ratio.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from measure import bracket_mean

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent


def _f(value, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def _statuses(run: dict) -> str:
    counts = run.get("statuses") or {}
    text = ", ".join(f"{n:,} × {c}" for c, n in counts.items() if n) or "none"
    errors = {k: n for k, n in (run.get("socket_errors") or {}).items() if n}
    if errors:
        text += "; socket errors " + ", ".join(f"{n:,} {k}" for k, n in errors.items())
    return text


def _probe(run: dict) -> str:
    probe = run.get("probe") or {}
    first = probe.get("first") or {}

    def one(p: dict) -> str:
        header = p.get("x_storefront_cache") or p.get("x_cache_status") or "—"
        return f"{p.get('status')} {header}"

    return f"{one(first)} → {one(probe)}" if first else one(probe)


def _bracketed(run: dict | None, ref: dict | None) -> dict | None:
    """The reference a section-2 page's ratio column uses: the mean of the hello runs right
    before and after it (measure.bracket_mean) when it was bracketed, else `ref`."""
    if run and "reference" in run:
        mean = bracket_mean(run)
        return {"rps": mean, "ok": True} if mean else None
    return ref


def _run_row(label: str, run: dict | None, ref: dict | None = None, ref_key: str = "rps") -> str:
    if not run:
        return f"| {label} | — | — | — | — | — | — | — |"
    if run.get("available") is False:
        return f"| {label} | {run.get('reason', 'not available')} | | | | | | |"
    if not run.get("ok") and not run.get("informational"):
        return (
            f"| {label} | **FAILED**: {'; '.join(run.get('problems', []))[:300]} | | "
            f"{_statuses(run)} | | | | {_probe(run)} |"
        )
    rel = ""
    if ref and ref.get(ref_key) and ref.get("ok", True) and run.get(ref_key) is not None:
        rel = f"{run[ref_key] / ref[ref_key]:.2f}"
    res = run.get("resources", {}).get("by_kind", {})
    cpu = ", ".join(f"{k} {v['cpu_pct']:.0f}%" for k, v in res.items())
    rss = ", ".join(
        f"{k} {v['processes']}×{v['rss_mb_per_process']:.0f} MB" for k, v in res.items()
    )
    return (
        f"| {label} | {run['rps']:,.0f} | {run['p50_ms']:.1f} / {run['p95_ms']:.1f} / "
        f"{run['p99_ms']:.1f} | {_statuses(run)} | {rel} | {cpu} | {rss} | {_probe(run)} |"
    )


RUN_HEADER = (
    "| run | 2xx req/s | p50 / p95 / p99 ms | responses by status | ratio | CPU (sum per kind) | RSS | probe: 1st → 2nd GET (status, cache header) |\n"
    "|---|---:|---:|---|---:|---|---|---|"
)


def plots(results: dict, out_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path] = {}
    c = results.get("comparisons", {})
    summary = results.get("summary", {})

    # 1. headline ratios against their targets
    from targets import TARGETS, met

    names, values, goals, colours = [], [], [], []
    for key, (op, goal, text, unit) in TARGETS.items():
        value = summary.get(key)
        if value is None or unit != " ×":
            continue
        names.append(key.replace("_", " "))
        values.append(value)
        goals.append(goal)
        colours.append("tab:green" if met(key, value) else "tab:red")
    if values:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        ax.barh(names, values, color=colours)
        for i, goal in enumerate(goals):
            ax.plot([goal, goal], [i - 0.4, i + 0.4], color="black", linewidth=2)
        ax.set_xlabel("ratio (black tick: target)")
        ax.set_title("Storefront bench: ratios to same-run references (2xx only)")
        fig.tight_layout()
        made["targets"] = out_dir / "targets.png"
        fig.savefig(made["targets"], dpi=80)
        plt.close(fig)

    # 2. servers: 2xx req/s per server and page
    servers = c.get("servers", {})
    if servers:
        kinds = ["hello", "static", "listing_uncached"]
        labels = [s for s in ("runserver", "gunicorn", "nginx→gunicorn") if s in servers]
        fig, ax = plt.subplots(figsize=(8, 4))
        width = 0.8 / max(1, len(labels))
        for i, server in enumerate(labels):
            vals = [
                (servers[server].get(k) or {}).get("rps", 0)
                if (servers[server].get(k) or {}).get("ok")
                else 0
                for k in kinds
            ]
            ax.bar([x + i * width for x in range(len(kinds))], vals, width, label=server)
        ax.set_xticks([x + width * (len(labels) - 1) / 2 for x in range(len(kinds))], kinds)
        ax.set_yscale("log")
        ax.set_ylabel("2xx requests/s (log)")
        ax.set_title("runserver vs gunicorn vs nginx → gunicorn")
        ax.legend()
        fig.tight_layout()
        made["servers"] = out_dir / "servers.png"
        fig.savefig(made["servers"], dpi=80)
        plt.close(fig)

    # 3. workers sweep: uncached listing and hello per configuration
    workers = [r for r in c.get("workers", {}).get("runs", []) if r.get("listing", {}).get("ok")]
    if workers:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        labels = [r["label"] for r in workers]
        ax1.bar(labels, [r["listing"]["rps"] for r in workers], color="tab:blue")
        ax1.set_title("uncached listing (2xx req/s)")
        ax2.bar(
            labels,
            [r["hello"]["rps"] if r.get("hello", {}).get("ok") else 0 for r in workers],
            color="tab:orange",
        )
        ax2.set_title("hello (2xx req/s)")
        for ax in (ax1, ax2):
            plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
        fig.suptitle("gunicorn workers and classes behind nginx")
        fig.tight_layout()
        made["workers"] = out_dir / "workers.png"
        fig.savefig(made["workers"], dpi=80)
        plt.close(fig)

    # 4. sizes and depth (p95)
    sizes = {k: v for k, v in c.get("sizes", {}).get("runs", {}).items() if v.get("ok")}
    depth = c.get("depth", {}).get("inproc", {})
    if sizes or depth:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        if sizes:
            labels = list(sizes)
            axes[0].bar(labels, [sizes[k].get("p95_ms", 0) for k in labels], color="tab:purple")
            axes[0].set_title("uncached listing p95 by catalog size (HTTP)")
            axes[0].set_ylabel("ms")
        measured = {d: v for d, v in depth.items() if v.get("available")}
        if measured:
            ds = list(measured)
            axes[1].plot(
                ds,
                [measured[d]["offset"]["p95_ms"] for d in ds],
                marker="o",
                label="offset (Paginator)",
            )
            axes[1].plot(
                ds,
                [measured[d]["keyset"]["p95_ms"] for d in ds],
                marker="o",
                label="keyset (?after=)",
            )
            axes[1].set_yscale("log")
            axes[1].set_xlabel("page")
            axes[1].set_ylabel("p95 ms (log), in-process")
            axes[1].set_title("page depth: offset vs keyset")
            axes[1].legend()
        fig.tight_layout()
        made["depth"] = out_dir / "sizes-depth.png"
        fig.savefig(made["depth"], dpi=80)
        plt.close(fig)
    return made


def markdown(
    results: dict,
    json_path: Path,
    plot_paths: dict[str, Path],
    targets: dict,
    report_dir: Path = BENCH_DIR,
) -> str:
    from targets import met

    c = results.get("comparisons", {})
    s = results.get("summary", {})
    m = results.get("machine", {})
    unc = c.get("uncached", {})
    cached = c.get("cached", {})
    servers = c.get("servers", {})
    report_dir = report_dir.resolve()

    def rel(p: Path | str) -> str:
        path = Path(p).resolve()
        try:
            return path.relative_to(report_dir).as_posix()
        except ValueError:
            return path.as_posix()

    limits = results.get("nginx_limits", {})
    counting = servers.get("status_counting", {})
    lines = [
        "# Storefront benchmark report",
        "",
        f"Generated by `make bench` (bench/run.py), mode **{results['mode']}**, "
        f"{results['timestamp']}, commit {results.get('git')}, in {results.get('elapsed_s', 0):.0f} s. "
        f"Raw data: [`{rel(json_path)}`]({rel(json_path)}).",
        "",
        f"Machine: {m.get('cores')} cores, Python {m.get('python')}, {m.get('nginx')}; load: "
        f"`{m.get('wrk')}`, loopback only. Load average at start/end: "
        f"{', '.join(f'{x:.1f}' for x in m.get('loadavg_start', []))} / "
        f"{', '.join(f'{x:.1f}' for x in m.get('loadavg_end', []))} — other work shares these "
        "cores, so absolute figures are noisy; **every figure is judged as a ratio to a reference "
        "measured in the same run on the same stack**: a Django hello-world view "
        "(`/__bench__/hello/`, bench-only URLconf `bench/bench_urls.py`, default middleware) behind "
        "the same nginx and gunicorn, and nginx serving a small static file (the site's "
        "stylesheet).",
        "",
        "**Only 2xx answers count.** wrk's Lua script (`bench/lua/report.lua`) counts every "
        "response by status class; req/s is 2xx responses per second. A run with any other "
        "status (a 429 of nginx's limiter, a redirect, a 5xx) or a socket error is **failed**: "
        'it shows no rate, enters no ratio, is listed under "Failed runs" with its status '
        "counts, and `make bench` exits non-zero. Each run is preceded by two plain GETs of its "
        "URL (redirects not followed); the second must answer 2xx and show what the run claims "
        "to measure (cache header, cart badge), else the run fails too. "
        + (
            f"Counting statuses makes wrk copy each response into Lua: on the nginx static run "
            f"it cost {counting['cost'] * 100:.1f} % of the rate "
            f"({counting['uncounted']['rps']:,.0f} req/s without counting, "
            f"{counting['counted']['rps']:,.0f} with; the uncounted run is a cost check only). "
            if counting.get("cost") is not None
            else ""
        ),
        "",
        "Stacks: gunicorn from `deploy/gunicorn.conf.py` (sync, one worker per core = "
        f"{m.get('cores') or 1} workers unless said, max_requests off) on a loopback TCP "
        "port; nginx rendered from `deploy/nginx` by `scripts/render_nginx.py` (dev profile, "
        "upstream = that port with keepalive, microcache off unless said). Every request of wrk "
        "comes from 127.0.0.1, so the bench's nginx raises its per-address limits: "
        + ", ".join(f"{k}={v}" for k, v in limits.items() if k != "limit_req burst")
        + (
            f", and every `limit_req ... burst=` of the rendered copy set to {limits['limit_req burst']:,} "
            "(the template's fixed burst=40 refuses more than 40 requests from one address within "
            "one millisecond of nginx's cached clock, whatever the rate); the limiter stays in the "
            "path. "
            if limits.get("limit_req burst")
            else ". "
        )
        + "Two stacks per main dataset, identical but for the page cache: **uncached** "
        "(`STOREFRONT_CACHE_TTL_PAGES=0`) and **production** (page cache as deployed). PostgreSQL "
        "throwaway databases `bench_*` seeded by `storefront seed`; Redis cache with a key "
        "prefix of the run (deleted afterwards).",
    ]

    failures = results.get("failures", [])
    if failures:
        lines += [
            "",
            "## Failed runs",
            "",
            f"**{len(failures)} run(s) or measurement(s) failed** — their figures are not used; "
            "the bench exited non-zero.",
            "",
            "| run | why | responses by status |",
            "|---|---|---|",
        ]
        for f in failures:
            counts = f.get("statuses") or {}
            status_text = ", ".join(f"{n:,} × {k}" for k, n in counts.items() if n) or "—"
            lines.append(f"| {f['label']} | {'; '.join(f['problems'])[:400]} | {status_text} |")

    lines += [
        "",
        "## Targets and where we stand",
        "",
        "| target | measured | goal | status |",
        "|---|---:|---:|---|",
    ]
    checkout = c.get("checkout", {})
    memory = c.get("memory", {})
    notes = {
        "p95_largest_vs_10k": f"at {s.get('p95_largest_label', '?')} products",
        "deep_vs_page1": f"{s.get('deep_label', '?')} (HTTP, keyset)",
        "dashboard_p95_ms": f"{(s.get('dashboard_orders') or 0):,} orders, in-process",
        "checkout_p95_ms": (
            f"{checkout.get('orders_per_s')} orders/s, {checkout.get('buyers')} buyers, "
            f"{checkout.get('oversold')} oversold"
        ),
        "memory_rss_ratio": f"after {s.get('memory_requests') or 0:,} requests",
    }
    if s.get("round_trip_vs_hello") is not None:
        ceiling = (
            f"hello + the hit's one Redis round trip alone: {_f(s['round_trip_vs_hello'], 2, ' ×')}"
        )
        notes["app_hit_vs_hello"] = notes["product_hit_vs_hello"] = ceiling
    for key, (op, goal, text, unit) in targets.items():
        value = s.get(key)
        ok = met(key, value)
        if ok is None:
            status = "not measured (or its run failed)"
        else:
            status = "met" if ok else "**missed**"
            if key in notes:
                status += f" ({notes[key]})"
        lines.append(
            f"| {text} | {_f(value, 2, unit)} | {'≥' if op == '>=' else '≤'} {goal}{unit} | {status} |"
        )
    if results["mode"] != "full":
        lines += [
            "",
            f"{results['mode'].capitalize()} mode seeds small catalogs only (no 1M catalog, no 1M "
            "orders): the size and depth targets are stated at 1M products / page 10,000 / 1M "
            "orders and are checked at the largest size this mode has (see each section); run "
            "`make bench BENCH_MODE=full` for the real sizes.",
        ]
    if "targets" in plot_paths:
        lines += ["", f"![targets]({rel(plot_paths['targets'])})"]

    def section(title: str, intro: str = "") -> None:
        lines.extend(["", f"## {title}", ""])
        if intro:
            lines.extend([intro, ""])

    if servers:
        section(
            "1. runserver vs gunicorn alone vs nginx → gunicorn",
            "Uncached stack (page cache storing nothing, see 2). Ratio column: 2xx req/s relative "
            "to the same page through nginx → gunicorn.",
        )
        lines.append(RUN_HEADER)
        ref = servers.get("nginx→gunicorn", {})
        for server in ("runserver", "gunicorn", "nginx→gunicorn"):
            for kind in ("hello", "static", "listing_uncached"):
                lines.append(
                    _run_row(f"{server}: {kind}", servers.get(server, {}).get(kind), ref.get(kind))
                )
        if counting.get("uncounted"):
            lines.append(
                _run_row(
                    "nginx static, statuses not counted (cost check, not a figure)",
                    counting["uncounted"],
                    ref.get("static"),
                )
            )
        if "servers" in plot_paths:
            lines += ["", f"![servers]({rel(plot_paths['servers'])})"]

    if unc or cached:
        section(
            "2. Pages: uncached, app-cache hit, signed-in, nginx microcache",
            f"**Uncached** (ratio to the uncached stack's hello): {unc.get('method', '—')}. "
            "**App-cache hit** (ratio to the production stack's hello): the same URL every time, "
            "answered from Redis by Django; the probe must show `X-Storefront-Cache: HIT`. "
            f"**Signed-in listing**: {cached.get('signed_in_method', '—')}. **Microcache hit**: a "
            "second nginx with `NGINX_MICROCACHE=on` (1 s) in front of the production gunicorn; "
            "the probe must show `X-Cache-Status: HIT` (or UPDATING/STALE, a stored copy); ratio "
            "to that nginx's static file. **Hello + one Redis round trip** (production stack): "
            "the hello view plus exactly the lookup the listing's app-cache hit makes "
            "(`/__bench__/round-trip/`: the version counters and the ~17 KB page in one MGET, "
            "the page discarded; the probe must show it found the page): what that round trip "
            "alone costs on this machine. A hit skips the session, CSRF, auth and message "
            "middleware that hello runs, so it can land a little above this ratio, but no code "
            "around the lookup can take it much further. **Each page between two hello runs**: on each stack "
            "the runs go hello, page, hello, page, hello…, and a page's ratio is to the mean of "
            "the hello runs right before and after it (this VM's speed drifts by tens of "
            "percent within minutes; a reference from minutes earlier would carry that drift "
            "into the ratio); the sequence is repeated for the mode's rounds and each page shows "
            "its median round. The last column shows both probe GETs: status and cache header.",
        )
        lines.append(RUN_HEADER)
        uh, ph = unc.get("hello"), cached.get("hello")
        bracket_rows: list[str] = []
        for stack, runs, pages in (
            ("uncached stack", unc, (("listing", "listing, uncached"),
                                     ("product", "product page, uncached"))),
            ("production stack", cached, (("listing_hit", "listing, app-cache hit"),
                                          ("product_hit", "product page, app-cache hit"),
                                          ("round_trip", "hello + one Redis round trip (the "
                                                         "listing hit's lookup, page discarded)"),
                                          ("signed_in", "listing, signed in with a cart"))),
        ):  # fmt: skip
            references = runs.get("references") or [runs.get("hello")]
            lines.append(_run_row(f"{stack}: hello (reference 1)", references[0]))
            for key, label in pages:
                run = runs.get(key)
                if run and run.get("rounds"):
                    shown = ", ".join(_f(value) for value in run["rounds"])
                    label += f" (median of {len(run['rounds'])} rounds: {shown})"
                lines.append(_run_row(label, run, _bracketed(run, references[0])))
            rates = [f"{r['rps']:,.0f}" for r in references[1:] if r and r.get("rps")]
            if rates:
                bracket_rows.append(f"{stack}: {', '.join(rates)}")
        lines.append(_run_row("production stack: static file (nginx)", cached.get("static")))
        lines.append(
            _run_row("microcache nginx: static file (reference)", cached.get("static_micro_nginx"))
        )
        lines.append(
            _run_row(
                "listing, nginx microcache hit",
                cached.get("micro_hit"),
                cached.get("static_micro_nginx") or cached.get("static"),
            )
        )
        if bracket_rows:
            lines += ["", "The hello runs between the pages, in order (2xx req/s): "
                      + "; ".join(bracket_rows) + "."]  # fmt: skip
        if uh and ph and uh.get("ok") and ph.get("ok"):
            lines += [
                "",
                f"The two stacks' hello: {uh['rps']:,.0f} vs {ph['rps']:,.0f} req/s "
                f"({ph['rps'] / uh['rps']:.2f} ×; they differ only in the page-cache TTL, which "
                "hello never reads: the gap is noise of the shared machine).",
            ]

    if checkout:
        section(
            "3. Checkout with concurrent buyers (PostgreSQL)",
            "Each buyer is a thread logged in (login form, CSRF) as a different seeded shopper; "
            "each places its orders through nginx as a browser does: POST add-to-cart for one "
            "unit of a *hot* product all buyers want (while the shop has it) and one unit of a "
            "pool product, GET the checkout page (CSRF token, idempotency key, shipping fields), "
            "POST it. A placed order answers 302 to its page; a 409 is a refusal (the hot product "
            "sold out between cart and checkout). The hot product's stock is the seeded one "
            "closest to 60 % of the orders, so it sells out during the run. Afterwards the "
            "database is read: orders placed since the run, units sold per product against the "
            "stock each product lost (oversold: stock below zero, or units sold ≠ stock lost). "
            "Orders/s: placed orders over the buyers' wall time (logins excluded). Order emails "
            "run in the request (no Celery worker in the bench: CELERY_TASK_ALWAYS_EAGER), which "
            "the checkout POST's latency includes.",
        )
        if checkout.get("error"):
            lines.append(f"**FAILED**: {checkout['error']}")
        else:
            hot = checkout.get("hot") or {}
            v = checkout.get("verify", {})
            lines += [
                "| buyers × orders | placed | refused (sold out) | unexpected | orders/s | checkout POST p50 / p95 / max ms | oversold |",
                "|---|---:|---:|---:|---:|---:|---:|",
                f"| {checkout['buyers']} × {checkout['orders_per_buyer']} | {checkout['placed']} | "
                f"{checkout['refused_sold_out']} | {checkout['unexpected']} | {checkout['orders_per_s']} | "
                f"{_f(checkout['checkout_p50_ms'])} / {_f(checkout['checkout_p95_ms'])} / "
                f"{_f(checkout['checkout_max_ms'])} | {checkout.get('oversold')} |",
                "",
                f"Hot product #{hot.get('id')} (stock {hot.get('stock')} before): "
                + ", ".join(
                    f"#{p['product_id']} {p['before']} → {p['after']} ({p['sold']} sold)"
                    for p in v.get("products", [])
                    if p["sold"]
                )[:1500]
                + f". Database: {v.get('orders')} orders, {v.get('order_lines')} lines, "
                f"{v.get('units')} units since the run started.",
                "",
                "Answers: "
                + ", ".join(f"{k}: {n}" for k, n in checkout.get("statuses", {}).items()),
            ]
            if checkout.get("problems"):
                lines += ["", "**FAILED**: " + "; ".join(checkout["problems"])]

    if memory:
        section(
            "4. Worker memory over requests",
            "One gunicorn sync worker (max_requests off), page cache storing nothing (every "
            "request renders its page), driven directly by 2 client threads with an exact number "
            f"of requests cycling through a mix of {memory.get('mix_paths')} paths (home, listing "
            "sorts, categories, searches, product pages, login page, signed-in listing, hello; "
            f"e.g. {', '.join(f'`{p}`' for p in memory.get('mix_sample', [])[:6])}). RSS and USS "
            "(the worker's own pages) read when each count is reached.",
        )
        lines += ["| requests | RSS MB | USS MB |", "|---:|---:|---:|"]
        for p in memory.get("points", []):
            lines.append(f"| {p['requests']:,} | {p['rss_mb']:.1f} | {p['uss_mb']:.1f} |")
        lines += [
            "",
            f"Last ÷ first: RSS {_f(memory.get('rss_ratio'))} ×, USS {_f(memory.get('uss_ratio'))} ×. "
            f"Answers: {memory.get('statuses')}; X-Storefront-Cache: {memory.get('cache_headers')} "
            "(HIT: the login page, cached under its own TTL, STOREFRONT_CACHE_TTL_LOGIN; BYPASS: "
            "the signed-in listing).",
        ]
        if memory.get("problems"):
            lines += ["", "**FAILED**: " + "; ".join(memory["problems"])]

    sizes = c.get("sizes", {})
    if sizes and sizes.get("runs"):
        section(
            "5. Listing p95 by catalog size",
            "Uncached listing (first page, default sort) behind nginx, one uncached stack per "
            "dataset. Ratio: p95 relative to the smallest catalog.",
        )
        lines.append(RUN_HEADER)
        first = next(iter(sizes["runs"].values()), None)
        for label, run in sizes["runs"].items():
            lines.append(_run_row(f"{label} products", run, first, "p95_ms"))

    depth = c.get("depth", {})
    if depth:
        section(
            "6. Page depth: offset vs keyset",
            f"Largest dataset ({depth.get('products', 0):,} products, 24 per page), uncached stack. "
            "HTTP: page 1, then `?after=<cursor>` pages (the cursor of the row before the page, "
            "signed by the app the way its own Next links are). Ratio: p95 relative to page 1.",
        )
        for note in depth.get("notes", []):
            lines.append(f"- {note}")
        if depth.get("http"):
            lines += ["", RUN_HEADER]
            page1 = depth.get("http", {}).get("page 1")
            for label, run in depth.get("http", {}).items():
                lines.append(_run_row(label, run, page1, "p95_ms"))
        inproc = depth.get("inproc", {})
        if inproc:
            lines += [
                "",
                "In-process (the query work only, N calls each): OFFSET = Django `Paginator` "
                "(COUNT(*) + OFFSET/LIMIT, what `?page=N` used to do); keyset = "
                "`Keyset.page_after` (one range query of 25 rows, what `?after=` does).",
                "",
                "| page | offset p50 / p95 ms | keyset p50 / p95 ms | offset ÷ keyset (p95) |",
                "|---:|---:|---:|---:|",
            ]
            for d, v in inproc.items():
                if not v.get("available"):
                    lines.append(f"| {int(d):,} | {v.get('reason')} | | |")
                    continue
                o, k = v["offset"], v["keyset"]
                lines.append(
                    f"| {int(d):,} | {o['p50_ms']:.2f} / {o['p95_ms']:.2f} | {k['p50_ms']:.2f} / "
                    f"{k['p95_ms']:.2f} | {o['p95_ms'] / k['p95_ms']:.1f} |"
                )
        if "depth" in plot_paths:
            lines += ["", f"![sizes and depth]({rel(plot_paths['depth'])})"]

    dash = c.get("dashboard", {})
    if dash:
        section(
            "7. Staff dashboard: request-time aggregation vs denormalized tables",
            f"Timed in-process, not over HTTP (the page's fragment cache would hide the queries): "
            f"the four staff-dashboard selectors (revenue per day, top products, low stock, recent "
            f"orders) on the {dash.get('dataset')} dataset, {dash.get('orders', 0):,} orders / "
            f"{dash.get('order_lines', 0):,} lines. Request-time variant: `{dash.get('source_request_time')}` "
            "(the last version that aggregated orders and lines per request), loaded into a "
            "throwaway module.",
        )
        if dash.get("error"):
            lines.append(f"Failed: {dash['error']}")
        else:
            lines += [
                "| variant | calls | p50 ms | p95 ms | mean ms |",
                "|---|---:|---:|---:|---:|",
            ]
            for key in ("request_time", "denormalized"):
                v = dash[key]
                lines.append(
                    f"| {key.replace('_', ' ')} | {v['calls']} | {v['p50_ms']:.2f} | {v['p95_ms']:.2f} | {v['mean_ms']:.2f} |"
                )
            lines.append("")
            lines.append(
                f"Request-time ÷ denormalized (p95): {dash['request_time']['p95_ms'] / dash['denormalized']['p95_ms']:.1f} ×."
            )

    npo = c.get("n_plus_one", {})
    if npo:
        section(
            "8. N+1 listing vs the selector",
            "Bench-only views (`bench/bench_urls.py`): 24 newest products rendered as text with "
            "`product.category.name` and `product.stock` per row — N+1: no `select_related` (25 "
            "queries); selector: `catalog.selectors.product_listing` (1 query). Over HTTP behind "
            "nginx on the production stack (ratio to its hello), and in-process.",
        )
        lines.append(RUN_HEADER)
        http = npo.get("http") or {}
        lines.append(_run_row("N+1 view", http.get("n_plus_one"), cached.get("hello")))
        lines.append(_run_row("selector view", http.get("selector"), cached.get("hello")))
        ip = npo.get("inproc", {})
        if ip:
            lines += ["", "| in-process | queries | p50 ms | p95 ms |", "|---|---:|---:|---:|"]
            for key, v in ip.items():
                lines.append(
                    f"| {key.replace('_', ' ')} | {v['queries']} | {v['p50_ms']:.2f} | {v['p95_ms']:.2f} |"
                )

    workers = c.get("workers", {})
    if workers:
        cores = m.get("cores") or 1
        section(
            "9. gunicorn workers and worker classes",
            "One uncached stack per configuration (nginx in front), each measured on the "
            "uncached listing and on hello; the configurations run in turn, "
            f"{workers.get('rounds', 1)} round(s), and each shows its median round (every "
            "round's rate in brackets). The default of `deploy/gunicorn.conf.py` is one sync "
            f"worker per core = {cores} on this {cores}-core machine (it was 2 × cores + 1 = "
            f"{2 * cores + 1} before the first sweep); the findings below say whether this run "
            "tells any configuration apart from it.",
        )
        lines += [
            "| configuration | listing 2xx req/s | listing p95 ms | hello 2xx req/s | hello p95 ms | listing ÷ hello | gunicorn RSS (listing run) |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for run in workers.get("runs", []):
            if run.get("error"):
                lines.append(
                    f"| {run['label']} | failed to start: {run['error'][:100]} | | | | | |"
                )
                continue
            cells = []
            for page in ("listing", "hello"):
                r = run.get(page) or {}
                if r.get("ok"):
                    rounds = r.get("rounds")
                    spread = f" [{', '.join(f'{x:,.0f}' for x in rounds)}]" if rounds else ""
                    cells += [f"{r['rps']:,.0f}{spread}", f"{r['p95_ms']:.1f}"]
                else:
                    cells += [f"**FAILED** ({_statuses(r)})", ""]
            g = run.get("listing", {}).get("resources", {}).get("by_kind", {}).get("gunicorn")
            rss = f"{g['processes']}×{g['rss_mb_per_process']:.0f} MB" if g else ""
            lines.append(
                f"| {run['label']} | {' | '.join(cells)} | {_f(run.get('listing_vs_hello'))} | {rss} |"
            )
        finding = workers.get("finding", {})
        for page, what in (("listing", "uncached listing"), ("hello", "hello")):
            f = finding.get(page)
            if not f:
                continue
            loss = (
                f"; the default (sync × {cores}) gives {f['default_rps']:,.0f}, "
                f"{f['default_loss'] * 100:.0f} % less"
                if f.get("default_rps") is not None
                else ""
            )
            if f.get("old_default_rps") is not None:
                loss += (
                    f"; the old default (sync × {2 * cores + 1}) {f['old_default_rps']:,.0f}, "
                    f"{f['old_default_loss'] * 100:.0f} % less"
                )
            if f.get("default_loss") == 0:
                loss += ". The default is this run's best"
            elif f.get("noise") is not None:
                loss += (
                    f". The best configuration's own rounds spread over {f['noise'] * 100:.0f} % "
                    "of its median: "
                    + (
                        "the default is within that, so this run cannot tell it from the best"
                        if f.get("default_ties_best")
                        else "the default is further behind than that"
                    )
                )
            lines.append("")
            lines.append(
                f"Best on the {what}: **{f['best']}** ({f['best_rps']:,.0f} req/s); best sync "
                f"count: {f['best_sync']}{loss}."
            )
        if finding.get("formulas"):
            lines += [
                "",
                f"Formulas giving the best sync count on the uncached listing on {cores} cores: "
                + ", ".join(f"`{x}`" for x in finding["formulas"])
                + (
                    ": they coincide on this machine, which cannot tell them apart; the figures "
                    "on the target hardware decide."
                    if len(finding["formulas"]) > 1
                    else "."
                ),
            ]
        if "workers" in plot_paths:
            lines += ["", f"![workers]({rel(plot_paths['workers'])})"]

    section("Datasets")
    lines += [
        "| dataset | products | orders | users | seed s | DB size MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, d in results.get("datasets", {}).items():
        lines.append(
            f"| {label} | {d['products']:,} | {d['orders']:,} | {d['users']:,} | {d.get('seed_s')} | {d.get('db_size_mb', '—')} |"
        )
    if results.get("problems"):
        section("Problems in this run")
        lines += [f"- {p}" for p in results["problems"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH_DIR))
    sys.path.insert(1, str(REPO_ROOT))
    path = Path(sys.argv[1]).resolve()
    data = json.loads(path.read_text())
    from targets import TARGETS

    out_dir = path.parent.parent
    made = plots(data, out_dir / "plots")
    (out_dir / "REPORT.md").write_text(markdown(data, path, made, TARGETS, out_dir))
    print(f"wrote {out_dir / 'REPORT.md'}")
