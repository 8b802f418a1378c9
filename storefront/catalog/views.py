from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_safe

from storefront import caching, pagination
from storefront.cache_pages import cache_anonymous_page, is_cacheable_request
from storefront.catalog import fragments, selectors
from storefront.catalog.forms import ProductFilterForm
from storefront.catalog.models import Category, Product


def _pages_ttl() -> int:
    return settings.STOREFRONT_CACHE_TTL_PAGES


# Every query parameter the listing reads: its filters and its pages. The page cache keys on
# these alone (any other parameter is dropped), so made-up ones cannot multiply cache entries.
LISTING_QUERY_PARAMS = (
    *ProductFilterForm.base_fields,
    pagination.PAGE_PARAM,
    pagination.AFTER_PARAM,
    pagination.BEFORE_PARAM,
)


# Listings show "Only N left" on cards: they depend on the low-stock display counter too.
# Read-only pages: other methods get the site's 405 page (storefront/error_pages.py).
@require_safe
@cache_anonymous_page(
    "catalog",
    timeout=_pages_ttl,
    scopes=lambda request: ["stock"],
    query_params=LISTING_QUERY_PARAMS,
)
def product_listing_page(request: HttpRequest) -> HttpResponse:
    # A visitor the page cache does not serve (signed in, a cart) still shares the page's
    # content with everyone: only the header around it is theirs.
    personal = not is_cacheable_request(request)
    if personal:
        content, slot = caching.lookup(
            "catalog", "listing-content", request.GET.urlencode(), scopes=["stock"]
        )
        if content is not caching.MISSING:
            return _listing(request, content)
    # No query string (the shop's main listing): nothing to validate, and no form is built
    # (its fields are deep-copied per instance, ~5 % of this page's time).
    form = ProductFilterForm(request.GET) if request.GET else None
    valid = form is None or form.is_valid()
    data = form.cleaned_data if form is not None and valid else {}
    filters = selectors.listing_filters_key(
        category=data.get("category", ""),
        search=data.get("q", ""),
        min_price=data.get("min_price"),
        max_price=data.get("max_price"),
    )
    # The categories, counts and menus this page uses, cached: one round trip for all.
    selected = (form["category"].value() or "") if form is not None else ""
    sort = data.get("sort", "")
    caching.prefetch(
        [
            *selectors.listing_cache_keys(
                filters=filters,
                count_limit=pagination.MAX_NUMBERED_PAGES * settings.STOREFRONT_PAGE_SIZE,
                sort=sort,
                page=_page_asked(request),
            ),
            fragments.category_menus_key(selected=selected, current=selected if valid else ""),
        ]
    )
    categories = selectors.category_list()
    category_tree = selectors.category_tree(categories=categories)
    context = {"form": form, **_filter_panel(form), "full_text": selectors.search_is_full_text()}

    def menus(current: Category | None) -> dict[str, SafeString]:
        return fragments.category_menus(
            categories=categories, category_tree=category_tree, selected=selected, current=current
        )

    if not valid:
        context.update(category_menus=menus(None), page_title="Shop")
        return render(request, "catalog/product_list.html", context, status=400)

    category_ids, current_category = None, None
    if data.get("category"):
        current_category = next((c for c in categories if c.slug == data["category"]), None)
        if current_category is None:
            raise Http404(f"There is no category called “{data['category']}”.")
        category_ids = selectors.category_with_descendant_ids(
            category=current_category, categories=categories
        )

    def products() -> QuerySet:  # built only if a count or rows are not cached
        return selectors.product_listing_rows(
            category_ids=category_ids,
            search=data.get("q", ""),
            min_price=data.get("min_price"),
            max_price=data.get("max_price"),
            sort=sort,
        )

    found: list[selectors.ListingPageRows] = []

    def cached_rows(page: int | str, compute: Callable[[], list]) -> list:
        found.append(
            selectors.listing_page_rows(filters=filters, sort=sort, page=page, compute=compute)
        )
        return found[-1].rows

    try:
        page = pagination.paginate(
            products,
            params=request.GET,
            per_page=settings.STOREFRONT_PAGE_SIZE,
            # Bookmarked ?page=N past the numbered pages: redirected to their cursor page.
            jump_rows=pagination.MAX_JUMP_ROWS,
            estimate_count=lambda: selectors.product_count_estimate(
                products=products, filters=filters
            ),
            cached_count=lambda limit, compute: selectors.product_count_bounded(
                filters=filters, limit=limit, compute=compute
            ),
            cached_rows=cached_rows,
            keyset=lambda: selectors.listing_keyset(sort=sort, search=data.get("q", "")),
        )
    except pagination.PageMoved as exc:
        return redirect(f"{request.path}{exc.url}")
    except pagination.BadPageRequest as exc:
        context.update(
            category_menus=menus(current_category),
            page_error=str(exc),
            page_title=current_category.name if current_category else "Shop",
        )
        return render(request, "catalog/product_list.html", context, status=400)
    except pagination.PageNotFound as exc:
        raise Http404(str(exc)) from None

    # The cards came with the rows when both were cached; else they are made (each from its
    # own cache, one round trip) and stored with the rows. One string: the template writes it
    # once instead of looping over 24 (~25 % of its render time).
    page_rows = found[0] if found else None
    if page_rows is not None and page_rows.cards is not None:
        cards = page_rows.cards
    else:
        cards = "".join(fragments.product_cards(page.items, categories=categories))
        if page_rows is not None:
            selectors.store_listing_page(page_rows, cards)
    context.update(
        page=page,
        products=page.items,
        cards=mark_safe(cards),  # noqa: S308 - escaped by the card template
        current_category=current_category,
        category_menus=menus(current_category),
        search=data.get("q", ""),
    )
    # Rendered without the request: the content holds nothing of the visitor's.
    content = {
        "html": render_to_string("catalog/_listing_content.html", context),
        "title": _listing_title(context),
        "search": context["search"],
    }
    if personal and _pages_ttl() > 0:
        caching.store_in(slot, content, _pages_ttl())
    return _listing(request, content, context)


def _page_asked(request: HttpRequest) -> int | str | None:
    """The page the request plainly asks for, as `listing_page_rows` names it (to prefetch its
    rows; pagination.paginate decides, and an odd request just reads one key for nothing)."""
    params = request.GET
    for name in (pagination.AFTER_PARAM, pagination.BEFORE_PARAM):
        cursors = params.getlist(name)
        if cursors:
            return f"{name}:{cursors[0]}" if len(cursors) == 1 else None
    raw = params.get(pagination.PAGE_PARAM, "1")
    return int(raw) if raw.isdigit() and 0 < len(raw) < 4 else None


_FILTER_FIELDS = ("q", "category", "min_price", "max_price", "sort")


def _filter_panel(form: ProductFilterForm | None) -> dict:
    """What the filter panel shows, as plain values: the template reads each several times,
    and every `form.<field>.value`/`.errors` there built a bound field or an error list again
    (~0.5 ms of the listing's render). `form` None: no filters given."""
    if form is None:
        values, errors = dict.fromkeys(_FILTER_FIELDS, ""), {}
    else:
        values = {name: form[name].value() or "" for name in _FILTER_FIELDS}
        errors = form.errors
    return {
        "filter_values": values,
        # The badge on the "Filters" toggle: filters in use (the sort order is not one).
        "filters_active": sum(1 for name in _FILTER_FIELDS[:4] if values[name]),
        "field_errors": {name: errors.get(name, ()) for name in _FILTER_FIELDS},
        "sort_options": [
            (value, label, value == values["sort"])
            for value, label in selectors.SORT_LABELS.items()
            if value != "relevance"
        ],
    }


def _listing_title(context: dict) -> str:
    if context.get("current_category"):
        return context["current_category"].name
    return f"Search: {context['search']}" if context.get("search") else "Shop"


def _listing(
    request: HttpRequest, content: dict, context: dict | None = None, status: int = 200
) -> HttpResponse:
    """The listing page around its content (`context`: the page's own, when it was rendered)."""
    return render(
        request,
        "catalog/product_list.html",
        {
            **(context or {}),
            "listing_content": mark_safe(content["html"]),  # noqa: S308 - escaped when rendered
            "page_title": content["title"],
            "search": content["search"],
        },
        status=status,
    )


@require_safe
@cache_anonymous_page(
    "catalog",
    timeout=_pages_ttl,
    scopes=lambda request, slug: [f"product:{slug}", "stock"],
    query_params=(),  # no query parameter changes a product page
)
def product_detail_page(request: HttpRequest, slug: str) -> HttpResponse:
    # The product and its related cards, cached: one round trip for both.
    caching.prefetch(
        [selectors.product_detail_key(slug=slug), fragments.related_cards_key(slug=slug)]
    )
    try:
        product = selectors.product_detail(slug=slug)
    except Product.DoesNotExist:
        raise Http404(f"No product called “{slug}”.") from None
    return render(
        request,
        "catalog/product_detail.html",
        {
            "product": product,
            "related_cards": fragments.related_cards(product=product),
            "max_quantity": min(product.stock, settings.STOREFRONT_MAX_LINE_QUANTITY),
        },
    )
