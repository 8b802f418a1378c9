"""The report's targets and the headline ratios measured against them."""

from __future__ import annotations

from measure import ratio

TARGETS = {
    "uncached_vs_hello": (">=", 0.30, "uncached anonymous listing ≥ 0.30 × hello-world req/s"),
    "app_hit_vs_hello": (">=", 0.75, "app-cache hit listing ≥ 0.75 × hello-world req/s"),
    "micro_hit_vs_static": (">=", 0.50, "nginx microcache hit ≥ 0.5 × nginx static req/s"),
    "p95_largest_vs_10k": ("<=", 1.30, "listing p95 at 1M products ≤ 1.3 × at 10k"),
    "deep_vs_page1": ("<=", 1.30, "page 10,000 p95 ≤ 1.3 × page 1"),
    "dashboard_p95_ms": ("<=", 50.0, "staff dashboard p95 ≤ 50 ms at 1M orders"),
}


def summarize(results: dict) -> dict:
    """The headline ratios against the targets (None when not measured)."""
    c = results["comparisons"]
    refs = c.get("references", {})
    cache = c.get("cache", {})
    out: dict = {}
    out["uncached_vs_hello"] = ratio(cache.get("uncached"), refs.get("hello"))
    out["app_hit_vs_hello"] = ratio(cache.get("app_hit"), refs.get("hello"))
    micro = cache.get("micro_hit", {})
    out["micro_hit_vs_static"] = (
        ratio(micro, cache.get("static_micro_nginx") or refs.get("static"))
        if micro.get("rps")
        else None
    )
    sizes = c.get("sizes", {}).get("p95_vs_10k", {})
    if sizes:
        largest = list(sizes)[-1]
        out["p95_largest_vs_10k"] = sizes[largest]
        out["p95_largest_label"] = largest
    depth_http = c.get("depth", {}).get("http", {})
    keyset = [k for k in depth_http if k.startswith("keyset") and depth_http[k].get("p95_ms")]
    if keyset and depth_http.get("page 1"):
        deepest = max(keyset, key=lambda k: int(k.split()[-1]))
        out["deep_vs_page1"] = ratio(depth_http[deepest], depth_http["page 1"], "p95_ms")
        out["deep_label"] = deepest
    dash = c.get("dashboard", {})
    if dash.get("denormalized"):
        out["dashboard_p95_ms"] = dash["denormalized"]["p95_ms"]
        out["dashboard_request_time_p95_ms"] = dash["request_time"]["p95_ms"]
        out["dashboard_orders"] = dash.get("orders")
    return out
