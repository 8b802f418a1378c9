"""Orders in the admin.

What an order is made of (its lines, and the totals and sales figures derived from them) is
read-only here: lines are a snapshot of the checkout, and editing a quantity or a price would
leave the order's total, the stock and the dashboard's sales tables wrong. Staff change an
order's status and shipping details only; cancelling (the "Cancel selected orders" action, or
the status field set to Cancelled) goes through services.cancel_orders, which returns the lines
to stock and takes the order out of the sales tables. A cancelled order stays cancelled.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from storefront.orders import services
from storefront.orders.models import EmailDelivery, Order, OrderLine


def _numbers(orders: list[Order]) -> str:
    return ", ".join(order.number for order in orders)


@admin.action(
    description="Cancel selected orders (their items go back to stock)", permissions=["change"]
)
def cancel_selected_orders(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Order]
) -> None:
    result = services.cancel_orders(order_ids=queryset.values_list("pk", flat=True))
    if result.cancelled:
        modeladmin.message_user(
            request,
            f"Cancelled {len(result.cancelled)} order(s), their items back in stock: "
            f"{_numbers(result.cancelled)}.",
            messages.SUCCESS,
        )
    if result.already_cancelled:
        modeladmin.message_user(
            request,
            f"Already cancelled, left as they were: {_numbers(result.already_cancelled)}.",
            messages.INFO,
        )
    if result.refused:
        modeladmin.message_user(
            request,
            "Shipped or delivered orders cannot be cancelled (their goods have left): "
            f"{_numbers(result.refused)}.",
            messages.WARNING,
        )


class OrderAdminForm(forms.ModelForm):
    """Status changes that the stock would not follow are refused: a cancelled order cannot be
    reopened (its stock was returned and may be sold again: place a new order instead), and a
    shipped or delivered order cannot be cancelled. The status checked is the one locked by
    OrderAdmin.get_object, so a cancellation made since the page opened is seen."""

    class Meta:
        model = Order
        fields = ("status", "shipping_name", "shipping_address")

    def clean_status(self) -> str:
        status = self.cleaned_data["status"]
        current = self.instance.status
        if status == current:
            return status
        if current == Order.Status.CANCELLED:
            raise forms.ValidationError(
                "This order is cancelled and its items went back to stock: it cannot be "
                "reopened. Place a new order instead."
            )
        if status == Order.Status.CANCELLED and current not in Order.CANCELLABLE_STATUSES:
            raise forms.ValidationError(
                f"A {self.instance.get_status_display().lower()} order cannot be cancelled: "
                "its goods have left."
            )
        return status


class OrderLineInline(admin.TabularInline):
    """Read-only: a line is what the customer bought (see the module docstring)."""

    model = OrderLine
    extra = 0
    fields = ("product", "product_name", "product_sku", "unit_price", "quantity")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    form = OrderAdminForm
    actions = [cancel_selected_orders]
    list_display = ("number", "user", "status", "item_count", "total", "created_at")
    list_select_related = ("user",)
    list_filter = ("status", "created_at")
    search_fields = ("number", "user__username", "user__email")
    fields = (
        "number",
        "user",
        "status",
        "total",
        "item_count",
        "shipping_name",
        "shipping_address",
        "created_at",
    )
    # Derived from the lines (and counted in the sales tables), or the order's identity.
    readonly_fields = ("number", "user", "total", "item_count", "created_at")
    date_hierarchy = "created_at"
    inlines = [OrderLineInline]
    show_full_result_count = False
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Orders are placed by the checkout, which takes their stock and counts their sales.
        return False

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Order | None:
        obj = super().get_object(request, object_id, from_field)
        if obj is None or request.method != "POST":
            return obj
        # In the change view's transaction: lock the order, so the status the form checks is
        # the status until the save (a concurrent cancellation waits, then sees ours).
        return self.get_queryset(request).select_for_update(of=("self",)).filter(pk=obj.pk).first()

    def save_model(
        self, request: HttpRequest, obj: Order, form: OrderAdminForm, change: bool
    ) -> None:
        cancelling = (
            change
            and "status" in form.changed_data
            and obj.status == Order.Status.CANCELLED
            and form.initial.get("status") != Order.Status.CANCELLED
        )
        if not cancelling:
            super().save_model(request, obj, form, change)
            return
        # Save the other fields with the status as it was, then cancel through the service:
        # it restocks the lines and recomputes the sales tables.
        obj.status = form.initial["status"]
        super().save_model(request, obj, form, change)
        services.cancel_orders(order_ids=[obj.pk])
        obj.status = Order.Status.CANCELLED


@admin.register(OrderLine)
class OrderLineAdmin(admin.ModelAdmin):
    """Read-only, like the inline: order lines are never edited, added or deleted here."""

    list_display = ("order", "product_name", "product_sku", "unit_price", "quantity")
    list_select_related = ("order",)
    search_fields = ("order__number", "product_sku", "product_name")
    show_full_result_count = False
    list_per_page = 50

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(EmailDelivery)
class EmailDeliveryAdmin(admin.ModelAdmin):
    """Read-only: rows are written by the email tasks alone (their idempotency records)."""

    list_display = ("idempotency_key", "kind", "status", "attempts", "sent_at", "created_at")
    list_filter = ("status", "kind")
    search_fields = ("idempotency_key", "order__number")
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_per_page = 50

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False
