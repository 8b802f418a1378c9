from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html, format_html_join

from storefront import caching
from storefront.catalog import imports
from storefront.catalog.forms import ProductImportAdminForm
from storefront.catalog.models import Category, Product, ProductImport


@admin.action(description="Clear the cached catalog pages (all products and categories)")
def clear_catalog_cache(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> None:
    # Manual invalidation for operators: the whole catalog namespace, whatever is selected.
    caching.clear("catalog")
    modeladmin.message_user(request, "The cached catalog pages were cleared.")


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    actions = [clear_catalog_cache]
    list_display = ("name", "slug", "parent")
    list_select_related = ("parent",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    autocomplete_fields = ("parent",)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    actions = [clear_catalog_cache]
    list_display = ("name", "sku", "category", "price", "stock", "is_active", "created_at")
    list_select_related = ("category",)
    list_filter = ("is_active", "category", "created_at")
    list_editable = ("price", "stock", "is_active")
    search_fields = ("name", "sku", "slug")
    prepopulated_fields = {"slug": ("name",)}
    autocomplete_fields = ("category",)
    readonly_fields = ("created_at", "updated_at")
    date_hierarchy = "created_at"
    # Counting 100k+ rows on every change-list page is wasted work.
    show_full_result_count = False
    list_per_page = 50


@admin.register(ProductImport)
class ProductImportAdmin(admin.ModelAdmin):
    """Adding an import uploads its file and queues it; an import is never edited afterwards
    (its detail is read-only, with the rejected-rows report and a link to the progress page)."""

    form = ProductImportAdminForm
    list_display = (
        "__str__",
        "original_name",
        "status",
        "total_rows",
        "created_count",
        "updated_count",
        "unchanged_count",
        "rejected_count",
        "created_by",
        "created_at",
    )
    list_select_related = ("created_by",)
    list_filter = ("status", "created_at")
    search_fields = ("original_name",)
    date_hierarchy = "created_at"
    detail_fields = (
        "progress_page",
        "original_name",
        "stored_file",
        "status",
        "error",
        "total_rows",
        "processed_rows",
        "created_count",
        "updated_count",
        "unchanged_count",
        "rejected_count",
        "report",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProductImport]:
        queryset = super().get_queryset(request)
        # The report can hold a thousand rows: only the detail page needs it.
        url_name = getattr(request.resolver_match, "url_name", "") or ""
        return queryset if url_name.endswith("_change") else queryset.defer("rejected_rows")

    def get_fields(self, request: HttpRequest, obj: ProductImport | None = None):
        return self.detail_fields if obj else ("file",)

    def get_readonly_fields(self, request: HttpRequest, obj: ProductImport | None = None):
        return self.detail_fields if obj else ()

    def has_change_permission(self, request: HttpRequest, obj: ProductImport | None = None):
        return False  # the detail is shown read-only to anyone who may view imports

    def save_model(
        self, request: HttpRequest, obj: ProductImport, form: ProductImportAdminForm, change: bool
    ) -> None:
        upload = form.cleaned_data["file"]
        created = imports.create_product_import(file=upload, user=request.user)
        # What the admin's log entry and the redirect use.
        obj.pk, obj.original_name, obj.status = created.pk, created.original_name, created.status

    def response_add(
        self, request: HttpRequest, obj: ProductImport, post_url_continue: str | None = None
    ) -> HttpResponse:
        self.message_user(request, f"Import #{obj.pk} of {obj.original_name} is queued.")
        return HttpResponseRedirect(obj.get_absolute_url())

    @admin.display(description="progress page")
    def progress_page(self, obj: ProductImport) -> str:
        return format_html('<a href="{}">{}</a>', obj.get_absolute_url(), obj.get_absolute_url())

    @admin.display(description="stored as")
    def stored_file(self, obj: ProductImport) -> str:
        # A private file: no URL (the admin would link FileFields to one).
        return obj.file.name

    @admin.display(description="rejected rows")
    def report(self, obj: ProductImport) -> str:
        if not obj.rejected_rows:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((row.get("line"), row.get("sku"), row.get("reason")) for row in obj.rejected_rows),
        )
        more = obj.rejected_rows_not_listed
        return format_html(
            "<table><thead><tr><th>line</th><th>sku</th><th>reason</th></tr></thead>"
            "<tbody>{}</tbody></table>{}",
            rows,
            format_html("<p>…and {} more</p>", more) if more else "",
        )
