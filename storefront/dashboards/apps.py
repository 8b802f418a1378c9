from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "storefront.dashboards"
    label = "dashboards"

    def ready(self) -> None:
        from storefront.dashboards import signals  # noqa: F401 - connects the receivers
