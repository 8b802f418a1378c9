from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from storefront.dashboards import cached, exports, order_csv, selectors
from storefront.dashboards.forms import ExportFilterForm
from storefront.dashboards.models import OrderExport
from storefront.dashboards.permissions import staff_permission_required
from storefront.db_router import reads_from_replica
from storefront.orders.selectors import order_export_rows


@login_required
@reads_from_replica
def customer_dashboard_page(request: HttpRequest) -> HttpResponse:
    figures = cached.customer_dashboard(user=request.user)
    return render(
        request,
        "dashboards/customer.html",
        {
            # A customer who never ordered gets a pointer to the products, not zeros and an
            # empty chart; one whose orders are all cancelled or older than the chart's months
            # gets their orders without the chart.
            "has_orders": bool(figures.recent_orders),
            "has_spending": any(spent for _, spent in figures.spending),
            "totals": figures.totals,
            "recent_orders": figures.recent_orders,
            "spending": figures.spending,
            "spending_chart": {
                "labels": [m.strftime("%b %Y") for m, _ in figures.spending],
                "values": [str(v) for _, v in figures.spending],
                "label": "Spent per month",
            },
        },
    )


@staff_permission_required("dashboards.view_staff_dashboard", area="the staff dashboard")
@reads_from_replica
def staff_dashboard_page(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboards/staff.html", {"parts": cached.staff_dashboard_parts()})


@staff_permission_required("orders.export_orders", area="order exports")
def order_export_csv(request: HttpRequest) -> HttpResponse:
    """All orders as CSV, streamed (nginx passes it on unbuffered), up to
    STREAMED_EXPORT_MAX_ORDERS: a longer one would outlast the worker timeout and arrive cut
    off, so it is sent to the file export instead."""
    form = ExportFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponse(
            f"Bad export filter: {_problems(form)} (dates look like 2026-01-31).\n",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    since, until = form.cleaned_data["since"], form.cleaned_data["until"]
    if order_csv.too_many_to_stream(since=since, until=until):
        messages.warning(
            request,
            f"More than {order_csv.STREAMED_EXPORT_MAX_ORDERS:,} orders: use Export to file "
            "(below), which writes them in the background, or choose fewer days.",
        )
        return redirect("dashboards:order_exports")
    rows = order_export_rows(since=since, until=until)
    response = StreamingHttpResponse(
        order_csv.order_csv_chunks(rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = 'attachment; filename="orders.csv"'
    return response


def _problems(form: ExportFilterForm) -> str:
    return "; ".join(e for errors in form.errors.values() for e in errors)


@staff_permission_required("orders.export_orders", area="order exports")
@require_http_methods(["GET", "POST"])
def order_exports_page(request: HttpRequest) -> HttpResponse:
    """GET: recent exports and the request form; POST: queue an export (a Celery task writes
    the file), then back here."""
    status = 200
    if request.method == "POST":
        form = ExportFilterForm(request.POST)
        if form.is_valid():
            export = exports.request_order_export(
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


@staff_permission_required("orders.export_orders", area="order exports")
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
