"""Reads of the catalog. Each selector decides its joins and columns once, here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connection
from django.db.models import Q, QuerySet

from storefront import caching, pagination
from storefront.catalog.models import (
    PRODUCT_SEARCH_VECTOR,
    SEARCH_CONFIG,
    Category,
    Product,
    ProductImport,
)
from storefront.keyset import Keyset

# Sort keys accepted by the listing and the API, mapped to an ordering with a unique tiebreaker
# so pages (and API cursors) are stable.
PRODUCT_SORTS: dict[str, tuple[str, ...]] = {
    "newest": ("-created_at", "-id"),
    "price_asc": ("price", "id"),
    "price_desc": ("-price", "-id"),
    "name": ("name", "id"),
}
SORT_LABELS = {
    "relevance": "Best match",
    "newest": "Newest",
    "price_asc": "Price: low to high",
    "price_desc": "Price: high to low",
    "name": "Name",
}
LISTING_FIELDS = (
    "id",
    "name",
    "slug",
    "sku",
    "price",
    "stock",
    "image",
    "created_at",
    "category__id",
    "category__name",
    "category__slug",
)


@dataclass(frozen=True)
class CategoryNode:
    category: Category
    children: tuple[Category, ...]


def category_list() -> list[Category]:
    """All categories by name (cached in the catalog namespace)."""
    return caching.get_or_set(
        "catalog",
        _categories_key(),
        lambda: list(Category.objects.only("id", "name", "slug", "parent_id").order_by("name")),
        settings.STOREFRONT_CACHE_TTL_QUERIES,
    )


def category_tree(*, categories: list[Category] | None = None) -> list[CategoryNode]:
    """Top-level categories with their children, built from one query."""
    categories = category_list() if categories is None else categories
    children: dict[int, list[Category]] = {}
    for c in categories:
        if c.parent_id is not None:
            children.setdefault(c.parent_id, []).append(c)
    return [
        CategoryNode(category=c, children=tuple(children.get(c.id, ())))
        for c in categories
        if c.parent_id is None
    ]


def category_with_descendant_ids(*, category: Category, categories: list[Category]) -> list[int]:
    by_parent: dict[int | None, list[int]] = {}
    for c in categories:
        by_parent.setdefault(c.parent_id, []).append(c.id)
    ids, frontier = [category.id], [category.id]
    while frontier:
        frontier = [child for parent in frontier for child in by_parent.get(parent, [])]
        ids.extend(frontier)
    return ids


def search_is_full_text() -> bool:
    return connection.vendor == "postgresql"


def product_listing(
    *,
    category_ids: list[int] | None = None,
    search: str = "",
    min_price: Decimal | None = None,
    max_price: Decimal | None = None,
    sort: str = "",
    with_category: bool = True,
) -> QuerySet[Product]:
    """Active products for the listing page and the API, filtered and sorted.

    Search uses PostgreSQL full-text search (websearch syntax, answered from the GIN index)
    and falls back to a case-insensitive substring match on other databases. Without
    `with_category` the category is not joined (see `product_listing_rows`).
    """
    if with_category:
        qs = Product.objects.active().select_related("category").only(*LISTING_FIELDS)
    else:
        own = [f for f in LISTING_FIELDS if "__" not in f]
        qs = Product.objects.active().only(*own, "category_id")
    if category_ids:
        qs = qs.filter(category_id__in=category_ids)
    if min_price is not None:
        qs = qs.filter(price__gte=min_price)
    if max_price is not None:
        qs = qs.filter(price__lte=max_price)
    search = search.strip()
    if search:
        if search_is_full_text():
            query = SearchQuery(search, config=SEARCH_CONFIG, search_type="websearch")
            qs = qs.alias(search_document=PRODUCT_SEARCH_VECTOR).filter(search_document=query)
            if sort in ("", "relevance"):
                qs = qs.annotate(rank=SearchRank(PRODUCT_SEARCH_VECTOR, query))
                return qs.order_by("-rank", "-id")
        else:
            qs = qs.filter(Q(name__icontains=search) | Q(description__icontains=search))
    return qs.order_by(*PRODUCT_SORTS.get(sort, PRODUCT_SORTS["newest"]))


def listing_keyset(*, sort: str = "", search: str = "") -> Keyset | None:
    """`Keyset.of(product_listing(sort=sort, search=search))` without building the queryset:
    None when the listing is ranked by relevance (numbered pages only). Tested against it for
    every sort."""
    if search.strip() and sort in ("", "relevance") and search_is_full_text():
        return None
    return Keyset.for_ordering(Product, PRODUCT_SORTS.get(sort, PRODUCT_SORTS["newest"]))


# What a listing page reads of each product: a product card's fields, plus what its cursors
# need (the sort columns are among them).
LISTING_ROW_FIELDS = (*(f for f in LISTING_FIELDS if "__" not in f), "category_id")


def product_listing_rows(**filters: Any) -> QuerySet:
    """`product_listing(**filters)` as named rows (LISTING_ROW_FIELDS), for the listing page.

    No model instances and no category join: the page shows cached card HTML for most rows
    (storefront/catalog/fragments.py builds a Product only for a card it has to render, with
    its category from the cached category list); building 24 models and joining their
    categories was a fifth of an uncached listing's time.
    """
    return product_listing(**filters, with_category=False).values_list(
        *LISTING_ROW_FIELDS, named=True
    )


def listing_filters_key(
    *, category: str = "", search: str = "", min_price: Decimal | None, max_price: Decimal | None
) -> str:
    """What a listing's row count depends on: its filters as the visitor gave them (the
    category by slug), not its sort or page. Keys the cached counts below."""
    return f"{category}|{search.strip()}|{min_price}|{max_price}"


def _categories_key() -> str:
    return caching.make_key("catalog", "categories")


def _count_key(filters: str, limit: int) -> str:
    return caching.make_key("catalog", "listing-count", limit, filters)


def _estimate_key(filters: str) -> str:
    return caching.make_key("catalog", "listing-estimate", filters)


def _rows_key(filters: str, sort: str, page: int | str) -> str:
    return caching.make_key(
        "catalog",
        "listing-rows",
        settings.STOREFRONT_PAGE_SIZE,
        sort,
        page,
        filters,
        scopes=["stock"],
    )


def listing_cache_keys(
    *, filters: str, count_limit: int, sort: str = "", page: int | str | None = None
) -> list[str]:
    """The keys of the cached categories, counts and (for `page`, see `listing_page_rows`)
    rows a listing page reads (to prefetch them)."""
    keys = [_categories_key(), _count_key(filters, count_limit), _estimate_key(filters)]
    if page is not None:
        keys.append(_rows_key(filters, sort, page))
    return keys


@dataclass
class ListingPageRows:
    """A listing page's rows as `listing_page_rows` found them, with the page's product cards
    (the HTML of the rows shown, joined) when they were stored with the rows, else None."""

    key: str
    rows: list
    cards: str | None


def listing_page_rows(
    *, filters: str, sort: str, page: int | str, compute: Callable[[], list]
) -> ListingPageRows:
    """`compute()` (the rows of `page` of the listing `filters` and `sort` describe), cached
    with the page's cards (`store_listing_page`).

    `page` is a numbered page's number or a cursor page's ``after:<cursor>`` /
    ``before:<cursor>`` (storefront.pagination.paginate's `cached_rows`). In the catalog
    namespace with the ``stock`` scope, like the listing page itself: every product change and
    every change of the stock a listing shows makes a new key, so these rows are never older
    than a cached page would be. Cursor pages are cached like the page cache caches their
    HTML: one entry per page visited (a cursor is signed, so made-up ones are refused before
    any lookup), kept for STOREFRONT_CACHE_TTL_QUERIES; a page deep in the listing then costs
    what page 1 does (bench/REPORT.md, page depth).

    The cards are stored in the same entry as the rows they were rendered from, so they can
    never disagree: a card shows its product's fields, category name and displayed stock,
    all read from these rows under a key that changes with every product, category and
    displayed-stock change. A page whose rows are cached then needs no other round trip for
    its 24 cards. On a miss nothing is stored yet: the caller stores rows and cards together.
    """
    key = _rows_key(filters, sort, page)
    entry = caching.get("catalog", key)
    if isinstance(entry, tuple) and len(entry) == 2:
        rows, cards = entry
        return ListingPageRows(key=key, rows=rows, cards=cards)
    return ListingPageRows(key=key, rows=compute(), cards=None)


def listing_page_rows_key(*, filters: str, sort: str, page: int | str) -> str:
    """The cache key of a listing page's rows and cards (`listing_page_rows`)."""
    return _rows_key(filters, sort, page)


def store_listing_page(page_rows: ListingPageRows, cards: str) -> None:
    """Store a page's rows with the cards rendered from them (see `listing_page_rows`)."""
    caching.store(page_rows.key, (page_rows.rows, cards), settings.STOREFRONT_CACHE_TTL_QUERIES)


def product_count_bounded(*, filters: str, limit: int, compute: Callable[[], int]) -> int:
    """`compute()` (a COUNT of at most limit + 1 rows of the listing `filters` describes),
    cached per filter set in the catalog namespace, which every product change bumps (a sale
    changes stock, not which products are listed, so it leaves the count alone)."""
    return caching.get_or_set(
        "catalog", _count_key(filters, limit), compute, settings.STOREFRONT_CACHE_TTL_QUERIES
    )


def product_count_estimate(
    *, products: QuerySet[Product] | Callable[[], QuerySet[Product]], filters: str
) -> int | None:
    """About how many products a listing holds (PostgreSQL's planner estimate), or None.

    For listings longer than the numbered pages, whose exact COUNT would read every match.
    Cached per filter set (`listing_filters_key`) in the catalog namespace, so product changes
    refresh it; elsewhere than PostgreSQL there is no estimate to cache. `products` may be a
    function building the queryset (called on a miss only).
    """
    if connection.vendor != "postgresql":
        return None
    return caching.get_or_set(
        "catalog",
        _estimate_key(filters),
        lambda: pagination.planner_row_estimate(
            (products() if callable(products) else products).order_by()
        ),
        settings.STOREFRONT_CACHE_TTL_QUERIES,
    )


def product_detail_key(*, slug: str) -> str:
    return caching.make_key("catalog", "product", slug, scopes=[f"product:{slug}"])


def product_detail(*, slug: str) -> Product:
    """The active product with this slug; raises Product.DoesNotExist otherwise.

    Cached per product (catalog namespace + the product's own counter, which checkouts bump).
    """
    key = product_detail_key(slug=slug)
    product = caching.get("catalog", key)
    if product is None:
        product = Product.objects.active().select_related("category").get(slug=slug)
        # Computed now, so they are stored with it (cached properties pickle with the row).
        product.meta_description, product.description_html  # noqa: B018
        caching.store(key, product, settings.STOREFRONT_CACHE_TTL_QUERIES)
    return product


def product_for_update(*, slug: str) -> Product | None:
    """The product with this slug, active or not, with its category (for staff to change)."""
    return Product.objects.select_related("category").filter(slug=slug).first()


def related_products(*, product: Product, limit: int = 4) -> list[Product]:
    return list(
        Product.objects.active()
        .filter(category_id=product.category_id)
        .exclude(pk=product.pk)
        .select_related("category")
        .only(*LISTING_FIELDS)
        .order_by("-created_at", "-id")[:limit]
    )


def products_by_ids(*, ids: list[int]) -> dict[int, Product]:
    return {
        p.id: p
        for p in Product.objects.filter(id__in=ids)
        .select_related("category")
        .only(*LISTING_FIELDS, "sku", "is_active")
    }


def active_product_ids_by_slug(*, slugs: list[str]) -> dict[str, int]:
    """Ids of the active products among `slugs`; unknown and inactive slugs are left out."""
    return dict(Product.objects.active().filter(slug__in=slugs).values_list("slug", "id"))


def product_for_cart(*, product_id: int) -> Product | None:
    """The columns the cart checks (active, stock, price) of one product, or None."""
    return (
        Product.objects.filter(pk=product_id)
        .only("id", "name", "stock", "is_active", "price")
        .first()
    )


def low_stock_alert_products(*, ids: list[int]) -> list[Product]:
    """The products a low-stock alert names (any state), by name: the columns it shows."""
    return list(
        Product.objects.filter(id__in=ids).only("id", "name", "sku", "stock").order_by("name", "id")
    )


# --- the product CSV import (storefront/catalog/imports.py) ---------------------------------------


def category_ids_by_slug() -> dict[str, int]:
    """Every category's id by its slug (the import's category column holds slugs)."""
    return dict(Category.objects.values_list("slug", "id"))


def taken_product_slugs(*, slugs: set[str]) -> set[str]:
    """Those of `slugs` that a product (active or not) already has."""
    return set(Product.objects.filter(slug__in=slugs).values_list("slug", flat=True))


def recent_product_imports(*, limit: int = 20) -> QuerySet[ProductImport]:
    return ProductImport.objects.select_related("created_by").defer("rejected_rows")[:limit]


def product_import(*, import_id: int) -> ProductImport:
    """Raises ProductImport.DoesNotExist."""
    return ProductImport.objects.select_related("created_by").get(pk=import_id)


def running_product_imports_count() -> int:
    """Product imports queued or running, for /metrics."""
    active = [ProductImport.Status.QUEUED, ProductImport.Status.RUNNING]
    return ProductImport.objects.filter(status__in=active).count()
