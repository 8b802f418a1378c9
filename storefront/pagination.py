"""Pagination for HTML pages that costs the same on page 10,000 as on page 1.

`paginate` serves numbered pages 1..MAX_NUMBERED_PAGES (an OFFSET of at most a few pages, and
a COUNT bounded by a LIMITed subquery, so no page ever counts 100k rows), then opaque signed
cursors (`?after=` / `?before=`) built from the ordering values of the last or first row shown
and paged by keyset (storefront/keyset.py, which the API's cursors use too). Querysets ordered
by a computed value (the search rank) cannot be paged by keyset: they get the numbered pages
only.

A bookmarked `?page=N` past the numbered pages (from a listing paged by number only) is, when
the view allows it (`jump_rows`), looked up once and answered with `PageMoved` (redirect to the
cursor link of that page) or `PageNotFound` (past the end); see `_deep_page`.

Bad input (a page that is not a number, a tampered cursor or one issued for another sort)
raises `BadPageRequest`, which views answer with a 400 and its message; a page past the end
raises `PageNotFound` (a 404 with its message).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.core import signing
from django.db import connections
from django.db.models import Model, QuerySet
from django.http import QueryDict

from storefront.keyset import Keyset, NotKeysetOrderable

# Numbered pages shown before the listing switches to next/previous cursors.
MAX_NUMBERED_PAGES = 5
PAGE_PARAM, AFTER_PARAM, BEFORE_PARAM = "page", "after", "before"
CURSOR_SALT = "storefront.pagination.cursor"
# Longer than any cursor this module issues; anything longer is refused before it is parsed.
MAX_CURSOR_LENGTH = 1000
# Rows a bookmarked ?page=N past the numbered pages may skip to find its cursor (one OFFSET
# query; 100 pages of 24). OFFSET reads and discards every skipped row, so its cost grows with
# N: on 1M products (PostgreSQL 15, 2 cores) skipping 2,400 rows took ~5 ms unfiltered and up
# to ~300 ms for a category filter walked along the price index; 10,000 rows took up to 1 s.
# Deeper page numbers are answered with a 404 that says how to get there instead.
MAX_JUMP_ROWS = 2_400


class BadPageRequest(ValueError):
    """The page or cursor in the query string cannot be used (answer 400 with the message)."""


class PageNotFound(LookupError):
    """A well-formed page number past the last page (answer 404 with the message)."""


class PageMoved(BadPageRequest):
    """`?page=N` past the numbered pages names a page that exists: it is at `url` (a cursor link).

    Views that handle it redirect there; one that does not still answers a 400 with the message.
    """

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


# --- signed cursors -----------------------------------------------------------------------------


def encode_cursor(keyset: Keyset, row: Model, *, number: int | None) -> str:
    """An opaque cursor for the position of `row`; `number` is the page it leads to (shown only).

    Signed (SECRET_KEY): a cursor cannot be edited into another position, and it carries its
    ordering, so one taken from another sort is refused rather than silently misread.
    """
    payload = {"o": ",".join(keyset.ordering), "v": keyset.position_of(row)}
    if number is not None:
        payload["n"] = number
    return signing.Signer(salt=CURSOR_SALT).sign_object(payload)


def decode_cursor(keyset: Keyset, cursor: str) -> tuple[list[Any], int | None]:
    """The position values and page number of a cursor from `encode_cursor`."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise BadPageRequest("That page link is not valid (the cursor is too long).")
    try:
        payload = signing.Signer(salt=CURSOR_SALT).unsign_object(cursor)
    except (signing.BadSignature, ValueError, UnicodeError):
        raise BadPageRequest(
            "That page link is not valid (it was changed or is too old): start from the first page."
        ) from None
    if not isinstance(payload, dict) or payload.get("o") != ",".join(keyset.ordering):
        raise BadPageRequest(
            "That page link belongs to another sort order: start from the first page."
        )
    try:
        values = keyset.values_from(payload.get("v"))
    except ValueError:
        raise BadPageRequest("That page link is not valid: start from the first page.") from None
    number = payload.get("n")
    return values, number if isinstance(number, int) and number > 0 else None


# --- pages for HTML views -----------------------------------------------------------------------


@dataclass(frozen=True)
class PageLink:
    number: int
    url: str
    current: bool


@dataclass
class Page:
    """One page of rows and the links around it, for includes/pagination.html."""

    items: list[Any]
    # The page's number: exact on numbered pages, carried along by cursors beyond them.
    number: int | None
    # Rows in the whole listing when at most `count_limit`; None when more (or not counted).
    count: int | None
    count_limit: int
    by_cursor: bool
    numbers: list[PageLink] = field(default_factory=list)
    previous_url: str | None = None
    next_url: str | None = None
    first_url: str | None = None
    # True when the ordering cannot be paged by cursor and the numbered pages ran out.
    truncated: bool = False
    # When `count` is None: the planner's estimate of the rows, rounded (None if unknown).
    estimated_count: int | None = None

    @property
    def has_previous(self) -> bool:
        return self.previous_url is not None

    @property
    def has_next(self) -> bool:
        return self.next_url is not None

    @property
    def has_other_pages(self) -> bool:
        return self.has_previous or self.has_next

    @property
    def more_than_limit(self) -> bool:
        return self.count is None and not self.by_cursor

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def planner_row_estimate(queryset: QuerySet) -> int | None:
    """How many rows `queryset` matches by PostgreSQL's planner (EXPLAIN), or None elsewhere.

    Planning only, no row read: sub-millisecond at any table size, as accurate as the table's
    statistics (kept by autovacuum's ANALYZE) and the filters' selectivity estimates allow.
    """
    if connections[queryset.db].vendor != "postgresql":
        return None
    plan = json.loads(queryset.order_by().values("pk").explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


def _about(rows: int) -> int:
    """An estimate rounded to two significant figures (98,734 -> 99,000): no false precision."""
    places = len(str(rows)) - 2
    return round(rows, -places) if places > 0 else rows


def _bounded_count(queryset: QuerySet, keyset: Keyset | None, limit: int) -> int:
    """min(rows in `queryset`, limit + 1): COUNT(*) over a LIMITed subquery, which stops early.

    Kept in the page's order when that is an index's (the planner then walks the index and
    stops early); an order by a computed rank would compute it for every match, so not then.
    """
    rows = queryset.values("pk") if keyset is not None else queryset.order_by().values("pk")
    return rows[: limit + 1].count()


def _last_page(rows: int, per_page: int) -> int:
    return max(1, -(-rows // per_page))


def _past_the_end(number: int, rows: int, per_page: int) -> PageNotFound:
    return PageNotFound(
        f"There is no page {number}; the last page is {_last_page(rows, per_page)}."
    )


def _single(params: QueryDict, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise BadPageRequest(f"Give “{name}” only once.")
    return values[0] if values else None


def _base_query(params: QueryDict) -> str:
    """`params` without the paging parameters, encoded: what every link of a page keeps."""
    query = params.copy()
    for name in (PAGE_PARAM, AFTER_PARAM, BEFORE_PARAM):
        query.pop(name, None)
    return query.urlencode()


def _url(base: str, **changes: object) -> str:
    """A link to `base` (from `_base_query`) with `changes` set (None: left out).

    The same string as copying the QueryDict, setting the changes and encoding it again (the
    changes come last, encoded alike), built from one encoding per page instead of one per link.
    """
    extra = urlencode({name: str(value) for name, value in changes.items() if value is not None})
    encoded = f"{base}&{extra}" if base and extra else base or extra
    return f"?{encoded}" if encoded else "?"


class _Source:
    """The queryset to page and its keyset, each built on first use: a numbered page whose count
    and rows come from the caller's caches (`cached_count`, `cached_rows`) builds neither."""

    def __init__(
        self,
        queryset: QuerySet | Callable[[], QuerySet],
        keyset: Callable[[], Keyset | None] | None = None,
    ) -> None:
        self._make = queryset if callable(queryset) else None
        self._queryset = None if callable(queryset) else queryset
        self._make_keyset = keyset
        self._keyset: Keyset | bool | None = False  # False: not looked at yet

    @property
    def queryset(self) -> QuerySet:
        if self._queryset is None:
            self._queryset = self._make()
        return self._queryset

    @property
    def keyset(self) -> Keyset | None:
        if self._keyset is False:
            try:
                make = self._make_keyset
                self._keyset = make() if make is not None else Keyset.of(self.queryset)
            except NotKeysetOrderable:
                self._keyset = None  # ordered by a computed value: numbered pages only
        return self._keyset


def paginate(
    queryset: QuerySet | Callable[[], QuerySet],
    *,
    params: QueryDict,
    per_page: int,
    max_numbered_pages: int = MAX_NUMBERED_PAGES,
    jump_rows: int = 0,
    estimate_count: Callable[[], int | None] | None = None,
    cached_count: Callable[[int, Callable[[], int]], int] | None = None,
    cached_rows: Callable[[int | str, Callable[[], list]], list] | None = None,
    keyset: Callable[[], Keyset | None] | None = None,
) -> Page:
    """The page of `queryset` that `params` (a request's GET) asks for.

    `?page=N` (1..max_numbered_pages) is an OFFSET of fewer than max_numbered_pages pages plus a
    COUNT of at most max_numbered_pages × per_page + 1 rows; `?after=` / `?before=` cursors are
    one range query of per_page + 1 rows (the extra row tells whether more follow). Links keep
    every other query parameter (filters, sort).

    `jump_rows` > 0 lets `?page=N` past the numbered pages through (see `_deep_page`); with 0
    such a page is a BadPageRequest. `estimate_count` (e.g. a cached `planner_row_estimate`) is
    asked only when more rows match than the numbered pages hold, for "about N" totals.
    `cached_count(limit, compute)`, when given, answers the numbered pages' bounded COUNT
    (`compute()` counts at most limit + 1 rows) from a cache of the caller's;
    `cached_rows(page, compute)` likewise answers a page's rows: `page` is the number of a
    numbered page, or ``after:<cursor>`` / ``before:<cursor>`` for a cursor page (a cursor
    that decoded: signed by this app, of this ordering). `queryset` may be a function that
    builds it, called only when a query is needed; `keyset`, when given, answers
    `Keyset.of(queryset)` (None: not keyset-orderable) without building the queryset.
    """
    page_raw = _single(params, PAGE_PARAM)
    after = _single(params, AFTER_PARAM)
    before = _single(params, BEFORE_PARAM)
    if sum(value is not None for value in (page_raw, after, before)) > 1:
        raise BadPageRequest("Give only one of “page”, “after” and “before”.")
    source = _Source(queryset, keyset)
    if after is not None or before is not None:
        keyset = source.keyset
        if keyset is None:
            raise BadPageRequest(
                "This order (best match) has numbered pages only: choose another sort to page "
                "further."
            )
        return _cursor_page(
            source,
            keyset,
            params=params,
            per_page=per_page,
            cursor=after if after is not None else before,
            backwards=before is not None,
            max_numbered_pages=max_numbered_pages,
            cached_rows=cached_rows,
        )
    number = _page_number(page_raw, max_numbered_pages, deeper=jump_rows > 0)
    if number > max_numbered_pages:
        _deep_page(
            source.queryset,
            source.keyset,
            params=params,
            per_page=per_page,
            number=number,
            max_numbered_pages=max_numbered_pages,
            jump_rows=jump_rows,
            estimate_count=estimate_count,
        )
    return _numbered_page(
        source,
        params=params,
        per_page=per_page,
        number=number,
        max_numbered_pages=max_numbered_pages,
        estimate_count=estimate_count,
        cached_count=cached_count,
        cached_rows=cached_rows,
    )


def _page_number(raw: str | None, max_numbered_pages: int, *, deeper: bool) -> int:
    if raw is None or raw == "":
        return 1
    try:
        number = int(raw)
    except ValueError:
        raise BadPageRequest("The page number must be a whole number.") from None
    if deeper and number < 1:
        raise BadPageRequest("Page numbers start at 1.")
    if not deeper and not 1 <= number <= max_numbered_pages:
        raise BadPageRequest(
            f"Page numbers go from 1 to {max_numbered_pages}; use the “Next” links to go further."
        )
    return number


def _deep_page(
    queryset: QuerySet,
    keyset: Keyset | None,
    *,
    params: QueryDict,
    per_page: int,
    number: int,
    max_numbered_pages: int,
    jump_rows: int,
    estimate_count: Callable[[], int | None] | None,
) -> None:
    """Raise where `?page=N` past the numbered pages is: PageMoved (it exists) or PageNotFound.

    Pages past the numbered ones are served by cursor only (no OFFSET, however deep), so an old
    bookmark is translated once: the cursor of page N is the position of the last row of page
    N - 1, found with one OFFSET query of 2 rows (the second says whether page N has any), and
    the visitor is redirected to it; that query is bounded by `jump_rows` skipped rows. When it
    finds too few rows, a COUNT bounded the same way names the last page. A deeper N costs that
    bounded COUNT only: a listing shorter than the bound gets its last page named, a longer one
    a 404 saying how to get there (only an unbounded scan could tell whether page N exists;
    the "Next" links reach it at the cost of one page each).
    """
    if keyset is None:
        raise PageNotFound(
            f"There is no page {number}: this order (best match) has numbered pages only, "
            f"at most {max_numbered_pages}; choose another sort to page further."
        )
    skipped = (number - 1) * per_page
    if skipped <= jump_rows:
        attnames = [f.attname for f in keyset.fields]
        ordered = keyset.page_after(queryset, None, backwards=False)
        rows = list(ordered.values_list(*attnames, named=True)[skipped - 1 : skipped + 1])
        if len(rows) == 2:
            cursor = encode_cursor(keyset, rows[0], number=number)
            raise PageMoved(
                f"Page {number} is past the numbered pages: it is at another address now.",
                url=_url(_base_query(params), **{AFTER_PARAM: cursor}),
            )
        # One row: the listing ends exactly where page N would start. None: it ends earlier.
        rows_total = skipped if rows else _bounded_count(queryset, keyset, skipped)
        raise _past_the_end(number, rows_total, per_page)
    counted = _bounded_count(queryset, keyset, jump_rows)
    if counted <= jump_rows:
        raise _past_the_end(number, counted, per_page)
    reachable = max(jump_rows // per_page + 1, max_numbered_pages)
    message = (
        f"Page {number} cannot be opened by its number: page numbers go up to {reachable}; "
        "from there, follow the “Next” links."
    )
    estimate = estimate_count() if estimate_count is not None else None
    if estimate is not None and estimate > counted:
        message += (
            f" This listing has about {_about(estimate):,} items "
            f"(about {_about(_last_page(estimate, per_page)):,} pages)."
        )
    raise PageNotFound(message)


def _numbered_page(
    source: _Source,
    *,
    params: QueryDict,
    per_page: int,
    number: int,
    max_numbered_pages: int,
    estimate_count: Callable[[], int | None] | None,
    cached_count: Callable[[int, Callable[[], int]], int] | None,
    cached_rows: Callable[[int | str, Callable[[], list]], list] | None,
) -> Page:
    limit = max_numbered_pages * per_page

    def count() -> int:
        return _bounded_count(source.queryset, source.keyset, limit)

    counted = cached_count(limit, count) if cached_count is not None else count()
    count = counted if counted <= limit else None
    pages = _last_page(counted, per_page) if count is not None else max_numbered_pages
    if number > pages:
        raise _past_the_end(number, counted, per_page)
    start = (number - 1) * per_page

    def rows() -> list:
        return list(source.queryset[start : start + per_page])

    items = cached_rows(number, rows) if cached_rows is not None else rows()
    page = Page(items=items, number=number, count=count, count_limit=limit, by_cursor=False)
    if count is None and estimate_count is not None:
        # Only past the bounded count: a small listing is counted exactly, at no extra cost.
        estimate = estimate_count()
        # Statistics lag behind inserts: an estimate below what was just counted is wrong.
        if estimate is not None and estimate > limit:
            page.estimated_count = _about(estimate)
    base = _base_query(params)
    page.numbers = [
        PageLink(number=n, url=_url(base, page=n if n > 1 else None), current=n == number)
        for n in range(1, pages + 1)
    ]
    if number > 1:
        page.previous_url = _url(base, page=number - 1 if number > 2 else None)
    if number < pages:
        page.next_url = _url(base, page=number + 1)
    elif count is None and items:
        # Past the numbered pages: on by cursor, or (ordered by rank) nowhere.
        if source.keyset is not None:
            cursor = encode_cursor(source.keyset, items[-1], number=number + 1)
            page.next_url = _url(base, **{AFTER_PARAM: cursor})
        else:
            page.truncated = True
    return page


def _cursor_page(
    source: _Source,
    keyset: Keyset,
    *,
    params: QueryDict,
    per_page: int,
    cursor: str,
    backwards: bool,
    max_numbered_pages: int,
    cached_rows: Callable[[int | str, Callable[[], list]], list] | None,
) -> Page:
    values, number = decode_cursor(keyset, cursor)
    base = _base_query(params)

    def query() -> list:  # per_page + 1 rows: the extra one tells whether more follow
        return list(keyset.page_after(source.queryset, values, backwards=backwards)[: per_page + 1])

    page_key = f"{BEFORE_PARAM if backwards else AFTER_PARAM}:{cursor}"
    rows = cached_rows(page_key, query) if cached_rows is not None else query()
    more = len(rows) > per_page
    items = rows[:per_page]
    if backwards:
        items.reverse()
        has_previous, has_next = more, True
    else:
        has_previous, has_next = True, more
    page = Page(
        items=items,
        number=number,
        count=None,
        count_limit=max_numbered_pages * per_page,
        by_cursor=True,
        first_url=_url(base),
    )
    if not items:
        # The rows around this position are gone (deleted since the link was made): only the
        # way back to the start is certain.
        return page
    before_number = number - 1 if number and number > 1 else None
    after_number = number + 1 if number else None
    if has_previous:
        previous = encode_cursor(keyset, items[0], number=before_number)
        page.previous_url = _url(base, **{BEFORE_PARAM: previous})
    if has_next:
        following = encode_cursor(keyset, items[-1], number=after_number)
        page.next_url = _url(base, **{AFTER_PARAM: following})
    return page
