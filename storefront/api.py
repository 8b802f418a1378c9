"""Site-wide API pieces: error handling, keyset cursor pagination, shared schema components."""

from __future__ import annotations

import json
from base64 import b64decode
from typing import Any
from urllib import parse

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import slug_unicode_re
from django.db.models import Model, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from storefront.error_pages import NO_API_ENDPOINT
from storefront.keyset import Keyset


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus Django ValidationErrors from services mapped to 400 with messages."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError({"detail": exc.messages})
    return drf_exception_handler(exc, context)


class Conflict(exceptions.APIException):
    """The request is valid but the current state forbids it (e.g. not enough stock)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class StaffPermission(BasePermission):
    """Staff whose role grants `permission` ("app_label.codename", storefront/accounts/roles.py).

    An instance per view: `get_permissions` returns `[StaffPermission("catalog.change_product")]`.
    Anonymous callers get DRF's 401; signed-in ones a 403 saying what is missing.
    """

    def __init__(self, permission: str) -> None:
        self.permission = permission
        self.message = "This is for staff only."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff):
            return False
        if not user.has_perm(self.permission):
            self.message = f"Your staff role does not include the “{self.permission}” permission."
            return False
        return True


class SlugLookupField(serializers.SlugRelatedField):
    """SlugRelatedField that checks the value looks like a slug before it queries.

    SlugRelatedField hands any string to the database, NUL bytes included, which PostgreSQL
    refuses with an error (a 500 found by schemathesis) where it should find nothing. A value
    that is not a slug can never match: it gets the field's usual "does not exist" 400.
    """

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str) or not slug_unicode_re.fullmatch(data):
            self.fail("does_not_exist", slug_name=self.slug_field, value=str(data)[:100])
        return super().to_internal_value(data)


class ErrorSerializer(serializers.Serializer):
    """Schema of the `{"detail": "..."}` body of 401, 403, 404, 405 and 415 responses."""

    detail = serializers.CharField()

    class Meta:
        ref_name = "Error"


class ConflictErrorSerializer(serializers.Serializer):
    """Schema of a 409 body: every reason the request could not be carried out."""

    detail = serializers.ListField(child=serializers.CharField())

    class Meta:
        ref_name = "ConflictError"


class KeysetCursorPagination(CursorPagination):
    """DRF's cursor links and schema, paged by keyset (storefront/keyset.py) on every column of
    the queryset's own ordering.

    DRF's CursorPagination positions on the first ordering column plus an offset, which
    degrades when many rows share that value (a thousand products at one price) and silently
    breaks past `offset_cutoff`. Selectors here order by columns ending in a unique one, so the
    whole tuple identifies a row: a page is simply "the rows after this tuple" (one indexed range
    query, no offsets), and pagination follows whichever sort the selector applied. The HTML
    pages seek the same way; only the cursor's encoding differs (DRF's base64 `?cursor=` here).
    """

    page_size = settings.STOREFRONT_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = 100
    # Not used: the ordering is read from the queryset the selector returned.
    ordering = ()

    def paginate_queryset(
        self, queryset: QuerySet, request: Request, view: APIView | None = None
    ) -> list[Model]:
        self.request = request
        self.page_size = self.get_page_size(request)
        self.base_url = request.build_absolute_uri()
        self.keyset = Keyset.of(queryset)
        self.cursor = self.decode_cursor(request)
        reverse = bool(self.cursor and self.cursor.reverse)
        position = self._decode_position(self.cursor.position) if self.cursor else None
        # One row more than the page tells whether another page follows, without a COUNT.
        rows = list(
            self.keyset.page_after(queryset, position, backwards=reverse)[: self.page_size + 1]
        )
        more = len(rows) > self.page_size
        self.page = rows[: self.page_size]
        if reverse:
            self.page.reverse()
            self.has_previous, self.has_next = more, position is not None
        else:
            self.has_previous, self.has_next = position is not None, more
        self.display_page_controls = self.has_previous or self.has_next
        return self.page

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        return self._link(reverse=False, row=self.page[-1] if self.page else None)

    def get_previous_link(self) -> str | None:
        if not self.has_previous:
            return None
        return self._link(reverse=True, row=self.page[0] if self.page else None)

    def decode_cursor(self, request: Request) -> Cursor | None:
        """The request's cursor; anything this class did not issue is an invalid cursor.

        Stricter than DRF's, which reads undecodable base64 as "no cursor" and serves page one.
        """
        encoded = request.query_params.get(self.cursor_query_param, "")
        if not encoded:
            return None
        try:
            tokens = parse.parse_qs(
                b64decode(encoded.encode("ascii"), validate=True).decode("ascii"),
                strict_parsing=True,
            )
            reverse = {"0": False, "1": True}[tokens.get("r", ["0"])[0]]
            [position] = tokens["p"]
        except (ValueError, KeyError):
            raise exceptions.NotFound(self.invalid_cursor_message) from None
        return Cursor(offset=0, reverse=reverse, position=position)

    def _link(self, *, reverse: bool, row: Model | None) -> str:
        # An empty page (its rows were deleted since the cursor was issued) keeps the position
        # of the cursor that led to it, so the client can still page on.
        position = self._encode_position(row) if row is not None else self.cursor.position
        return self.encode_cursor(Cursor(offset=0, reverse=reverse, position=position))

    def _encode_position(self, row: Model) -> str:
        # The ordering travels with the values: a cursor taken from one sort means nothing
        # under another, and is refused rather than silently misread.
        position = {"o": list(self.keyset.ordering), "v": self.keyset.position_of(row)}
        return json.dumps(position, separators=(",", ":"))

    def _decode_position(self, encoded: str) -> list[Any]:
        """The cursor's values as Python values; anything tampered with is an invalid cursor."""
        try:
            position = json.loads(encoded)
            if not isinstance(position, dict) or position.get("o") != list(self.keyset.ordering):
                raise ValueError("cursor from another ordering")
            return self.keyset.values_from(position.get("v"))
        except (ValueError, RecursionError):
            raise exceptions.NotFound(self.invalid_cursor_message) from None


def paginated_response(
    *,
    pagination_class: type[KeysetCursorPagination],
    serializer_class: type[serializers.Serializer],
    queryset: QuerySet,
    request: Request,
    view: APIView,
) -> Response:
    """One page of `queryset` rendered with `serializer_class`, with next/previous links."""
    paginator = pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    serializer = serializer_class(page, many=True, context={"request": request})
    return paginator.get_paginated_response(serializer.data)


@extend_schema(exclude=True)
class ApiNotFound(APIView):
    """Unknown paths under /api/ answer in JSON like the rest of the API, not with an HTML page."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    # Set per route with as_view(detail=...), e.g. for a malformed product slug.
    detail = NO_API_ENDPOINT

    def http_method_not_allowed(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # DRF routes every method without a handler here: all of them get the same 404.
        raise exceptions.NotFound(self.detail)
