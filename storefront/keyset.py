"""Keyset ("seek") pagination primitives, shared by the HTML pages (storefront/pagination.py)
and the API's cursor pagination (storefront/api.py).

A queryset ordered by plain columns ending in a unique one identifies each row by its tuple of
ordering values, so "the page after this row" is one range query on the ordering's index, with
no OFFSET and no COUNT. How a position travels (a signed `?after=` for pages, DRF's base64
`?cursor=` for the API) is each caller's business; reading, checking and seeking is this one's.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache, reduce
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Field, Model, Q, QuerySet


class NotKeysetOrderable(ImproperlyConfigured):
    """The ordering names something that is not a plain, non-null column of the model."""


@dataclass(frozen=True)
class Keyset:
    """A queryset's ordering (ending in a unique column) and the model fields it names."""

    ordering: tuple[str, ...]
    fields: tuple[Field, ...]

    @classmethod
    def of(cls, queryset: QuerySet) -> Keyset:
        ordering = tuple(queryset.query.order_by) or tuple(queryset.model._meta.ordering)
        return cls.for_ordering(queryset.model, ordering)

    @classmethod
    def for_ordering(cls, model: type[Model], ordering: Sequence[str]) -> Keyset:
        """The keyset of `model` rows ordered by `ordering`, without a queryset to read it from
        (a page whose rows are cached need not build one)."""
        return _keyset_for(model, tuple(ordering))

    def position_of(self, row: Model) -> list[str]:
        """The row's ordering values as strings (the portable form a cursor carries)."""
        return [f.value_to_string(row) for f in self.fields]

    def values_from(self, raw: object) -> list[Any]:
        """Python values from a cursor's strings; ValueError for anything malformed.

        Validators run too, so an out-of-range number never reaches the database as an error.
        """
        if not isinstance(raw, list) or len(raw) != len(self.fields):
            raise ValueError("wrong number of values")
        values = []
        for f, value in zip(self.fields, raw, strict=True):
            if not isinstance(value, str):
                raise ValueError("positions are strings")
            try:
                python_value = f.to_python(value)
                f.run_validators(python_value)
            except DjangoValidationError as exc:
                raise ValueError(str(exc)) from None
            if python_value is None:
                raise ValueError("positions are never null")
            values.append(python_value)
        return values

    def page_after(
        self, queryset: QuerySet, values: list[Any] | None, *, backwards: bool
    ) -> QuerySet:
        """Rows after (or, backwards, before) `values`, nearest first; all rows without values."""
        ordering = reverse_ordering(self.ordering) if backwards else self.ordering
        queryset = queryset.order_by(*ordering)
        if values is not None:
            queryset = queryset.filter(rows_after(ordering, values))
        return queryset


@lru_cache(maxsize=256)
def _keyset_for(model: type[Model], ordering: tuple[str, ...]) -> Keyset:
    # Cached: a handful of orderings per model; Keyset is frozen, its fields the model's own.
    fields = ordering_fields(model, ordering)
    if not fields or not (fields[-1].unique or fields[-1].primary_key):
        raise ImproperlyConfigured(
            f"Keyset pagination needs an ordering ending in a unique column, got {ordering!r}."
        )
    return Keyset(ordering=ordering, fields=tuple(fields))


def ordering_fields(model: type[Model], ordering: Sequence[Any]) -> list[Field]:
    """The model fields an ordering names; keyset paging only works on plain, non-null columns."""
    fields = []
    for name in ordering:
        if not isinstance(name, str) or "__" in name or name.lstrip("-") in ("", "?"):
            raise NotKeysetOrderable(f"Keyset pagination cannot order by {name!r}.")
        attr = name.lstrip("-")
        try:
            f = model._meta.get_field("id" if attr == "pk" else attr)
        except FieldDoesNotExist:
            raise NotKeysetOrderable(f"Keyset pagination cannot order by {name!r}.") from None
        if not f.concrete or f.null or f.is_relation:
            raise NotKeysetOrderable(f"Keyset pagination needs a non-null column, not {name!r}.")
        fields.append(f)
    return fields


def reverse_ordering(ordering: Sequence[str]) -> tuple[str, ...]:
    return tuple(name[1:] if name.startswith("-") else f"-{name}" for name in ordering)


def rows_after(ordering: Sequence[str], values: Sequence[Any]) -> Q:
    """Rows strictly after `values` in `ordering`: a > x OR (a = x AND b > y) OR ...

    The leading, logically redundant `a >= x` gives the database a range on the ordering's
    index to scan instead of filtering the whole table.
    """
    terms, equal_so_far = [], Q()
    for name, value in zip(ordering, values, strict=True):
        attr, after = (name[1:], "lt") if name.startswith("-") else (name, "gt")
        terms.append(equal_so_far & Q(**{f"{attr}__{after}": value}))
        equal_so_far &= Q(**{attr: value})
    first = ordering[0]
    bound = Q(**{f"{first[1:]}__lte" if first.startswith("-") else f"{first}__gte": values[0]})
    return bound & reduce(operator.or_, terms)
