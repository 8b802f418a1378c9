"""Cached HTML fragments of the catalog pages: product cards and the category menus.

Rendering them was most of an uncached listing's time (24 cards; the category tree twice, as
the filter's options and as the navigation). Each is rendered once per state it shows and
fetched in one round trip:

* a product card (catalog/_product_card.html) shows the product's fields, its category's name
  and its stock as the shop displays it (sold out, "Only N left", nothing): its key is the
  product id plus that displayed stock, in the catalog namespace. Any product or category
  change bumps the namespace (storefront/catalog/signals.py, the import); a sale changes only
  the displayed stock, which the key carries, read from the row the page just queried.
* a product page's related products (their cards) depend on the catalog and on the stock they
  show: the ``stock`` counter, which a sale bumps when a product enters the range cards show.
* the category menus depend on the categories (catalog namespace) and on which one is chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.template.loader import get_template
from django.utils.safestring import SafeString, mark_safe

from storefront import caching
from storefront.catalog import selectors
from storefront.catalog.models import Category, Product

CARD_TEMPLATE = "catalog/_product_card.html"
OPTIONS_TEMPLATE = "catalog/_category_options.html"
NAV_TEMPLATE = "catalog/_category_nav.html"


def _shown_stock(product: Product | Any) -> str:
    """The stock as the card shows it: the figure up to the low-stock threshold, else "many"."""
    threshold = settings.STOREFRONT_LOW_STOCK_THRESHOLD
    return str(product.stock) if product.stock <= threshold else f"many>{threshold}"


def product_cards(
    products: Sequence[Product | Any], *, categories: Sequence[Category] = ()
) -> list[SafeString]:
    """The card HTML of each product, in order: cached ones in one round trip, the rest
    rendered and stored together.

    `products` are Product instances with their category, or rows of
    `selectors.product_listing_rows` (then `categories` gives their categories: a Product is
    built from a row only for a card that has to be rendered).
    """
    if not products:
        return []
    keys = caching.make_keys(
        "catalog", "card", [(product.id, _shown_stock(product)) for product in products]
    )
    found = caching.get_many("catalog", keys)
    missing = {
        key: get_template(CARD_TEMPLATE).render({"product": _as_product(product, categories)})
        for key, product in zip(keys, products, strict=True)
        if key not in found
    }
    if missing:
        caching.store_many(missing, settings.STOREFRONT_CACHE_TTL_QUERIES)
        found.update(missing)
    # SafeString(), not mark_safe(): the same for a str, without mark_safe's lazy-text wrapper
    # (24 calls a page).
    return [SafeString(found[key]) for key in keys]  # nosec B703 - escaped by the card template


def _as_product(item: Product | Any, categories: Sequence[Category]) -> Product:
    if isinstance(item, Product):
        return item
    product = Product(**item._asdict())
    category = next((c for c in categories if c.id == product.category_id), None)
    if category is not None:  # else (a list older than the product) read when the card asks
        product.category = category
    return product


def related_cards_key(*, slug: str) -> str:
    return caching.make_key("catalog", "related-cards", slug, scopes=["stock"])


def related_cards(*, product: Product) -> list[SafeString]:
    """The cards of the products shown under `product` ("More in <category>")."""
    related = caching.get_or_set(
        "catalog",
        related_cards_key(slug=product.slug),
        lambda: [str(card) for card in product_cards(selectors.related_products(product=product))],
        settings.STOREFRONT_CACHE_TTL_QUERIES,
    )
    return [mark_safe(card) for card in related]  # noqa: S308 - escaped by the template


def category_menus_key(*, selected: str, current: str) -> str:
    return caching.make_key("catalog", "category-menus", selected, current)


def category_menus(
    *,
    categories: list[Category],
    category_tree: list[selectors.CategoryNode],
    selected: str,
    current: Category | None,
) -> dict[str, SafeString]:
    """The filter's <option>s (`selected`: the chosen slug, as given) and the category
    navigation (`current`: the category shown), as {"options": ..., "nav": ...}."""
    known = {c.slug for c in categories}
    selected = selected if selected in known else ""  # anything else selects no option
    current_slug = current.slug if current is not None else ""

    def render() -> dict[str, str]:
        context = {"category_tree": category_tree, "selected": selected, "current": current_slug}
        return {
            "options": get_template(OPTIONS_TEMPLATE).render(context),
            "nav": get_template(NAV_TEMPLATE).render(context),
        }

    menus = caching.get_or_set(
        "catalog",
        category_menus_key(selected=selected, current=current_slug),
        render,
        settings.STOREFRONT_CACHE_TTL_QUERIES,
    )
    # The templates escaped every value when the menus were rendered.
    return {part: mark_safe(html) for part, html in menus.items()}  # noqa: S308 - escaped
