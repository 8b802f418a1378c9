from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "storefront.catalog"
    label = "catalog"

    def ready(self) -> None:
        from storefront.catalog import signals  # noqa: F401 (connects the cache invalidation)
