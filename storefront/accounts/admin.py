from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from storefront.accounts.models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "full_name", "city", "is_staff", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active", "marketing_opt_in", "date_joined")
    search_fields = ("username", "email", "full_name")
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        (
            "Profile",
            {
                "fields": (
                    "full_name",
                    "phone",
                    "address_line",
                    "city",
                    "postal_code",
                    "country",
                    "marketing_opt_in",
                )
            },
        ),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "password1", "password2")}),
    )
    show_full_result_count = False
