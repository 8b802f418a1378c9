from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from storefront.dashboards import selectors
from storefront.dashboards.permissions import staff_required


@login_required
def customer_dashboard_page(request: HttpRequest) -> HttpResponse:
    spending = selectors.customer_spending_by_month(user=request.user)
    return render(
        request,
        "dashboards/customer.html",
        {
            "totals": selectors.customer_totals(user=request.user),
            "recent_orders": selectors.customer_recent_orders(user=request.user),
            "spending": spending,
            "spending_chart": {
                "labels": [m.strftime("%b %Y") for m, _ in spending],
                "values": [str(v) for _, v in spending],
                "label": "Spent per month",
            },
        },
    )


@staff_required
def staff_dashboard_page(request: HttpRequest) -> HttpResponse:
    revenue = selectors.revenue_per_day(days=30)
    return render(
        request,
        "dashboards/staff.html",
        {
            "revenue": revenue,
            "revenue_total": sum(r.revenue for r in revenue),
            "orders_total": sum(r.orders for r in revenue),
            "revenue_chart": {
                "labels": [r.day.strftime("%b %d") for r in revenue],
                "values": [str(r.revenue) for r in revenue],
                "label": "Revenue per day",
            },
            "top_products": selectors.top_products(days=30),
            "low_stock": selectors.low_stock_products(),
            "recent_orders": selectors.recent_orders(),
        },
    )
