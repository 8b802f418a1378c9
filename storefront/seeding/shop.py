"""`storefront seed` end to end: sizes, the emptiness check, and one transaction that loads the
shop through the apps' bulk-load services and rebuilds the dashboards' sales tables."""

from __future__ import annotations

import random
import time
from datetime import date

from django.db import transaction
from django.utils import timezone

from storefront import caching
from storefront.accounts import services as account_services
from storefront.accounts.models import User
from storefront.bulk_load import loader_for_connection
from storefront.catalog import services as catalog_services
from storefront.catalog.models import Category, Product
from storefront.dashboards import sales as dashboard_sales
from storefront.dashboards.models import DailySales, ProductDailySales, ProductSales30d
from storefront.orders import bulk as order_bulk
from storefront.orders.models import Order, OrderLine
from storefront.seeding.catalogue import Catalogue, category_plan, category_rows
from storefront.seeding.clock import Clock
from storefront.seeding.demo import ensure_demo_accounts
from storefront.seeding.images import ensure_placeholder_images
from storefront.seeding.order_history import load_orders
from storefront.seeding.report import Progress, SeedReport
from storefront.seeding.shoppers import (
    SHOPPER_PASSWORD,
    Shopper,
    load_shoppers,
    seeded_shoppers,
)

DEFAULT_PRODUCTS = 2_000
DEFAULT_ORDERS = 5_000
DEFAULT_USERS = 200
DEFAULT_CATEGORIES = 12
DEFAULT_SEED = 1


def shop_data_counts() -> dict[str, int]:
    """Rows that a seed would collide with or replace; all zero means the shop is empty."""
    return {
        "products": Product.objects.count(),
        "categories": Category.objects.count(),
        "orders": Order.objects.count(),
        "seeded shoppers": seeded_shoppers().count(),
    }


def validate_sizes(*, products: int, orders: int, users: int, categories: int) -> None:
    """Raise ValueError for sizes the generator cannot honour."""
    for name, value in (("products", products), ("orders", orders), ("users", users)):
        if value < 0:
            raise ValueError(f"--{name} must be 0 or more, not {value}.")
    most = len(category_plan())
    if not 1 <= categories <= most:
        raise ValueError(f"--categories must be between 1 and {most}, not {categories}.")
    if orders and not products:
        raise ValueError("Orders need products: give --products 1 or more.")


def seed_shop(
    *,
    products: int = DEFAULT_PRODUCTS,
    orders: int = DEFAULT_ORDERS,
    users: int = DEFAULT_USERS,
    categories: int = DEFAULT_CATEGORIES,
    seed: int = DEFAULT_SEED,
    reset: bool = False,
    today: date | None = None,
    progress: Progress | None = None,
) -> SeedReport:
    """Write a deterministic shop into an empty database (or one emptied by `reset`).

    The caller checks emptiness (see shop_data_counts); everything runs in one transaction.
    """
    validate_sizes(products=products, orders=orders, users=users, categories=categories)
    say = progress or (lambda message: None)
    started = time.perf_counter()
    report = SeedReport(seed=seed)
    rng = random.Random(seed)
    clock = Clock(today or timezone.localdate())
    loader = loader_for_connection()
    seeded_models = [Category, Product, Order, OrderLine, User]

    with transaction.atomic():
        # PostgreSQL refuses TRUNCATE and ALTER TABLE on a table with foreign-key checks still
        # queued in this transaction (Django's constraints are deferred), as a caller's earlier
        # writes or the reset's deletes leave them.
        loader.settle_deferred_checks()
        if reset:
            with report.phase("reset"):
                _delete_shop_data()
                loader.settle_deferred_checks()
            say("Removed the previous shop data.")
        with report.phase("images"):
            images = ensure_placeholder_images()
        with report.phase("demo accounts"):
            customer, _staff = ensure_demo_accounts()

        loader.defer_indexes(models=[Product, Order, OrderLine])

        kinds, rows = category_rows(count=categories)
        with report.table("categories") as stats:
            stats.rows += catalog_services.bulk_load_categories(loader=loader, rows=rows)

        with report.table("users") as stats:
            written, shopper_pool = load_shoppers(loader=loader, rng=rng, count=users, clock=clock)
            stats.rows += written
        say(f"Users: {users:,} shoppers (password {SHOPPER_PASSWORD!r}).")

        with report.table("products") as stats:
            catalogue = Catalogue.generate(
                rng=rng, count=products, kinds=kinds, images=images, clock=clock
            )
            stats.rows += catalog_services.bulk_load_products(
                loader=loader, rows=catalogue.rows(loader)
            )
        say(f"Products: {products:,}.")

        load_orders(
            loader=loader,
            report=report,
            rng=rng,
            count=orders,
            catalogue=catalogue,
            shoppers=shopper_pool,
            demo=Shopper.of(customer),
            clock=clock,
            say=say,
        )

        if loader.indexes_deferred:
            with report.phase("indexes and constraints"):
                loader.restore_indexes()
        loader.reset_sequences(models=seeded_models)
        with report.phase("analyze"):
            loader.analyze(models=seeded_models)
        # The staff dashboard reads the denormalized sales tables, not the orders.
        with report.phase("sales tables"):
            dashboard_sales.refresh_daily_sales()
            # Statistics for the sales tables too, or the planner guesses at their size.
            loader.analyze(models=[DailySales, ProductDailySales, ProductSales30d])
        # The rows went in through bulk loads, which send no model signals: nothing told the
        # cache. Pages cached before (an empty listing, the old catalog) would outlive the seed,
        # so every cached page and fragment is dropped once the data is committed.
        transaction.on_commit(caching.clear)
    report.total_seconds = time.perf_counter() - started
    return report


def _delete_shop_data() -> None:
    """Remove orders, products, categories and seeded shoppers; other users stay."""
    order_bulk.delete_all_orders()
    catalog_services.delete_catalog()
    account_services.users_delete(users=seeded_shoppers())
