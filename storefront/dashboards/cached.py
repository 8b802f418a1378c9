"""The dashboards' cached reads (the "dashboards" cache namespace, see storefront/caching.py).

* Customer dashboard: the computed figures (totals, recent orders, spending per month), not the
  HTML (the page carries a CSRF token and messages), per user under a ``user:<id>`` scope that
  orders/signals.py bumps after every save or delete of one of their orders; kept
  STOREFRONT_CACHE_TTL_DASHBOARD seconds at most.
* Staff dashboard: each part rendered to HTML without a request (so no CSRF token, no user) and
  cached under a time-bucketed key, the same for every staff member: the figures are at most
  STOREFRONT_CACHE_TTL_STAFF seconds old, and nothing has to invalidate them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from storefront import caching
from storefront.accounts.models import User
from storefront.dashboards import selectors

NAMESPACE = "dashboards"


@dataclass(frozen=True)
class CustomerDashboard:
    totals: selectors.CustomerTotals
    recent_orders: list
    spending: list


def customer_dashboard_key(user_id: int) -> str:
    return caching.make_key(NAMESPACE, "customer", user_id, scopes=[f"user:{user_id}"])


def customer_dashboard(*, user: User) -> CustomerDashboard:
    """The user's dashboard figures, from the cache when they have not changed since."""

    def compute() -> CustomerDashboard:
        return CustomerDashboard(
            totals=selectors.customer_totals(user=user),
            recent_orders=selectors.customer_recent_orders(user=user),
            spending=selectors.customer_spending_by_month(user=user),
        )

    return caching.get_or_set(
        NAMESPACE,
        customer_dashboard_key(user.id),
        compute,
        settings.STOREFRONT_CACHE_TTL_DASHBOARD,
    )


def _revenue_context() -> dict[str, Any]:
    revenue = selectors.revenue_per_day(days=30)
    return {
        "revenue_total": sum(r.revenue for r in revenue),
        "orders_total": sum(r.orders for r in revenue),
        "revenue_chart": {
            "labels": [r.day.strftime("%b %d") for r in revenue],
            "values": [str(r.revenue) for r in revenue],
            "label": "Revenue per day",
        },
    }


# Part name -> the context of its template dashboards/staff/<name>.html.
STAFF_PARTS: dict[str, Callable[[], dict[str, Any]]] = {
    "revenue": _revenue_context,
    "top_products": lambda: {"top_products": selectors.top_products(days=30)},
    "low_stock": lambda: {"low_stock": selectors.low_stock_products()},
    "recent_orders": lambda: {"recent_orders": selectors.recent_orders()},
}


def staff_part_key(name: str) -> str:
    return caching.make_key(
        NAMESPACE, "staff", name, bucket_seconds=settings.STOREFRONT_CACHE_TTL_STAFF
    )


def staff_dashboard_parts() -> dict[str, SafeString]:
    """Each part's HTML, rendered at most STOREFRONT_CACHE_TTL_STAFF seconds ago."""
    ttl = settings.STOREFRONT_CACHE_TTL_STAFF
    parts = {}
    for name, context in STAFF_PARTS.items():
        html = caching.get_or_set(
            NAMESPACE,
            staff_part_key(name),
            lambda name=name, context=context: render_to_string(
                f"dashboards/staff/{name}.html", context()
            ),
            ttl,
        )
        parts[name] = mark_safe(html)  # noqa: S308 - our own template's output
    return parts
