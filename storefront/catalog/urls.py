from django.urls import path

from storefront.catalog import views

app_name = "catalog"
urlpatterns = [
    path("", views.product_listing_page, name="home"),
    path("products/", views.product_listing_page, name="product_list"),
    path("products/<slug:slug>/", views.product_detail_page, name="product_detail"),
]
