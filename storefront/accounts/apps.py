from typing import Any

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


def sync_staff_roles_after_migrate(sender: AppConfig, **kwargs: Any) -> None:
    """After every `migrate` (and a test's table flush): the staff roles exist, and Admins hold
    every permission, new models' included (storefront/accounts/roles.py).

    post_migrate is sent once per app with models, and Django creates that app's permissions on
    it: only the last app's signal finds them all.
    """
    if sender is not [c for c in apps.get_app_configs() if c.models_module is not None][-1]:
        return
    from storefront.accounts.roles import sync_staff_roles

    sync_staff_roles(apps=kwargs.get("apps") or apps)


class AccountsConfig(AppConfig):
    name = "storefront.accounts"
    label = "accounts"

    def ready(self) -> None:
        post_migrate.connect(sync_staff_roles_after_migrate, dispatch_uid="accounts-staff-roles")
