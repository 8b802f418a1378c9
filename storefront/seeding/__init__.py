"""Demo and scale data: a category tree, products, shoppers and a year of their orders.

Every random choice comes from one ``random.Random(seed)`` and every date is an offset from
today's midnight in TIME_ZONE, so the same seed on the same day writes the same rows. The words
come from vocabulary.toml.

The rows are written through the apps' bulk-load services (catalog and accounts services,
storefront/orders/bulk.py), with PostgreSQL's COPY inside one transaction and the bulk tables'
secondary indexes and constraints rebuilt afterwards (storefront/bulk_load.py): that is what
keeps a million-order load within minutes. The dashboards rebuild their sales tables from the
orders at the end.

Modules: shop (the entry point), vocabulary, catalogue, shoppers, order_history, demo, images.
"""

from storefront.seeding.clock import HISTORY_DAYS
from storefront.seeding.demo import (
    DEMO_CUSTOMER,
    DEMO_CUSTOMER_PROFILE,
    DEMO_STAFF,
    DEMO_STAFF_PROFILE,
    ensure_demo_accounts,
)
from storefront.seeding.images import (
    PLACEHOLDER_COUNT,
    PLACEHOLDER_DIR,
    PLACEHOLDER_SIZE,
    ensure_placeholder_images,
)
from storefront.seeding.order_history import DEMO_ORDER_COUNT
from storefront.seeding.report import SeedReport, TableLoad
from storefront.seeding.shop import (
    DEFAULT_CATEGORIES,
    DEFAULT_ORDERS,
    DEFAULT_PRODUCTS,
    DEFAULT_SEED,
    DEFAULT_USERS,
    seed_shop,
    shop_data_counts,
    validate_sizes,
)
from storefront.seeding.shoppers import SHOPPER_EMAIL_DOMAIN, SHOPPER_PASSWORD, SHOPPER_PREFIX

__all__ = [
    "DEFAULT_CATEGORIES",
    "DEFAULT_ORDERS",
    "DEFAULT_PRODUCTS",
    "DEFAULT_SEED",
    "DEFAULT_USERS",
    "DEMO_CUSTOMER",
    "DEMO_CUSTOMER_PROFILE",
    "DEMO_ORDER_COUNT",
    "DEMO_STAFF",
    "DEMO_STAFF_PROFILE",
    "HISTORY_DAYS",
    "PLACEHOLDER_COUNT",
    "PLACEHOLDER_DIR",
    "PLACEHOLDER_SIZE",
    "SHOPPER_EMAIL_DOMAIN",
    "SHOPPER_PASSWORD",
    "SHOPPER_PREFIX",
    "SeedReport",
    "TableLoad",
    "ensure_demo_accounts",
    "ensure_placeholder_images",
    "seed_shop",
    "shop_data_counts",
    "validate_sizes",
]
