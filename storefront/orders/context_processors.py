from __future__ import annotations

from django.http import HttpRequest

from storefront.orders.cart import SESSION_KEY


def cart_summary(request: HttpRequest) -> dict[str, int]:
    """The item count in the header; read lazily from the session, no database query."""
    session = getattr(request, "session", None)
    if session is None:
        return {"cart_item_count": 0}
    return {"cart_item_count": sum(int(q) for q in session.get(SESSION_KEY, {}).values())}
