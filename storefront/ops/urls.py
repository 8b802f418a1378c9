from django.urls import path

from storefront.ops import ops_views

app_name = "ops"
urlpatterns = [
    path("staff/ops/", ops_views.operations_page, name="operations"),
    path("staff/ops.json", ops_views.operations_json, name="operations_json"),
]
