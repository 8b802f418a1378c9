"""Orders API: the caller's own orders (cursor pages, detail) and placing an order."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from storefront.api import (
    Conflict,
    ConflictErrorSerializer,
    ErrorSerializer,
    KeysetCursorPagination,
    paginated_response,
)
from storefront.catalog.selectors import active_product_ids_by_slug
from storefront.orders import selectors, services
from storefront.orders.models import Order

# Distinct products per order: far above any real basket, and it bounds one request's work.
MAX_ORDER_ITEMS = 50

NOT_AUTHENTICATED = OpenApiResponse(ErrorSerializer, description="No valid token or session.")


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
        "changes. The new order's API address is in the Location header.",
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            400: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="Invalid input (also malformed JSON): field names map to messages.",
            ),
            401: NOT_AUTHENTICATED,
            409: OpenApiResponse(
                ConflictErrorSerializer,
                description="Not enough stock (or a product stopped being sold); nothing changed.",
            ),
            415: OpenApiResponse(ErrorSerializer, description="The body is not JSON."),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            order = services.place_order(
                user=request.user,
                items=order_items_for(data["items"]),
                shipping_name=data.get("shipping_name", ""),
                shipping_address=data.get("shipping_address", ""),
            )
        except services.CheckoutError as exc:
            # Input was validated above, so what remains is the stock or catalog having
            # changed under the client: a conflict with current state, not a bad request.
            raise Conflict({"detail": exc.messages}) from None
        order = selectors.order_detail_for(user=request.user, number=order.number)
        location = request.build_absolute_uri(
            reverse("api-order-detail", kwargs={"number": order.number})
        )
        return Response(
            self.OutputSerializer(order, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": location},
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
