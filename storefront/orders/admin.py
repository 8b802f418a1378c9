from django.contrib import admin

from storefront.orders.models import Order, OrderLine


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
