from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from storefront.dashboards import selectors, services
from storefront.dashboards.forms import ExportFilterForm
from storefront.dashboards.models import OrderExport
from storefront.dashboards.order_csv import order_csv_lines
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


@staff_required
def order_export_csv(request: HttpRequest) -> HttpResponse:
    """All orders as CSV, streamed row by row (nginx passes it on unbuffered)."""
    form = ExportFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponse(
            f"Bad export filter: {_problems(form)} (dates look like 2026-01-31).\n",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    rows = order_export_rows(since=form.cleaned_data["since"], until=form.cleaned_data["until"])
    response = StreamingHttpResponse(order_csv_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="orders.csv"'
    return response


def _problems(form: ExportFilterForm) -> str:
    return "; ".join(e for errors in form.errors.values() for e in errors)


@staff_required
@require_http_methods(["GET", "POST"])
def order_exports_page(request: HttpRequest) -> HttpResponse:
    """GET: recent exports and the request form; POST: queue an export (a Celery task writes
    the file), then back here."""
    status = 200
    if request.method == "POST":
        form = ExportFilterForm(request.POST)
        if form.is_valid():
            export = services.request_order_export(
                user=request.user,
                since=form.cleaned_data["since"],
                until=form.cleaned_data["until"],
            )
            messages.success(
                request,
                f"Export #{export.pk} is queued; it is listed below and can be downloaded "
                "when its status is Done.",
            )
            return redirect("dashboards:order_exports")
        status = 400
    else:
        form = ExportFilterForm()
    return render(
        request,
        "dashboards/exports.html",
        {
            "form": form,
            "problems": _problems(form) if form.is_bound else "",
            "exports": selectors.recent_order_exports(),
        },
        status=status,
    )


@staff_required
@require_GET
def order_export_download(request: HttpRequest, export_id: int) -> HttpResponse:
    try:
        export = selectors.order_export(export_id=export_id)
    except OrderExport.DoesNotExist:
        raise Http404(f"There is no export #{export_id}.") from None
    if export.status != OrderExport.Status.DONE or not export.file:
        raise Http404(f"Export #{export.pk} is not ready (status: {export.get_status_display()}).")
    try:
        handle = export.file.open("rb")
    except FileNotFoundError:
        raise Http404(
            f"The file of export #{export.pk} is missing; request a new export."
        ) from None
    return FileResponse(
        handle, as_attachment=True, filename=export.download_name, content_type="text/csv"
    )
