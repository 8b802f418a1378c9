"""The `order_number` URL converter: only what an order number can look like reaches a view.

A `str` segment would pass anything to the order lookup, NUL bytes included, which PostgreSQL
refuses with an error (a 500) instead of finding nothing. Letters, digits and dashes, at most
the column's 20 characters, cover every number (`SF-7KQ2-M9XD`); anything else is a 404.
"""

from __future__ import annotations

from django.urls import register_converter


class OrderNumberConverter:
    regex = r"[-A-Za-z0-9]{1,20}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


# Imported by every URL module that names it; a module runs once, so it is registered once.
register_converter(OrderNumberConverter, "order_number")
