"""The demo accounts `make run` prints: a customer with a year of orders, and a staff user."""

from __future__ import annotations

from storefront.accounts import services as account_services
from storefront.accounts.models import User
from storefront.accounts.roles import ADMINS
from storefront.seeding.shoppers import COUNTRY

# (username, password) of the demo accounts.
DEMO_CUSTOMER = ("demo", "demo-shopper-2026")
DEMO_STAFF = ("staff", "demo-staff-2026")

DEMO_CUSTOMER_PROFILE = {
    "email": "demo@example.com",
    "first_name": "Alex",
    "last_name": "Morgan",
    "full_name": "Alex Morgan",
    "phone": "+44 7700 900123",
    "address_line": "21 Harbour Street",
    "city": "Bristol",
    "postal_code": "BS1 4DJ",
    "country": COUNTRY,
    "marketing_opt_in": True,
}
DEMO_STAFF_PROFILE = {
    "email": "staff@example.com",
    "first_name": "Sam",
    "last_name": "Okafor",
    "full_name": "Sam Okafor",
}


def ensure_demo_accounts() -> tuple[User, User]:
    """The demo customer and demo staff user, created with hashed passwords if missing.

    Existing accounts are left as they are: someone may have changed their password on purpose.
    """
    customer = User.objects.filter(username=DEMO_CUSTOMER[0]).first()
    if customer is None:
        customer = account_services.user_create(
            username=DEMO_CUSTOMER[0], password=DEMO_CUSTOMER[1], **DEMO_CUSTOMER_PROFILE
        )
    staff = User.objects.filter(username=DEMO_STAFF[0]).first()
    if staff is None:
        # The role says what the demo staff does, should the superuser flag ever be dropped.
        staff = account_services.user_create(
            username=DEMO_STAFF[0],
            password=DEMO_STAFF[1],
            superuser=True,
            roles=[ADMINS],
            **DEMO_STAFF_PROFILE,
        )
    return customer, staff
