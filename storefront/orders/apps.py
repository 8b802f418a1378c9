from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "storefront.orders"
    label = "orders"

    def ready(self) -> None:
        from storefront.orders import signals  # noqa: F401 (connects the cache invalidation)
