from django.urls import path

from storefront.orders import (
    converters,  # noqa: F401 (registers order_number)
    views,
)

app_name = "orders"
urlpatterns = [
    path("cart/", views.cart_page, name="cart"),
    path("cart/add/<int:product_id>/", views.cart_add, name="cart_add"),
    path("cart/token/", views.cart_token, name="cart_token"),
    path("cart/update/<int:product_id>/", views.cart_update, name="cart_update"),
    path("cart/remove/<int:product_id>/", views.cart_remove, name="cart_remove"),
    path("checkout/", views.checkout_page, name="checkout"),
    path("orders/", views.order_history_page, name="history"),
    path("orders/<order_number:number>/", views.order_detail_page, name="detail"),
]
