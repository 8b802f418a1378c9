from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from storefront import caching
from storefront.catalog import imports
from storefront.catalog.forms import ProductImportAdminForm
from storefront.catalog.models import Category, Product, ProductImport
from storefront.catalog.services import stock_changed_message


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


class StockInput(forms.NumberInput):
    """The stock box, followed by a hidden input carrying the stock_version the page was
    rendered with. The change list renders only the list_editable fields' widgets, so the
    version has to travel inside the stock cell to reach the save."""

    version_name = "stock_version"
    version_value: Any = None

    def render(self, name: str, value: Any, attrs: Any = None, renderer: Any = None) -> SafeString:
        box = super().render(name, value, attrs, renderer)
        version = forms.HiddenInput().render(self.version_name, self.version_value, None, renderer)
        return mark_safe(box + version)  # noqa: S308 - both halves are rendered, escaped widgets


class ProductAdminForm(forms.ModelForm):
    """Stock edits by staff are optimistic: the form carries the stock the page showed
    (show_hidden_initial) and the stock_version it was rendered with.

    Why optimistic and not a delta: staff type the number they counted, an absolute value, and
    a conflict is rare and best resolved by a person who sees the new figure. The view locks the
    product row before the form is validated (ProductAdmin.get_object, changelist_view), so the
    check below and the save see the same stock, and a checkout waits for this request
    (milliseconds) rather than being undone by it:

    * stock left as the page showed it (e.g. only the price was edited): the stock is not
      written at all (it is set back to the current value), whatever sold meanwhile;
    * stock changed and the version is still the rendered one: saved, the version bumped;
    * stock changed but the version moved (a sale, a cancellation, an import, another edit):
      a form error naming the current stock, and nothing is saved.
    """

    stock_version = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    class Meta:
        model = Product
        fields = (
            "name",
            "slug",
            "sku",
            "description",
            "price",
            "stock",
            "category",
            "image",
            "is_active",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes_stock = False
        if not self.is_bound:
            self.initial["stock_version"] = self.instance.stock_version
        stock = self.fields.get("stock")
        if stock is not None and self.instance.pk is not None:
            stock.show_hidden_initial = True
            widget = StockInput(attrs=stock.widget.attrs)
            widget.version_name = self.add_prefix("stock_version")
            widget.version_value = self["stock_version"].value()
            stock.widget = widget

    def _rendered_stock(self) -> int | None:
        """The stock the page showed (its hidden initial input), None if it was not sent."""
        bound = self["stock"]
        raw = bound.field.hidden_widget().value_from_datadict(
            self.data, self.files, bound.html_initial_name
        )
        try:
            return bound.field.to_python(raw)
        except ValidationError:
            return None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.instance.pk is None or "stock" not in self.fields:
            return cleaned
        wanted = cleaned.get("stock")
        if wanted is None:
            return cleaned  # the field's own error is shown
        current = self.instance.stock  # read under the row lock (see the class docstring)
        rendered = self._rendered_stock()
        if wanted == current or (rendered is not None and wanted == rendered):
            # Nothing to change, or the stock was not edited: keep the current stock.
            cleaned["stock"] = current
            return cleaned
        if cleaned.get("stock_version") != self.instance.stock_version:
            self.add_error("stock", stock_changed_message(stock=current))
            return cleaned
        self.writes_stock = True
        return cleaned


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    form = ProductAdminForm
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

    def get_fields(self, request: HttpRequest, obj: Product | None = None) -> list[str]:
        # The version is rendered by the stock widget (StockInput), not as a row of its own.
        return [f for f in super().get_fields(request, obj) if f != "stock_version"]

    def get_changelist_form(self, request: HttpRequest, **kwargs: Any) -> type[forms.ModelForm]:
        return super().get_changelist_form(request, form=ProductAdminForm, **kwargs)

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Product | None:
        obj = super().get_object(request, object_id, from_field)
        if obj is None or request.method != "POST":
            return obj
        # A POST to the change (or delete) view runs in the view's transaction: lock the row
        # and re-read it, so the form's stock check and the save see the stock as it is until
        # the commit (the checkout takes the same lock).
        return self.get_queryset(request).select_for_update(of=("self",)).filter(pk=obj.pk).first()

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not (request.method == "POST" and "_save" in request.POST):
            return super().changelist_view(request, extra_context)
        # list_editable: validate and save in one transaction, with the edited rows locked in id
        # order first (the checkout's order, so the two never deadlock); Django then loads
        # them, so each form checks the stock it will save against (ProductAdminForm).
        ids = [pk for pk in self._get_edited_object_pks(request, "form") if pk.isdigit()]
        with transaction.atomic():
            list(
                Product.objects.select_for_update()
                .filter(pk__in=ids)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            return super().changelist_view(request, extra_context)

    def save_model(
        self, request: HttpRequest, obj: Product, form: ProductAdminForm, change: bool
    ) -> None:
        if change and form.writes_stock:
            obj.stock_version += 1
        super().save_model(request, obj, form, change)


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
