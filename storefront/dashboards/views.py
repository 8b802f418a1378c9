from __future__ import annotations

import csv
from collections.abc import Iterator

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from storefront.dashboards import selectors
from storefront.dashboards.forms import ExportFilterForm
from storefront.dashboards.permissions import staff_required
from storefront.orders.selectors import order_export_rows


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


class _Echo:
    """A file-like object whose write() hands the line back, so csv.writer can stream."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterator[tuple]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(["number", "created_at", "status", "username", "email", "items", "total"])
    for number, created_at, *rest in rows:
        yield writer.writerow([number, created_at.isoformat(), *rest])


@staff_required
def order_export_csv(request: HttpRequest) -> HttpResponse:
    """All orders as CSV, streamed row by row (nginx passes it on unbuffered)."""
    form = ExportFilterForm(request.GET)
    if not form.is_valid():
        problems = "; ".join(e for errors in form.errors.values() for e in errors)
        return HttpResponse(
            f"Bad export filter: {problems} (dates look like 2026-01-31).\n",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    rows = order_export_rows(since=form.cleaned_data["since"], until=form.cleaned_data["until"])
    response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="orders.csv"'
    return response
