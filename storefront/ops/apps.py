from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "storefront.ops"
    label = "ops"
