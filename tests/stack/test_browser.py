"""End-to-end: Chromium against gunicorn serving Storefront, as a customer and as staff.

Results are checked through the pages only (no ORM: the server has its own database, and
Playwright's running event loop would make Django refuse ORM calls here anyway). Every step
leaves a screenshot in test-output/screenshots/.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from storefront.orders.seeding import DEMO_CUSTOMER, DEMO_STAFF
from tests.stack.conftest import WatchedPage

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("stack-server")]

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
    form = page.locator("#login-form")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(password)
    watched.screenshot(f"login-{username}")
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
    expect(page.locator("form[action='/accounts/logout/']")).to_be_visible()


def search_word_from_first_product(page: Page) -> str:
    """A distinctive word of a product on the listing, so the search has something to find."""
    name = page.locator("a.product-card .product-name").first.inner_text()
    words = sorted(re.findall(r"[A-Za-z]{4,}", name), key=len, reverse=True)
    assert words, f"no searchable word in the product name {name!r}"
    return words[0]


def test_customer_searches_buys_and_finds_the_order_in_history(watched_page: WatchedPage) -> None:
    page = watched_page.page
    log_in(watched_page, *DEMO_CUSTOMER)

    page.goto("/products/")
    expect(page.locator("a.product-card").first).to_be_visible()
    watched_page.screenshot("listing")

    word = search_word_from_first_product(page)
    search = page.locator("#search-form")
    search.locator("input[name=q]").fill(word)
    search.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"[?&]q="))
    expect(page.locator("h1")).to_contain_text(word)
    in_stock = page.locator("a.product-card:not(:has(.stock-out))")
    expect(in_stock.first).to_be_visible()
    watched_page.screenshot("search-results")

    product_name = in_stock.first.locator(".product-name").inner_text().strip()
    in_stock.first.click()
    expect(page).to_have_url(re.compile(r"/products/[-\w]+/$"))
    expect(page.locator("h1")).to_have_text(product_name)
    watched_page.screenshot("product")

    add = page.locator("#add-to-cart")
    add.locator("input[name=quantity]").fill("1")
    add.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/cart/$"))
    expect(page.locator(".messages")).to_contain_text("in your cart")
    expect(page.locator("main table")).to_contain_text(product_name)
    watched_page.screenshot("cart")

    page.locator("a#checkout-link").click()
    expect(page).to_have_url(re.compile(r"/checkout/$"))
    checkout = page.locator("#checkout-form")
    checkout.locator("[name=shipping_name]").fill("Demo Shopper")
    checkout.locator("[name=shipping_address]").fill("1 Test Street\n12345 Testville")
    watched_page.screenshot("checkout")
    checkout.locator("button[type=submit]").click()

    expect(page).to_have_url(re.compile(r"/orders/[^/]+/$"))
    heading = page.locator("h1").inner_text()
    match = re.search(r"Order\s+(\S+)", heading)
    assert match, f"order page heading has no order number: {heading!r}"
    number = match.group(1)
    assert page.url.rstrip("/").endswith(f"/orders/{number}")
    expect(page.locator(".messages")).to_contain_text(number)
    expect(page.locator("main table")).to_contain_text(product_name)
    watched_page.screenshot("order-placed")

    page.goto("/orders/")
    expect(page.locator("td.order-number", has_text=number)).to_be_visible()
    watched_page.screenshot("order-history")

    # The cart was emptied by the checkout.
    page.goto("/cart/")
    expect(page.locator("main")).to_contain_text("Your cart is empty")

    watched_page.assert_clean()


def test_staff_dashboard_draws_the_revenue_chart(watched_page: WatchedPage) -> None:
    page = watched_page.page
    log_in(watched_page, *DEMO_STAFF)

    page.goto("/staff/dashboard/")
    canvas = page.locator("canvas#revenue-chart")
    expect(canvas).to_be_visible()
    page.wait_for_function(CHART_DRAWN_JS, arg="#revenue-chart", timeout=15_000)
    points = page.evaluate(
        "(sel) => Chart.getChart(document.querySelector(sel)).data.datasets[0].data.length",
        "#revenue-chart",
    )
    assert points > 0, "the revenue chart has no data points"
    box = canvas.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 100, f"chart is too small: {box}"
    # Seeded orders are spread over recent days, so the 30-day totals are not zero.
    expect(page.locator("#stat-orders")).not_to_have_text("0")
    expect(page.locator("#recent-orders tbody tr").first).not_to_contain_text("No orders")
    watched_page.screenshot("staff-dashboard")

    watched_page.assert_clean()


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
