from django.urls import path

from storefront.dashboards import views

app_name = "dashboards"
urlpatterns = [
    path("dashboard/", views.customer_dashboard_page, name="customer"),
    path("staff/dashboard/", views.staff_dashboard_page, name="staff"),
    path("staff/orders/export.csv", views.order_export_csv, name="order_export"),
    path("staff/orders/exports/", views.order_exports_page, name="order_exports"),
    path(
        "staff/orders/exports/<int:export_id>/download/",
        views.order_export_download,
        name="order_export_download",
    ),
]
