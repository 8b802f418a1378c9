from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "storefront.dashboards"
    label = "dashboards"
