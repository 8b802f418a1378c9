from django.contrib import admin

from storefront.catalog.models import Category, Product


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "parent")
    list_select_related = ("parent",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    autocomplete_fields = ("parent",)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
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
