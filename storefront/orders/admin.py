from django.contrib import admin

from storefront.orders.models import EmailDelivery, Order, OrderLine


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    fields = ("product", "product_name", "product_sku", "unit_price", "quantity")
    raw_id_fields = ("product",)


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("number", "user", "status", "item_count", "total", "created_at")
    list_select_related = ("user",)
    list_filter = ("status", "created_at")
    search_fields = ("number", "user__username", "user__email")
    raw_id_fields = ("user",)
    readonly_fields = ("created_at",)
    date_hierarchy = "created_at"
    inlines = [OrderLineInline]
    show_full_result_count = False
    list_per_page = 50


@admin.register(OrderLine)
class OrderLineAdmin(admin.ModelAdmin):
    list_display = ("order", "product_name", "product_sku", "unit_price", "quantity")
    list_select_related = ("order",)
    search_fields = ("order__number", "product_sku", "product_name")
    raw_id_fields = ("order", "product")
    show_full_result_count = False
    list_per_page = 50


@admin.register(EmailDelivery)
class EmailDeliveryAdmin(admin.ModelAdmin):
    """Read-only: rows are written by the email tasks alone (their idempotency records)."""

    list_display = ("idempotency_key", "kind", "status", "attempts", "sent_at", "created_at")
    list_filter = ("status", "kind")
    search_fields = ("idempotency_key", "order__number")
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_per_page = 50

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False
