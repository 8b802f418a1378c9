from django.urls import path

from storefront.catalog import import_views, views

app_name = "catalog"
urlpatterns = [
    path("", views.product_listing_page, name="home"),
    path("products/", views.product_listing_page, name="product_list"),
    path("products/<slug:slug>/", views.product_detail_page, name="product_detail"),
    path("staff/products/import/", import_views.product_import_page, name="product_import"),
    path(
        "staff/products/import/<int:import_id>/",
        import_views.product_import_detail_page,
        name="product_import_detail",
    ),
    path(
        "staff/products/import/<int:import_id>/status.json",
        import_views.product_import_status,
        name="product_import_status",
    ),
]
