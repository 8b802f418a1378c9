"""Staff pages of the product CSV import: upload, progress (polled as JSON) and report."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from storefront.catalog import imports, selectors
from storefront.catalog.forms import ProductImportForm
from storefront.catalog.models import ProductImport
from storefront.dashboards.permissions import staff_permission_required


def _import_or_404(import_id: int) -> ProductImport:
    try:
        return selectors.product_import(import_id=import_id)
    except ProductImport.DoesNotExist:
        raise Http404(f"There is no product import #{import_id}.") from None


@staff_permission_required("catalog.import_products", area="product imports")
@require_http_methods(["GET", "POST"])
def product_import_page(request: HttpRequest) -> HttpResponse:
    """GET: the upload form and recent imports; POST: store the file, queue the import and go
    to its progress page."""
    status = 200
    if request.method == "POST":
        form = ProductImportForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                record = imports.create_product_import(
                    file=form.cleaned_data["file"], user=request.user
                )
            except imports.UploadStorageFull as exc:
                # The disk is full: the form again with the reason, 507 Insufficient Storage.
                form.add_error("file", str(exc))
                status = 507
            else:
                messages.success(
                    request, f"Import #{record.pk} of {record.original_name} is queued."
                )
                return redirect(record.get_absolute_url())
        else:
            status = 400
    else:
        form = ProductImportForm()
    return render(
        request,
        "catalog/import_list.html",
        {
            "form": form,
            "imports": selectors.recent_product_imports(),
            "max_upload_mb": settings.STOREFRONT_MAX_UPLOAD_MB,
        },
        status=status,
    )


@never_cache
@staff_permission_required("catalog.import_products", area="product imports")
@require_GET
def product_import_detail_page(request: HttpRequest, import_id: int) -> HttpResponse:
    record = _import_or_404(import_id)
    return render(request, "catalog/import_detail.html", {"import": record})


@never_cache
@staff_permission_required("catalog.import_products", area="product imports")
@require_GET
def product_import_status(request: HttpRequest, import_id: int) -> JsonResponse:
    try:
        record = selectors.product_import(import_id=import_id)
    except ProductImport.DoesNotExist:
        return JsonResponse({"error": f"There is no product import #{import_id}."}, status=404)
    return JsonResponse(_status(record))


def _status(record: ProductImport) -> dict:
    """What the progress page polls (status.json)."""
    return {
        "id": record.pk,
        "status": record.status,
        "status_display": record.get_status_display(),
        "finished": record.is_finished,
        "total_rows": record.total_rows,
        "processed_rows": record.processed_rows,
        "percent": record.percent,
        "created": record.created_count,
        "updated": record.updated_count,
        "unchanged": record.unchanged_count,
        "rejected": record.rejected_count,
        "error": record.error,
    }
