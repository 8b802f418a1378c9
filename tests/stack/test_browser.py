"""End-to-end journeys: Debian's Chromium through the stack `make run` starts.

Every page is fetched the way a user fetches it: from nginx (HTTPS with the self-signed
certificate, or HTTP; journeys that post forms run over both), which proxies to two gunicorn
instances on unix sockets, with sessions and cache in Redis, a Celery worker sending the emails
to a real SMTP sink, under nginx's Content-Security-Policy (a violation fails the test). Chromium
sends its own Origin and Referer headers with every form, as any browser does.

Results are checked through the pages and the emails only (no ORM: the stack has its own
database, and Playwright's running event loop would make Django refuse ORM calls here anyway).
Every step leaves a screenshot in test-output/screenshots/<test>-<n>-<step>.png.
"""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from harness.served import ServedStack, mail_text
from storefront.seeding import DEMO_CUSTOMER, DEMO_STAFF
from tests.stack.conftest import Site, WatchedPage, new_watched_page

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("served-stack")]

BOTH_SCHEMES = pytest.mark.parametrize("site", ["http", "https"], indirect=True)
PHONE = {"width": 390, "height": 844}

# Chart.js has drawn once it registered a chart on the canvas and painted pixels onto it.
CHART_DRAWN_JS = """
(selector) => {
  const canvas = document.querySelector(selector);
  if (!canvas || !window.Chart || !window.Chart.getChart(canvas)) return false;
  if (canvas.width === 0 || canvas.height === 0) return false;
  const ctx = canvas.getContext("2d");
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;
  return false;
}
"""


def log_in(watched: WatchedPage, username: str, password: str) -> None:
    page = watched.page
    page.goto("/accounts/login/")
    submit_login(watched, username, password)
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
    expect(page.locator("form[action='/accounts/logout/']")).to_be_visible()


def submit_login(watched: WatchedPage, username: str, password: str) -> None:
    form = watched.page.locator("#login-form")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(password)
    watched.screenshot(f"login-{username}")
    form.locator("button[type=submit]").click()
    watched.page.wait_for_load_state()


def log_out(watched: WatchedPage) -> None:
    page = watched.page
    page.locator("form[action='/accounts/logout/'] button").click()
    expect(page.locator(".messages")).to_contain_text("logged out")
    expect(page.locator("form[action='/accounts/logout/']")).to_have_count(0)
    watched.screenshot("logged-out")


def search_word_from_first_product(page: Page) -> str:
    """A distinctive word of a product on the listing, so the search has something to find."""
    name = page.locator("a.product-card .product-name").first.inner_text()
    words = sorted(re.findall(r"[A-Za-z]{4,}", name), key=len, reverse=True)
    assert words, f"no searchable word in the product name {name!r}"
    return words[0]


def add_first_in_stock_product(watched: WatchedPage, quantity: int = 1) -> str:
    """From the listing, open the first product in stock and add it to the cart; its name."""
    page = watched.page
    page.goto("/products/")
    in_stock = page.locator("a.product-card:not(:has(.stock-out))")
    name = in_stock.first.locator(".product-name").inner_text().strip()
    in_stock.first.click()
    expect(page.locator("h1")).to_have_text(name)
    add = page.locator("#add-to-cart")
    add.locator("input[name=quantity]").fill(str(quantity))
    add.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/cart/$"))
    expect(page.locator("main table")).to_contain_text(name)
    return name


def new_username() -> str:
    return f"shopper{uuid.uuid4().hex[:8]}"


def test_anonymous_shopper_browses_filters_pages_and_is_asked_to_log_in_at_checkout(
    watched_page: WatchedPage,
) -> None:
    page = watched_page.page
    page.goto("/")
    expect(page.locator("a.product-card").first).to_be_visible()
    watched_page.screenshot("home")

    # Category filter (the sidebar's category links), then a sort.
    category_link = page.locator(".category-nav a").first
    category = category_link.inner_text().strip()
    category_link.click()
    expect(page).to_have_url(re.compile(r"[?&]category="))
    expect(page.locator("h1")).to_have_text(category)
    watched_page.screenshot("category")
    page.goto("/products/")
    page.locator("#id_sort").select_option("price_asc")
    page.locator("#search-form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"sort=price_asc"))
    prices = [
        float(re.sub(r"[^\d.]", "", text))
        for text in page.locator("a.product-card .product-meta .price").all_inner_texts()
    ]
    assert prices == sorted(prices) and len(prices) > 2, prices
    watched_page.screenshot("sorted-by-price")

    # Search finds what the listing shows.
    page.goto("/products/")
    word = search_word_from_first_product(page)
    page.locator("#id_q").fill(word)
    page.locator("#search-form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"[?&]q="))
    expect(page.locator("h1")).to_contain_text(word)
    expect(page.locator("a.product-card").first).to_be_visible()
    watched_page.screenshot("search")

    # Numbered pages 1-5, then Next/Previous cursors for the deep pages, and back.
    page.goto("/products/?sort=name")
    seen: list[str] = []
    for number in range(2, 6):
        page.locator("nav.pagination a.page-number", has_text=re.compile(rf"^{number}$")).click()
        expect(page.locator("nav.pagination .page-status")).to_contain_text(f"Page {number}")
        seen.append(page.locator("a.product-card .product-name").first.inner_text())
    watched_page.screenshot("page-5")
    page.locator("nav.pagination a[rel=next]").click()
    expect(page).to_have_url(re.compile(r"[?&]after="))
    deep_first = page.locator("a.product-card .product-name").first.inner_text()
    assert deep_first not in seen
    watched_page.screenshot("page-6-by-cursor")
    page.locator("nav.pagination a[rel=next]").click()
    expect(page).to_have_url(re.compile(r"[?&]after="))
    page.locator("nav.pagination a[rel=prev]").click()
    expect(page).to_have_url(re.compile(r"[?&]before="))
    expect(page.locator("a.product-card .product-name").first).to_have_text(deep_first)
    watched_page.screenshot("back-to-page-6")

    # Product page, add to cart, change the quantity.
    name = add_first_in_stock_product(watched_page)
    expect(page.locator(".messages")).to_contain_text("in your cart")
    quantity = page.locator("main table input[name=quantity]").first
    quantity.fill("2")
    page.locator("main table .qty-form button[type=submit]").first.click()
    expect(page.locator(".messages")).to_contain_text(re.compile(r"from 1 to 2"))
    expect(page.locator("main table input[name=quantity]").first).to_have_value("2")
    expect(page.locator("#cart-count")).to_have_text("2")
    watched_page.screenshot("cart-quantity-2")

    # Checkout asks an anonymous shopper to log in, and comes back afterwards.
    page.locator("a#checkout-link").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/checkout/"))
    expect(page.locator("#login-form")).to_be_visible()
    watched_page.screenshot("checkout-asks-to-log-in")
    assert name
    watched_page.assert_clean()


@BOTH_SCHEMES
def test_signup_from_checkout_returns_to_checkout_with_the_cart_then_logout_and_login(
    watched_page: WatchedPage,
) -> None:
    page = watched_page.page
    name = add_first_in_stock_product(watched_page)
    page.locator("a#checkout-link").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.locator("a#signup-link").click()
    expect(page).to_have_url(re.compile(r"/accounts/signup/\?next=/checkout/"))
    username, password = new_username(), f"pw-{uuid.uuid4().hex}"
    form = page.locator("#signup-form")
    form.locator("[name=username]").fill(username)
    form.locator("[name=email]").fill(f"{username}@example.test")
    form.locator("[name=password1]").fill(password)
    form.locator("[name=password2]").fill(password)
    watched_page.screenshot("signup")
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/checkout/$"))
    expect(page.locator("main")).to_contain_text(name)
    watched_page.screenshot("back-at-checkout")

    log_out(watched_page)
    page.goto("/cart/")
    expect(page.locator("main")).to_contain_text("Your cart is empty")

    # A wrong password first: a clear message, then the right one. The cart came back.
    page.goto("/accounts/login/")
    submit_login(watched_page, username, "not-the-password")
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator(".alert-error")).to_contain_text("did not match")
    watched_page.expect_bad_response(400, "/accounts/login/")
    watched_page.screenshot("wrong-password")
    submit_login(watched_page, username, password)
    expect(page.locator("form[action='/accounts/logout/']")).to_be_visible()
    page.goto("/cart/")
    expect(page.locator("main table")).to_contain_text(name)
    watched_page.screenshot("cart-kept-with-the-account")
    watched_page.assert_clean()


@BOTH_SCHEMES
def test_customer_checks_out_and_finds_the_order_everywhere(
    watched_page: WatchedPage, served_stack: ServedStack
) -> None:
    page = watched_page.page
    log_in(watched_page, *DEMO_CUSTOMER)
    page.goto("/dashboard/")
    page.wait_for_function(CHART_DRAWN_JS, arg="canvas#spending-chart", timeout=15_000)
    orders_before = int(re.sub(r"\D", "", page.locator("#stat-orders").inner_text()))

    name = add_first_in_stock_product(watched_page, quantity=2)
    page.locator("a#checkout-link").click()
    expect(page).to_have_url(re.compile(r"/checkout/$"))
    checkout = page.locator("#checkout-form")
    # Prefilled from the profile; the order keeps whatever the customer confirms.
    expect(checkout.locator("[name=shipping_name]")).not_to_have_value("")
    checkout.locator("[name=shipping_address]").fill("1 Test Street\n12345 Testville")
    watched_page.screenshot("checkout")
    checkout.locator("button[type=submit]").click()

    expect(page).to_have_url(re.compile(r"/orders/[^/]+/$"))
    heading = page.locator("h1").inner_text()
    match = re.search(r"Order\s+(\S+)", heading)
    assert match, f"order page heading has no order number: {heading!r}"
    number = match.group(1)
    expect(page.locator(".messages")).to_contain_text(number)
    expect(page.locator("main table")).to_contain_text(name)
    watched_page.screenshot("confirmation")

    page.goto("/orders/")
    page.locator("td.order-number", has_text=number).locator("a").click()
    expect(page).to_have_url(re.compile(rf"/orders/{re.escape(number)}/$"))
    expect(page.locator("main")).to_contain_text("1 Test Street")
    watched_page.screenshot("order-detail")

    page.goto("/dashboard/")
    expect(page.locator("#stat-orders")).to_have_text(str(orders_before + 1))
    page.wait_for_function(CHART_DRAWN_JS, arg="canvas#spending-chart", timeout=15_000)
    expect(page.locator("main")).to_contain_text(number)
    watched_page.screenshot("dashboard")

    # The cart was emptied by the checkout; the confirmation email links to this stack.
    page.goto("/cart/")
    expect(page.locator("main")).to_contain_text("Your cart is empty")
    email = served_stack.wait_for_mail(number)
    assert f"{served_stack.http_url}/orders/{number}/" in mail_text(email)
    watched_page.assert_clean()


def test_password_reset_by_email_and_password_change(
    watched_page: WatchedPage, served_stack: ServedStack, site: Site
) -> None:
    page = watched_page.page
    username, password = new_username(), f"pw-{uuid.uuid4().hex}"
    email = f"{username}@example.test"
    page.goto("/accounts/signup/")
    form = page.locator("#signup-form")
    form.locator("[name=username]").fill(username)
    form.locator("[name=email]").fill(email)
    form.locator("[name=password1]").fill(password)
    form.locator("[name=password2]").fill(password)
    form.locator("button[type=submit]").click()
    log_out(watched_page)

    page.goto("/accounts/login/")
    page.locator("#forgot-password-link").click()
    page.locator("#password-reset-form [name=email]").fill(email)
    watched_page.screenshot("reset-request")
    page.locator("#password-reset-form button[type=submit]").click()
    expect(page.locator("main")).to_contain_text("email")
    watched_page.screenshot("reset-sent")

    # The link in the email carries the scheme, host and port this browser used.
    message = served_stack.wait_for_mail(f"{site.url}/accounts/reset/")
    assert message["To"] == email
    link = re.search(rf"{re.escape(site.url)}/accounts/reset/\S+/", mail_text(message))
    assert link, mail_text(message)
    page.goto(link.group(0))
    new_password = f"new-{uuid.uuid4().hex}"
    reset = page.locator("#set-password-form")
    reset.locator("[name=new_password1]").fill(new_password)
    reset.locator("[name=new_password2]").fill(new_password)
    watched_page.screenshot("new-password")
    reset.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/accounts/reset/done/$"))
    watched_page.screenshot("reset-complete")

    # The link works once.
    page.goto(link.group(0))
    expect(page.locator("main")).to_contain_text(re.compile("invalid|already been used"))
    expect(page.locator("#set-password-form")).to_have_count(0)
    watched_page.expect_bad_response(400, "/accounts/reset/")
    watched_page.screenshot("link-used")

    log_in(watched_page, username, new_password)
    page.goto("/accounts/profile/")
    page.locator("#change-password-link").click()
    change = page.locator("#password-change-form")
    changed = f"changed-{uuid.uuid4().hex}"
    change.locator("[name=old_password]").fill(new_password)
    change.locator("[name=new_password1]").fill(changed)
    change.locator("[name=new_password2]").fill(changed)
    change.locator("button[type=submit]").click()
    expect(page.locator(".messages")).to_contain_text("password")
    expect(page.locator("form[action='/accounts/logout/']")).to_be_visible()
    watched_page.screenshot("password-changed")
    log_out(watched_page)
    log_in(watched_page, username, changed)
    watched_page.assert_clean()


def product_csv(category: str, rows: int, bad_rows: int) -> bytes:
    """A product import with `rows` good rows and `bad_rows` rejected ones (bad prices)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["sku", "name", "category", "price", "stock"])
    tag = uuid.uuid4().hex[:6].upper()
    for n in range(rows):
        writer.writerow([f"E2E-{tag}-{n:05d}", f"Journey lamp {tag} {n}", category, "19.90", "7"])
    for n in range(bad_rows):
        writer.writerow([f"E2E-{tag}-BAD{n}", f"Broken {n}", category, "not-a-price", "1"])
    return out.getvalue().encode()


def test_staff_charts_import_exports_and_admin_edit(watched_page: WatchedPage, tmp_path) -> None:
    page = watched_page.page
    log_in(watched_page, *DEMO_STAFF)

    page.goto("/staff/dashboard/")
    page.wait_for_function(CHART_DRAWN_JS, arg="#revenue-chart", timeout=15_000)
    points = page.evaluate(
        "(sel) => Chart.getChart(document.querySelector(sel)).data.datasets[0].data.length",
        "#revenue-chart",
    )
    assert points > 0, "the revenue chart has no data points"
    expect(page.locator("#stat-orders")).not_to_have_text("0")
    watched_page.screenshot("staff-dashboard")

    # CSV import: the progress bar moves while the worker imports, then the report.
    category = page.evaluate(
        "fetch('/api/products/?page_size=1').then(r => r.json())"
        ".then(d => d.results[0].category.slug)"
    )
    upload = tmp_path / "products.csv"
    upload.write_bytes(product_csv(category, rows=20_000, bad_rows=3))
    page.goto("/staff/products/import/")
    page.locator("#import-form input[type=file]").set_input_files(str(upload))
    page.locator("#import-form button[type=submit]").click()
    expect(page.locator("#import-progress-card")).to_be_visible()
    seen: set[str] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen.add(page.locator("#import-processed").inner_text())
        if page.locator("#import-status").inner_text().strip() == "Done":
            break
        page.wait_for_timeout(200)
    expect(page.locator("#import-status")).to_have_text("Done")
    processed = sorted(int(re.sub(r"\D", "", v) or 0) for v in seen)
    assert any(0 < v < 20_003 for v in processed), f"the bar never moved: {processed}"
    expect(page.locator("#import-created")).to_have_text("20,000")
    expect(page.locator("#import-rejected")).to_have_text("3")
    expect(page.locator("#rejected-rows tbody tr")).to_have_count(3)
    expect(page.locator("#rejected-rows")).to_contain_text("price")
    watched_page.screenshot("import-report")

    # Streamed export (downloaded as a file) and a file export made by the worker.
    page.goto("/staff/dashboard/")
    with page.expect_download() as streamed:
        page.locator("#export-link").click()
    streamed_path = tmp_path / "streamed.csv"
    streamed.value.save_as(streamed_path)
    watched_page.expect_download(streamed.value.url)
    streamed_rows = list(csv.reader(streamed_path.read_text().splitlines()))
    assert streamed_rows[0][0] == "number" and len(streamed_rows) > 100
    page.goto("/staff/orders/exports/")
    page.locator("#export-form button[type=submit]").click()
    download_link = page.locator("#order-exports a", has_text="Download").first
    deadline = time.monotonic() + 60
    while download_link.count() == 0 and time.monotonic() < deadline:
        page.wait_for_timeout(500)
        page.reload()
    with page.expect_download() as filed:
        download_link.click()
    filed_path = tmp_path / "filed.csv"
    filed.value.save_as(filed_path)
    watched_page.expect_download(filed.value.url)
    filed_rows = list(csv.reader(filed_path.read_text().splitlines()))
    assert filed_rows[0] == streamed_rows[0] and len(filed_rows) >= len(streamed_rows) - 5
    watched_page.screenshot("exports")

    # An admin product edit shows on the shop.
    page.goto("/admin/catalog/product/?q=Journey+lamp")
    page.locator("#result_list tbody tr th a").first.click()
    new_name = f"Edited journey lamp {uuid.uuid4().hex[:6]}"
    page.locator("#id_name").fill(new_name)
    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    page.goto(f"/products/?q={new_name.replace(' ', '+')}")
    expect(page.locator("a.product-card .product-name").first).to_have_text(new_name)
    watched_page.screenshot("admin-edit-on-the-shop")
    watched_page.assert_clean()


PHONE_PAGES = [
    "/products/",
    "product",
    "/cart/",
    "/checkout/",
    "/orders/",
    "/dashboard/",
    "/staff/dashboard/",
]


def test_phone_viewport_no_sideways_scroll_and_products_on_the_first_screen(
    chromium: Browser, site: Site, request: pytest.FixtureRequest
) -> None:
    context, watched = new_watched_page(
        chromium, site, request.node.name, viewport=PHONE, is_mobile=True, has_touch=True
    )
    page = watched.page
    try:
        # The staff demo user is a customer too: it has orders, a cart and both dashboards.
        log_in(watched, *DEMO_STAFF)
        add_first_in_stock_product(watched)
        page.goto("/products/")
        first_card = page.locator("a.product-card").first.bounding_box()
        assert first_card and first_card["y"] < PHONE["height"], first_card
        toggle = page.locator("#filters-toggle")
        expect(toggle).to_be_visible()
        expect(page.locator("#search-form")).to_be_hidden()
        toggle.click()
        expect(page.locator("#search-form")).to_be_visible()
        product_path = page.locator("a.product-card").first.get_attribute("href")
        assert product_path
        for path in PHONE_PAGES:
            page.goto(product_path if path == "product" else path)
            page.wait_for_load_state("networkidle")
            width = page.evaluate("document.documentElement.scrollWidth")
            inner = page.evaluate("window.innerWidth")
            shot = watched.screenshot(f"phone-{urlsplit(path).path.strip('/') or path}")
            assert width <= inner, f"{path} scrolls sideways: {width} > {inner} ({shot})"
        watched.assert_clean()
    finally:
        context.close()


def test_pages_load_nothing_from_other_hosts(watched_page: WatchedPage) -> None:
    page = watched_page.page
    visited: list[str] = []

    def visit(path: str, label: str) -> None:
        response = page.goto(path)
        assert response is not None and response.ok, f"{path}: {response and response.status}"
        page.wait_for_load_state("networkidle")
        visited.append(path)
        watched_page.screenshot(label)

    visit("/", "home")
    product_path = page.locator("a.product-card").first.get_attribute("href")
    assert product_path
    visit(product_path, "product")
    visit("/accounts/signup/", "signup")
    visit("/api/docs/", "api-docs")
    log_in(watched_page, *DEMO_STAFF)
    for path, label in [
        ("/dashboard/", "customer-dashboard"),
        ("/staff/dashboard/", "staff-dashboard"),
        ("/orders/", "orders"),
        ("/accounts/profile/", "profile"),
        ("/admin/", "admin"),
    ]:
        visit(path, label)

    own = [u for u in watched_page.requested_urls if u.startswith(watched_page.server.url)]
    assert any("/static/" in u for u in own), "no static files were requested at all"
    assert watched_page.foreign_requests() == [], f"pages {visited} reached other hosts"
    watched_page.assert_clean()


@BOTH_SCHEMES
def test_add_to_cart_from_a_shared_product_page_with_and_without_javascript(
    chromium: Browser, site: Site, request: pytest.FixtureRequest
) -> None:
    """Anonymous product pages hold no CSRF token (they are cached for everyone, by the app and
    nginx): with JavaScript the form fetches one on submit; without, a confirmation page keeps
    the choice. Both end with the product in the cart, through nginx."""
    for javascript in (True, False):
        context, watched = new_watched_page(
            chromium, site, f"{request.node.name}-js-{javascript}", java_script_enabled=javascript
        )
        page = watched.page
        try:
            page.goto("/products/")
            in_stock = page.locator("a.product-card:not(:has(.stock-out))").first
            name = in_stock.locator(".product-name").inner_text().strip()
            in_stock.click()
            expect(page.locator("h1")).to_have_text(name)
            form = page.locator("#add-to-cart")
            expect(form.locator("input[name=csrfmiddlewaretoken]")).to_have_count(0)
            assert not [c for c in page.context.cookies() if c["name"] == "csrftoken"]
            form.locator("input[name=quantity]").fill("2")
            if javascript:
                with page.expect_response(re.compile(r"/cart/token/$")) as token:
                    form.locator("button[type=submit]").click()
                assert token.value.status == 200
            else:
                form.locator("button[type=submit]").click()
                expect(page.locator("h1")).to_have_text("Add to your cart?")
                expect(page.locator("main")).to_contain_text(f"2 × {name}")
                watched.screenshot("confirm-without-javascript")
                page.locator("#confirm-add-to-cart button[type=submit]").click()
            expect(page).to_have_url(re.compile(r"/cart/$"))
            expect(page.locator("main table")).to_contain_text(name)
            expect(page.locator("main table input[name=quantity]").first).to_have_value("2")
            watched.screenshot(f"in-the-cart-js-{javascript}")
            watched.assert_clean()
        finally:
            context.close()
