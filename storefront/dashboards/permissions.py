from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

View = Callable[..., HttpResponse]


def staff_permission_required(permission: str, *, area: str) -> Callable[[View], View]:
    """For staff whose role grants `permission` ("app_label.codename", see
    storefront/accounts/roles.py); `area` names what it opens, for the 403 message.

    Anonymous users go to the login page; signed-in users get 403 with a message saying what
    is missing, not a login loop. (Django's `staff_member_required` sends everyone to the admin
    login, and its `permission_required` sends signed-in users back to the login page.)
    """

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user.is_staff:
                raise PermissionDenied("This page is for staff only.")
            if not user.has_perm(permission):
                raise PermissionDenied(
                    f"Your staff role does not include {area} (permission “{permission}”): "
                    "ask an admin to add you to a role that does."
                )
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
