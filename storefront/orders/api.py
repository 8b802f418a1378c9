"""Orders API: the caller's own orders (cursor pages, detail) and placing an order."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from storefront.api import (
    Conflict,
    ConflictErrorSerializer,
    ErrorSerializer,
    KeysetCursorPagination,
    StaffPermission,
    paginated_response,
)
from storefront.catalog.selectors import active_product_ids_by_slug
from storefront.orders import selectors, services
from storefront.orders.models import Order

# Distinct products per order: far above any real basket, and it bounds one request's work.
MAX_ORDER_ITEMS = 50

NOT_AUTHENTICATED = OpenApiResponse(ErrorSerializer, description="No valid token or session.")

IDEMPOTENCY_KEY_MAX_LENGTH = 100
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="A key of your choosing (a UUID, say; 1 to 100 visible ASCII characters), new "
    "for each order you mean to place. Retrying with the same key and the same body never "
    "places a second order: the order placed by the first request comes back, again as a 201, "
    "with an `Idempotent-Replayed: true` header. The same key with another body is a 409. Keys "
    "are per customer; a request refused for stock or input placed nothing and may be retried "
    "with its key.",
)
REPLAYED_HEADER = "Idempotent-Replayed"


def idempotency_key_from(request: Request) -> str:
    """The request's Idempotency-Key header ("" without one); a malformed key is a 400."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return ""
    if not (
        0 < len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH
        and key.isascii()
        and key.isprintable()
        and " " not in key
    ):
        raise exceptions.ValidationError(
            {
                "Idempotency-Key": [
                    f"Give 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} visible ASCII characters, e.g. a UUID."
                ]
            }
        )
    return key


def request_fingerprint(data: dict[str, Any]) -> str:
    """SHA-256 of the validated body in canonical form: defaults filled in, items in product
    order (one item per product is enforced), keys sorted. Two bodies asking for the same order
    have the same fingerprint, however their JSON was spelled."""
    canonical = {
        "items": sorted(
            ({"product": item["product"], "quantity": item["quantity"]} for item in data["items"]),
            key=lambda item: item["product"],
        ),
        "shipping_name": data.get("shipping_name", ""),
        "shipping_address": data.get("shipping_address", ""),
    }
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def order_items_for(items: list[dict[str, Any]]) -> list[services.OrderItem]:
    """The validated items as service input; unknown or inactive slugs are a 400 naming them.

    Errors are keyed by item index, the shape DRF gives nested list errors, so a client can
    point at the offending line.
    """
    ids = active_product_ids_by_slug(slugs=[item["product"] for item in items])
    errors = {
        index: {"product": [f"No product “{item['product']}” is sold."]}
        for index, item in enumerate(items)
        if item["product"] not in ids
    }
    if errors:
        raise exceptions.ValidationError({"items": errors})
    return [
        services.OrderItem(product_id=ids[item["product"]], quantity=item["quantity"])
        for item in items
    ]


class OrderListCreateApi(APIView):
    permission_classes = (IsAuthenticated,)
    # Orders are nested JSON that form encodings cannot express: those get a clear 415.
    parser_classes = (JSONParser,)
    pagination_class = KeysetCursorPagination

    class InputSerializer(serializers.Serializer):
        class ItemSerializer(serializers.Serializer):
            product = serializers.SlugField(max_length=220, help_text="Product slug.")
            quantity = serializers.IntegerField(
                min_value=1, max_value=settings.STOREFRONT_MAX_LINE_QUANTITY
            )

            class Meta:
                ref_name = "OrderItem"

        items = ItemSerializer(many=True, allow_empty=False, max_length=MAX_ORDER_ITEMS)
        shipping_name = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=150,
            help_text="Defaults to the customer's name.",
        )
        shipping_address = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=1000,
            help_text="Defaults to the address in the customer's profile.",
        )

        class Meta:
            ref_name = "OrderCreate"

        def validate_items(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            # One item per product, so the per-product quantity limit cannot be split around.
            seen: set[str] = set()
            errors: dict[int, dict[str, list[str]]] = {}
            for index, item in enumerate(items):
                slug = item["product"]
                if slug in seen:
                    errors[index] = {
                        "product": [f"“{slug}” is listed twice; give one item per product."]
                    }
                seen.add(slug)
            if errors:
                raise serializers.ValidationError(errors)
            return items

    class OutputSerializer(serializers.Serializer):
        class LineSerializer(serializers.Serializer):
            product_name = serializers.CharField()
            product_sku = serializers.CharField()
            product = serializers.SlugField(
                source="product.slug",
                allow_null=True,
                help_text="Product slug; null once the product has been deleted.",
            )
            unit_price = serializers.DecimalField(max_digits=10, decimal_places=2)
            quantity = serializers.IntegerField()
            line_total = serializers.DecimalField(max_digits=12, decimal_places=2)

            class Meta:
                ref_name = "OrderLine"

        number = serializers.CharField()
        status = serializers.ChoiceField(choices=Order.Status.choices)
        total = serializers.DecimalField(max_digits=12, decimal_places=2)
        item_count = serializers.IntegerField()
        shipping_name = serializers.CharField()
        shipping_address = serializers.CharField()
        created_at = serializers.DateTimeField()
        url = serializers.HyperlinkedIdentityField(
            view_name="api-order-detail", lookup_field="number"
        )
        lines = LineSerializer(many=True)

        class Meta:
            ref_name = "Order"

    @extend_schema(
        operation_id="orders_list",
        summary="The caller's orders, newest first",
        responses={
            200: OutputSerializer(many=True),
            401: NOT_AUTHENTICATED,
            404: OpenApiResponse(ErrorSerializer, description="The cursor is invalid."),
        },
    )
    def get(self, request: Request) -> Response:
        return paginated_response(
            pagination_class=self.pagination_class,
            serializer_class=self.OutputSerializer,
            queryset=selectors.orders_with_lines_for(user=request.user),
            request=request,
            view=self,
        )

    @extend_schema(
        operation_id="orders_create",
        summary="Place an order",
        description="All or nothing: every item is ordered and its stock taken, or nothing "
        "changes. The new order's API address is in the Location header.\n\n"
        "Send an `Idempotency-Key` header to make retries safe: a retry with the same key and "
        "body (after a timeout, say) gets the order the first request placed, as a 201 with "
        "`Idempotent-Replayed: true`, and never places a second one, even when both requests "
        "arrive at once.",
        parameters=[IDEMPOTENCY_KEY],
        request=InputSerializer,
        responses={
            201: OpenApiResponse(
                OutputSerializer,
                description="The order placed; or, for a retry of an Idempotency-Key already "
                "used with the same body, the order that request placed (header "
                "`Idempotent-Replayed: true`).",
            ),
            400: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="Invalid input (also malformed JSON): field names map to messages.",
            ),
            401: NOT_AUTHENTICATED,
            409: OpenApiResponse(
                ConflictErrorSerializer,
                description="Not enough stock (or a product stopped being sold), or the "
                "Idempotency-Key was already used with another body; nothing changed.",
            ),
            415: OpenApiResponse(ErrorSerializer, description="The body is not JSON."),
        },
    )
    def post(self, request: Request) -> Response:
        key = idempotency_key_from(request)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        replayed = False
        try:
            order = services.place_order(
                user=request.user,
                items=order_items_for(data["items"]),
                shipping_name=data.get("shipping_name", ""),
                shipping_address=data.get("shipping_address", ""),
                idempotency_key=key,
                request_fingerprint=request_fingerprint(data) if key else "",
            )
        except services.AlreadyPlaced as exc:
            if not exc.same_request:
                raise Conflict(
                    {
                        "detail": [
                            "This Idempotency-Key was already used for another request (order "
                            f"{exc.order.number}); use a new key for a new order."
                        ]
                    }
                ) from None
            # A retry: the first request's order, as that request answered (a 201: clients
            # written for the first answer need no other case; the header tells them apart).
            order, replayed = exc.order, True
        except services.CheckoutError as exc:
            # Input was validated above, so what remains is the stock or catalog having
            # changed under the client: a conflict with current state, not a bad request.
            raise Conflict({"detail": exc.messages}) from None
        order = selectors.order_detail_for(user=request.user, number=order.number)
        location = request.build_absolute_uri(
            reverse("api-order-detail", kwargs={"number": order.number})
        )
        headers = {"Location": location}
        if replayed:
            headers[REPLAYED_HEADER] = "true"
        return Response(
            self.OutputSerializer(order, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
            headers=headers,
        )


class OrderDetailApi(APIView):
    permission_classes = (IsAuthenticated,)

    OutputSerializer = OrderListCreateApi.OutputSerializer

    @extend_schema(
        operation_id="orders_retrieve",
        summary="One of the caller's orders",
        parameters=[OpenApiParameter("number", str, OpenApiParameter.PATH)],
        responses={
            200: OutputSerializer,
            401: NOT_AUTHENTICATED,
            404: OpenApiResponse(ErrorSerializer, description="No such order of the caller's."),
        },
    )
    def get(self, request: Request, number: str) -> Response:
        try:
            order = selectors.order_detail_for(user=request.user, number=number)
        except Order.DoesNotExist:
            # Someone else's order is "not found" too: its existence is not the caller's business.
            raise exceptions.NotFound("No order with that number.") from None
        return Response(self.OutputSerializer(order, context={"request": request}).data)


class OrderCancelApi(APIView):
    """Staff cancel an order: its lines go back to stock and the sales figures follow.

    The same service as the admin's action (services.cancel_orders). Cancelling twice is
    harmless: the second call answers the cancelled order again, restocking nothing.
    """

    OutputSerializer = OrderListCreateApi.OutputSerializer

    def get_permissions(self) -> list[BasePermission]:
        return [StaffPermission("orders.change_order")]

    @extend_schema(
        operation_id="orders_cancel",
        summary="Cancel an order (staff whose role may change orders)",
        request=None,
        parameters=[OpenApiParameter("number", str, OpenApiParameter.PATH)],
        responses={
            200: OutputSerializer,
            401: NOT_AUTHENTICATED,
            403: OpenApiResponse(ErrorSerializer, description="Not staff, or the role lacks it."),
            404: OpenApiResponse(ErrorSerializer, description="No order with that number."),
            409: OpenApiResponse(
                ConflictErrorSerializer, description="Shipped or delivered: nothing to restock."
            ),
        },
    )
    def post(self, request: Request, number: str) -> Response:
        try:
            order = selectors.order_by_number(number=number)
        except Order.DoesNotExist:
            raise exceptions.NotFound("No order with that number.") from None
        result = services.cancel_orders(order_ids=[order.pk])
        if result.refused:
            raise Conflict(
                {
                    "detail": [
                        f"Order {order.number} is {order.get_status_display().lower()}: its goods "
                        "have left, so it cannot be cancelled."
                    ]
                }
            )
        order.refresh_from_db(fields=["status"])
        return Response(self.OutputSerializer(order, context={"request": request}).data)
