"""Catalog API: the product listing (filters, sorts, cursor pages), product detail, and
product updates by staff."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from storefront.api import (
    ErrorSerializer,
    KeysetCursorPagination,
    SlugLookupField,
    StaffPermission,
    paginated_response,
)
from storefront.catalog import selectors, services
from storefront.catalog.forms import MAX_PRICE
from storefront.catalog.models import Category, Product

VALIDATION_ERROR = OpenApiResponse(
    OpenApiTypes.OBJECT, description="Invalid input: each field name maps to its messages."
)
BAD_CURSOR = OpenApiResponse(ErrorSerializer, description="The cursor is invalid.")
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No active product with this slug.")


class StockConflictSerializer(serializers.Serializer):
    """Schema of a stock 409: why, and the stock and version to start again from."""

    detail = serializers.ListField(child=serializers.CharField())
    stock = serializers.IntegerField()
    stock_version = serializers.IntegerField()

    class Meta:
        ref_name = "StockConflict"


def if_match_version(request: Request) -> int | None:
    """The stock_version in an If-Match header ("3", "\"3\"" or W/"3"); None without one."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise exceptions.ValidationError(
            {"If-Match": ['Give the product\'s stock_version, e.g. If-Match: "3".']}
        )
    return int(value)


def category_ids_for_slug(slug: str) -> list[int]:
    """The category with this slug and all categories below it; unknown slugs are a 400."""
    categories = selectors.category_list()
    category = next((c for c in categories if c.slug == slug), None)
    if category is None:
        raise exceptions.ValidationError({"category": [f"Unknown category “{slug}”."]})
    return selectors.category_with_descendant_ids(category=category, categories=categories)


def price_bound_field() -> serializers.DecimalField:
    # allow_null lets an empty `min_price=` from an HTML form mean "no bound".
    return serializers.DecimalField(
        max_digits=10,
        decimal_places=2,
        min_value=0,
        max_value=MAX_PRICE,
        required=False,
        allow_null=True,
    )


class ProductListApi(APIView):
    class InputSerializer(serializers.Serializer):
        q = serializers.CharField(
            required=False, allow_blank=True, max_length=200, help_text="Full-text search."
        )
        category = serializers.SlugField(
            required=False,
            allow_blank=True,
            max_length=120,
            help_text="Category slug; products of its child categories are included.",
        )
        min_price = price_bound_field()
        max_price = price_bound_field()
        # No "relevance" sort: cursors cannot page on a computed search rank.
        sort = serializers.ChoiceField(
            choices=[(key, selectors.SORT_LABELS[key]) for key in selectors.PRODUCT_SORTS],
            required=False,
            allow_blank=True,
            help_text="Defaults to newest first, also when searching.",
        )

        class Meta:
            ref_name = "ProductFilters"

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            low, high = attrs.get("min_price"), attrs.get("max_price")
            if low is not None and high is not None and low > high:
                raise serializers.ValidationError(
                    {"min_price": ["The minimum price must not be above the maximum price."]}
                )
            return attrs

    class OutputSerializer(serializers.Serializer):
        class CategorySerializer(serializers.Serializer):
            name = serializers.CharField()
            slug = serializers.SlugField()

            class Meta:
                ref_name = "ProductCategory"

        slug = serializers.SlugField()
        name = serializers.CharField()
        sku = serializers.CharField()
        price = serializers.DecimalField(max_digits=10, decimal_places=2)
        stock = serializers.IntegerField()
        in_stock = serializers.BooleanField()
        category = CategorySerializer()
        image = serializers.ImageField(allow_null=True, help_text="Absolute URL, or null.")
        url = serializers.HyperlinkedIdentityField(
            view_name="api-product-detail", lookup_field="slug"
        )
        created_at = serializers.DateTimeField()

        class Meta:
            ref_name = "Product"

    pagination_class = KeysetCursorPagination

    @extend_schema(
        operation_id="products_list",
        summary="List active products",
        parameters=[InputSerializer],
        responses={200: OutputSerializer(many=True), 400: VALIDATION_ERROR, 404: BAD_CURSOR},
    )
    def get(self, request: Request) -> Response:
        filters = self.InputSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        products = selectors.product_listing(
            category_ids=category_ids_for_slug(data["category"]) if data.get("category") else None,
            search=data.get("q", ""),
            min_price=data.get("min_price"),
            max_price=data.get("max_price"),
            # Always a named sort: given none, a search is ordered by its rank, and cursors
            # cannot page on a computed rank.
            sort=data.get("sort") or "newest",
        )
        return paginated_response(
            pagination_class=self.pagination_class,
            serializer_class=self.OutputSerializer,
            queryset=products,
            request=request,
            view=self,
        )


class ProductDetailApi(APIView):
    class OutputSerializer(ProductListApi.OutputSerializer):
        description = serializers.CharField()
        stock_version = serializers.IntegerField(
            help_text="Changes whenever the stock does: send it back (If-Match or stock_version) "
            "to set an absolute stock."
        )
        updated_at = serializers.DateTimeField()

        class Meta:
            ref_name = "ProductDetail"

    class UpdateSerializer(serializers.Serializer):
        name = serializers.CharField(required=False, max_length=200)
        description = serializers.CharField(required=False, allow_blank=True)
        price = serializers.DecimalField(
            required=False, max_digits=10, decimal_places=2, min_value=0, max_value=MAX_PRICE
        )
        stock = serializers.IntegerField(
            required=False,
            min_value=0,
            max_value=2_000_000_000,
            help_text="Absolute stock: needs the stock_version it was read at (this field or "
            "If-Match). Refused with a 409 if the stock changed since (a sale).",
        )
        stock_version = serializers.IntegerField(
            required=False, min_value=0, help_text="The stock_version `stock` was read at."
        )
        stock_delta = serializers.IntegerField(
            required=False,
            min_value=-2_000_000_000,
            max_value=2_000_000_000,
            help_text="Units to add (negative: to remove) to the stock as it is now; needs no "
            "version. A 409 if it would take the stock below zero.",
        )
        is_active = serializers.BooleanField(required=False)
        category = SlugLookupField(
            required=False, slug_field="slug", queryset=Category.objects.all()
        )

        class Meta:
            ref_name = "ProductUpdate"

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if "stock" in attrs and "stock_delta" in attrs:
                raise serializers.ValidationError(
                    {"stock_delta": ["Give either stock or stock_delta, not both."]}
                )
            if "stock_version" in attrs and "stock" not in attrs:
                raise serializers.ValidationError(
                    {"stock_version": ["stock_version goes with stock."]}
                )
            return attrs

    def get_permissions(self) -> list[BasePermission]:
        # Anyone reads; staff whose role may change products change them.
        if self.request.method == "PATCH":
            return [StaffPermission("catalog.change_product")]
        return [AllowAny()]

    @extend_schema(
        operation_id="products_retrieve",
        summary="One active product",
        parameters=[OpenApiParameter("slug", str, OpenApiParameter.PATH)],
        responses={200: OutputSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, slug: str) -> Response:
        try:
            product = selectors.product_detail(slug=slug)
        except Product.DoesNotExist:
            raise exceptions.NotFound("No product with that slug.") from None
        return Response(self.OutputSerializer(product, context={"request": request}).data)

    @extend_schema(
        operation_id="products_partial_update",
        summary="Change a product (staff only)",
        description="Stock has other writers (every sale takes some), so it is never written "
        "blindly: `stock_delta` adds to the stock as it is, and an absolute `stock` must carry "
        "the `stock_version` it was read at (body field or If-Match header). A stale version is "
        "a 409 with the current stock and version, and nothing changes.",
        parameters=[
            OpenApiParameter("slug", str, OpenApiParameter.PATH),
            OpenApiParameter(
                "If-Match",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="The product's stock_version (as read from GET), for `stock`; "
                "the same as the stock_version body field.",
            ),
        ],
        request=UpdateSerializer,
        responses={
            200: OutputSerializer,
            400: VALIDATION_ERROR,
            404: NOT_FOUND,
            409: OpenApiResponse(
                StockConflictSerializer,
                description="The stock changed since stock_version (a sale), or stock_delta "
                "would take it below zero; nothing changed.",
            ),
            428: OpenApiResponse(
                ErrorSerializer,
                description="`stock` was sent without the stock_version it was read at.",
            ),
        },
    )
    def patch(self, request: Request, slug: str) -> Response:
        product = selectors.product_for_update(slug=slug)
        if product is None:
            raise exceptions.NotFound("No product with that slug.")
        serializer = self.UpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if not data:
            fields = [*services.UPDATABLE_FIELDS, "stock_delta"]
            raise exceptions.ValidationError(
                {"detail": [f"Send at least one of: {', '.join(fields)}."]}
            )
        header_version = if_match_version(request)
        body_version = data.pop("stock_version", None)
        if None not in (header_version, body_version) and header_version != body_version:
            raise exceptions.ValidationError(
                {"stock_version": ["The If-Match header and stock_version disagree."]}
            )
        expected = body_version if body_version is not None else header_version
        try:
            product = services.update_product(
                product=product, expected_stock_version=expected, **data
            )
        except services.StockVersionRequired as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_428_PRECONDITION_REQUIRED)
        except services.StockConflict as exc:
            return Response(
                {"detail": [exc.message], "stock": exc.stock, "stock_version": exc.stock_version},
                status=status.HTTP_409_CONFLICT,
            )
        except DjangoValidationError as exc:
            raise exceptions.ValidationError(exc.message_dict) from None
        return Response(self.OutputSerializer(product, context={"request": request}).data)
