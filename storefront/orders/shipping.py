"""The shipping address an order gets from the customer's profile."""

from __future__ import annotations

from storefront.accounts.models import User

# The profile's address fields in the order the profile form asks for them. Each becomes one
# line, so the checkout shows the address as the customer typed it (User.shipping_address
# puts the postal code before the city on one line, which is not what they entered).
PROFILE_ADDRESS_FIELDS = ("address_line", "city", "postal_code", "country")


def profile_shipping_address(*, user: User) -> str:
    """The profile's address, one non-blank field per line, in the profile's order."""
    lines = (str(getattr(user, field)).strip() for field in PROFILE_ADDRESS_FIELDS)
    return "\n".join(line for line in lines if line)
