"""Demo and scale data: a category tree, products, shoppers and a year of their orders.

Every random choice comes from one ``random.Random(seed)`` and every date is an offset from
today's midnight in TIME_ZONE, so the same seed on the same day writes the same rows.

PostgreSQL is loaded with COPY inside one transaction. The secondary indexes, unique and
foreign-key constraints of the bulk tables are dropped for the load and rebuilt afterwards (as
pg_restore does): building an index once from sorted data and checking a foreign key with one
join is many times cheaper than maintaining them row by row, and is what keeps a million-order
load within minutes. A failure rolls the whole transaction back, DDL included. SQLite, the
embedded default, gets batched INSERTs of the same rows, which is plenty for demo sizes.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from io import BytesIO

from django.contrib.auth.hashers import make_password
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management.color import no_style
from django.db import connection, transaction
from django.db.models import Model, QuerySet
from django.utils import timezone
from django.utils.text import slugify
from PIL import Image, ImageDraw, ImageFont

from storefront.accounts.models import User
from storefront.accounts.roles import ADMINS, staff_role
from storefront.catalog.models import Category, Product
from storefront.dashboards.models import DailySales, ProductDailySales, ProductSales30d
from storefront.dashboards.services import refresh_daily_sales
from storefront.orders.models import Order, OrderLine
from storefront.orders.services import NUMBER_ALPHABET
from storefront.orders.shipping import profile_shipping_address

# (username, password) of the demo accounts; `make run` prints them.
DEMO_CUSTOMER = ("demo", "demo-shopper-2026")
DEMO_STAFF = ("staff", "demo-staff-2026")
# Every seeded shopper (shopper00001, ...) shares this password, so load tests can log in as
# many distinct customers.
SHOPPER_PASSWORD = "shopper-2026"
SHOPPER_PREFIX = "shopper"
SHOPPER_EMAIL_DOMAIN = "example.com"

DEFAULT_PRODUCTS = 2_000
DEFAULT_ORDERS = 5_000
DEFAULT_USERS = 200
DEFAULT_CATEGORIES = 12
DEFAULT_SEED = 1

HISTORY_DAYS = 365
# The staff dashboard charts the last 30 days; each of them gets at least this many orders.
CHART_DAYS = 30
MIN_ORDERS_PER_CHART_DAY = 3
DEMO_ORDER_COUNT = 12
# The demo customer's orders fall within this many days, so their dashboard looks current.
DEMO_ORDER_WINDOW_DAYS = 180

PLACEHOLDER_DIR = "products/placeholders"
PLACEHOLDER_COUNT = 8
PLACEHOLDER_SIZE = 600

LOW_STOCK_SHARE = 0.08
INACTIVE_SHARE = 0.03
CANCELLED_SHARE = 0.03

# Rows per COPY or INSERT batch: large enough to amortise the round trip, small enough that a
# chunk of orders and their lines stays a few megabytes.
CHUNK_ROWS = 20_000

Progress = Callable[[str], None]


# --- the catalogue vocabulary ---------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One category's vocabulary: product nouns, materials, a price range and use cases."""

    name: str
    code: str  # SKU prefix
    nouns: tuple[str, ...]
    materials: tuple[str, ...]
    prices: tuple[int, int]  # whole currency units, low and high
    uses: tuple[str, ...]


@dataclass(frozen=True)
class Department:
    kind: Kind
    features: tuple[str, ...]
    children: tuple[Kind, ...]


def _words(text: str) -> tuple[str, ...]:
    return tuple(word.strip() for word in text.split("|"))


def _kind(
    name: str, code: str, prices: tuple[int, int], nouns: str, materials: str, uses: str
) -> Kind:
    return Kind(name, code, _words(nouns), _words(materials), prices, _words(uses))


DEPARTMENTS: tuple[Department, ...] = (
    Department(
        _kind(
            "Home & Living",
            "HOM",
            (8, 180),
            "Wall Clock | Photo Frame | Candle Holder | Vase | Mirror | Storage Basket",
            "Oak | Walnut | Ceramic | Brass | Rattan | Marble",
            "living rooms | entryways | gift giving | small flats",
        ),
        _words(
            "a hand-finished surface | a soft matte glaze | "
            "a hidden wall fixing | rounded, child-friendly edges"
        ),
        (
            _kind(
                "Lighting",
                "LGT",
                (25, 450),
                "Desk Lamp | Floor Lamp | Pendant Light | Table Lamp | Wall Sconce",
                "Brass | Walnut | Oak | Opal Glass | Steel | Ceramic",
                "reading corners | home offices | bedside tables | dining areas",
            ),
            _kind(
                "Furniture",
                "FUR",
                (60, 999),
                "Side Table | Bookshelf | Armchair | Coffee Table | Dining Chair | Bench",
                "Oak | Walnut | Ash | Beech | Steel | Rattan",
                "compact living rooms | dining rooms | hallways | studio flats",
            ),
            _kind(
                "Textiles",
                "TEX",
                (12, 350),
                "Rug | Throw Blanket | Cushion Cover | Curtain Panel | Duvet Cover",
                "Linen | Wool | Cotton | Velvet | Jute | Cashmere",
                "bedrooms | sofas | cold evenings | guest rooms",
            ),
        ),
    ),
    Department(
        _kind(
            "Kitchen",
            "KIT",
            (6, 160),
            "Serving Board | Utensil Set | Mixing Bowl | Spice Rack | Bread Bin",
            "Beech | Olive Wood | Stainless Steel | Enamel | Bamboo | Stoneware",
            "everyday cooking | weekend baking | small kitchens | dinner parties",
        ),
        _words(
            "a food-safe oil finish | a non-slip base | "
            "dishwasher-safe parts | a lifetime guarantee"
        ),
        (
            _kind(
                "Cookware",
                "CKW",
                (18, 420),
                "Frying Pan | Saucepan | Dutch Oven | Wok | Stockpot | Grill Pan",
                "Cast Iron | Carbon Steel | Copper | Stainless Steel | Enamelled",
                "induction hobs | searing and braising | slow cooking | family meals",
            ),
            _kind(
                "Tableware",
                "TBL",
                (8, 220),
                "Dinner Plate Set | Mug | Salad Bowl | Serving Platter | Teapot",
                "Stoneware | Porcelain | Glass | Bone China | Terracotta",
                "everyday dining | hosting friends | breakfast tables | outdoor dining",
            ),
            _kind(
                "Coffee & Tea",
                "COF",
                (9, 380),
                "French Press | Pour-Over Dripper | Coffee Grinder | Tea Infuser | Milk Jug",
                "Glass | Copper | Stainless Steel | Ceramic | Borosilicate",
                "slow mornings | coffee lovers | afternoon tea | office kitchens",
            ),
        ),
    ),
    Department(
        _kind(
            "Office",
            "OFF",
            (9, 190),
            "Desk Organiser | Letter Tray | Monitor Stand | Pen Pot | Filing Box",
            "Walnut | Oak | Cork | Felt | Steel | Leather",
            "home offices | tidy desks | hybrid working | study rooms",
        ),
        _words(
            "a scratch-resistant finish | cable management built in | "
            "a felt-lined base | a slim, space-saving profile"
        ),
        (
            _kind(
                "Stationery",
                "STA",
                (3, 140),
                "Fountain Pen | Notebook | Sketchbook | Pencil Case | Weekly Planner",
                "Leather | Recycled Paper | Brass | Linen | Cork",
                "note taking | sketching on the go | planning the week | gift giving",
            ),
            _kind(
                "Desk Accessories",
                "DSK",
                (12, 160),
                "Desk Mat | Cable Tray | Laptop Stand | Bookend Pair | Headphone Stand",
                "Walnut | Aluminium | Felt | Cork | Oak | Steel",
                "standing desks | home offices | video calls | shared workspaces",
            ),
            _kind(
                "Office Chairs",
                "CHR",
                (45, 999),
                "Task Chair | Stool | Kneeling Chair | Footrest | Drafting Chair",
                "Mesh | Leather | Oak | Wool Felt | Steel",
                "long working days | posture support | home offices | studios",
            ),
        ),
    ),
    Department(
        _kind(
            "Outdoor",
            "OUT",
            (15, 320),
            "Picnic Blanket | Lantern | Hammock | Cool Box | Deck Chair",
            "Canvas | Teak | Wool | Steel | Recycled Plastic",
            "garden parties | weekend trips | balconies | summer evenings",
        ),
        _words(
            "weatherproof construction | UV-resistant colours | "
            "a packable carry bag | rust-proof fittings"
        ),
        (
            _kind(
                "Garden",
                "GDN",
                (5, 260),
                "Planter | Watering Can | Pruning Shears | Bird Feeder | Garden Trowel",
                "Terracotta | Galvanised Steel | Cedar | Zinc | Copper",
                "herb gardens | patios | allotments | window boxes",
            ),
            _kind(
                "Camping",
                "CMP",
                (10, 650),
                "Tent | Sleeping Bag | Camp Stove | Headlamp | Daypack | Camping Mug",
                "Ripstop Nylon | Titanium | Down | Aluminium | Merino",
                "wild camping | festival weekends | hiking trips | cold nights",
            ),
            _kind(
                "Cycling",
                "CYC",
                (8, 240),
                "Bike Light | Pannier | Saddle | Bottle Cage | Bike Lock",
                "Aluminium | Leather | Waxed Canvas | Steel | Carbon",
                "daily commuting | touring | city riding | wet weather",
            ),
        ),
    ),
    Department(
        _kind(
            "Fashion",
            "FSH",
            (10, 280),
            "Tote Bag | Scarf | Beanie | Wallet | Belt | Gloves",
            "Leather | Wool | Cotton Canvas | Cashmere | Suede | Waxed Cotton",
            "everyday wear | city breaks | winter walks | gift giving",
        ),
        _words(
            "reinforced stitching | a relaxed fit | "
            "responsibly sourced fibres | a repair-for-life promise"
        ),
        (
            _kind(
                "Bags",
                "BAG",
                (25, 480),
                "Backpack | Messenger Bag | Duffel Bag | Crossbody Bag | Laptop Sleeve",
                "Waxed Canvas | Leather | Recycled Nylon | Cork | Cotton Canvas",
                "commuting | weekend trips | carrying a laptop | travel",
            ),
            _kind(
                "Accessories",
                "ACC",
                (6, 150),
                "Watch Strap | Sunglasses Case | Card Holder | Key Ring | Umbrella",
                "Leather | Brass | Wool | Silk | Linen",
                "everyday carry | gift giving | rainy days | travel",
            ),
            _kind(
                "Footwear",
                "SHO",
                (20, 260),
                "Slippers | Trainers | Boots | Sandals | Loafers",
                "Suede | Leather | Wool Felt | Canvas | Cork",
                "all-day comfort | city walking | lazy Sundays | muddy trails",
            ),
        ),
    ),
    Department(
        _kind(
            "Bath & Body",
            "BTH",
            (5, 140),
            "Bath Mat | Towel Set | Soap Dish | Toothbrush Holder | Bath Caddy",
            "Cotton | Bamboo | Marble | Teak | Waffle Cotton",
            "family bathrooms | spa evenings | guest rooms | small bathrooms",
        ),
        _words(
            "a quick-drying weave | natural, vegan ingredients | "
            "plastic-free packaging | a gentle, lasting scent"
        ),
        (
            _kind(
                "Skincare",
                "SKN",
                (4, 85),
                "Face Oil | Hand Cream | Body Lotion | Lip Balm | Cleanser",
                "Rosehip | Oat | Shea | Lavender | Aloe | Seaweed",
                "dry skin | sensitive skin | daily routines | winter weather",
            ),
            _kind(
                "Fragrance",
                "FRG",
                (9, 95),
                "Candle | Reed Diffuser | Room Spray | Incense Set | Wax Melt",
                "Cedar | Fig | Bergamot | Vetiver | Jasmine | Sea Salt",
                "cosy evenings | bedrooms | gift giving | home offices",
            ),
        ),
    ),
    Department(
        _kind(
            "Kids",
            "KID",
            (6, 220),
            "Building Blocks | Puzzle | Rocking Horse | Stacking Rings | Play Tent",
            "Beech | Felt | Organic Cotton | Birch Plywood | Wool",
            "toddlers | rainy afternoons | nurseries | birthday presents",
        ),
        _words(
            "non-toxic, water-based paints | safety-tested materials | "
            "no small parts | a storage bag included"
        ),
        (
            _kind(
                "Nursery",
                "NUR",
                (12, 300),
                "Cot Mobile | Baby Blanket | Changing Mat | Night Light | Toy Chest",
                "Organic Cotton | Merino | Beech | Felt | Birch",
                "newborns | bedtime routines | baby showers | small nurseries",
            ),
            _kind(
                "Games",
                "GAM",
                (8, 180),
                "Board Game | Card Game | Chess Set | Marble Run | Jigsaw",
                "Walnut | Birch | Cardboard | Felt | Marble",
                "family game nights | travel | curious minds | long weekends",
            ),
        ),
    ),
    Department(
        _kind(
            "Sports",
            "SPT",
            (8, 160),
            "Yoga Mat | Water Bottle | Jump Rope | Foam Roller | Gym Bag",
            "Cork | Natural Rubber | Stainless Steel | Recycled Polyester | Bamboo",
            "home workouts | the gym | stretching | staying hydrated",
        ),
        _words(
            "a sweat-resistant grip | lightweight construction | "
            "a two-year warranty | an easy-clean surface"
        ),
        (
            _kind(
                "Fitness",
                "FIT",
                (10, 450),
                "Dumbbell Set | Kettlebell | Resistance Band | Pull-Up Bar | Weight Bench",
                "Cast Iron | Neoprene | Steel | Latex | Chrome",
                "strength training | home gyms | rehabilitation | circuit workouts",
            ),
            _kind(
                "Running",
                "RUN",
                (9, 190),
                "Running Vest | Hydration Belt | Running Cap | Armband | Rain Jacket",
                "Merino | Recycled Polyester | Mesh | Softshell | Nylon",
                "marathon training | trail running | night runs | race day",
            ),
        ),
    ),
)

ADJECTIVES = _words(
    "Classic | Modern | Rustic | Nordic | Everyday | Heritage | Minimal | Handmade | "
    "Studio | Artisan | Coastal | Urban | Vintage | Essential | Signature | Alpine"
)

CLOSING_SENTENCES = (
    "Ships in recyclable packaging.",
    "Designed in our Bristol studio and made to last.",
    "Free returns within 30 days.",
    "Each piece varies slightly, which is part of its charm.",
    "A customer favourite, restocked every season.",
    "Pairs well with the rest of the collection.",
)

FIRST_NAMES = _words(
    "Olivia | Amelia | Isla | Ava | Mia | Grace | Freya | Lily | Sophie | Emily | Ella | Chloe | "
    "Ruby | Zara | Hannah | Nadia | Priya | Leila | Oliver | George | Harry | Noah | Jack | Leo | "
    "Arthur | Oscar | Charlie | Jacob | Thomas | James | Ethan | Samuel | Daniel | Omar | Ravi | "
    "Tomasz | Kwame | Liam"
)
LAST_NAMES = _words(
    "Smith | Jones | Taylor | Brown | Williams | Wilson | Johnson | Davies | Patel | Robinson | "
    "Wright | Thompson | Evans | Walker | White | Roberts | Green | Hall | Wood | Jackson | "
    "Clarke | Khan | Hughes | Edwards | Murphy | Kowalski | Okafor | Nguyen | Campbell | "
    "Bennett | Shah | Ali | Morgan | Price | Fletcher"
)
STREETS = _words(
    "High Street | Station Road | Church Lane | Mill Road | Park Avenue | Victoria Road | "
    "Queen Street | Harbour Street | Orchard Close | Elm Grove | Kings Road | Chapel Lane | "
    "Meadow Way | Riverside Walk"
)
# (city, postcode district); the inward part of the postcode is generated.
CITIES = tuple(
    tuple(pair.split(":"))
    for pair in _words(
        "London:E1 | London:N7 | Manchester:M4 | Bristol:BS1 | Leeds:LS6 | Edinburgh:EH3 | "
        "Glasgow:G12 | Cardiff:CF10 | Birmingham:B15 | Liverpool:L8 | Newcastle upon Tyne:NE1 | "
        "Brighton:BN1 | Oxford:OX4 | Cambridge:CB1 | York:YO1 | Belfast:BT7 | Nottingham:NG7 | "
        "Sheffield:S10 | Bath:BA1 | Norwich:NR2"
    )
)
POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
COUNTRY = "United Kingdom"

DEMO_CUSTOMER_PROFILE = {
    "email": "demo@example.com",
    "first_name": "Alex",
    "last_name": "Morgan",
    "full_name": "Alex Morgan",
    "phone": "+44 7700 900123",
    "address_line": "21 Harbour Street",
    "city": "Bristol",
    "postal_code": "BS1 4DJ",
    "country": COUNTRY,
    "marketing_opt_in": True,
}
DEMO_STAFF_PROFILE = {
    "email": "staff@example.com",
    "first_name": "Sam",
    "last_name": "Okafor",
    "full_name": "Sam Okafor",
}

# Line counts 1-5 and quantities 1-4 as cumulative shares; about 2.5 lines per order.
LINE_COUNT_CUMULATIVE = (0.25, 0.53, 0.75, 0.90, 1.0)
QUANTITY_CUMULATIVE = (0.65, 0.87, 0.96, 1.0)


# --- results --------------------------------------------------------------------------------


@dataclass
class TableLoad:
    rows: int = 0
    seconds: float = 0.0


@dataclass
class SeedReport:
    seed: int
    tables: dict[str, TableLoad] = field(default_factory=dict)
    # Work that is not one table's: reset, images, demo accounts, index rebuild, ANALYZE.
    phases: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0


# --- public entry points ----------------------------------------------------------------------


def shop_data_counts() -> dict[str, int]:
    """Rows that a seed would collide with or replace; all zero means the shop is empty."""
    return {
        "products": Product.objects.count(),
        "categories": Category.objects.count(),
        "orders": Order.objects.count(),
        "seeded shoppers": _seeded_shoppers().count(),
    }


def validate_sizes(*, products: int, orders: int, users: int, categories: int) -> None:
    """Raise ValueError for sizes the generator cannot honour."""
    for name, value in (("products", products), ("orders", orders), ("users", users)):
        if value < 0:
            raise ValueError(f"--{name} must be 0 or more, not {value}.")
    most = len(_category_plan())
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
    clock = _Clock(today or timezone.localdate())
    sink = _sink_for_connection()

    with transaction.atomic():
        # PostgreSQL refuses TRUNCATE and ALTER TABLE on a table with foreign-key checks still
        # queued in this transaction (Django's constraints are deferred), as a caller's earlier
        # writes or the reset's deletes leave them.
        sink.settle_deferred_checks()
        if reset:
            with _timed(report.phases, "reset"):
                _delete_shop_data()
                sink.settle_deferred_checks()
            say("Removed the previous shop data.")
        with _timed(report.phases, "images"):
            images = ensure_placeholder_images()
        with _timed(report.phases, "demo accounts"):
            customer, _staff = ensure_demo_accounts()

        rebuild = sink.defer_indexes(
            [Product._meta.db_table, Order._meta.db_table, OrderLine._meta.db_table]
        )

        kinds, category_rows = _category_rows(count=categories)
        _load(sink, report, "categories", Category, _CATEGORY_COLUMNS, category_rows)

        shopper_pool = _load_shoppers(sink, report, rng=rng, count=users, clock=clock)
        say(f"Users: {users:,} shoppers (password {SHOPPER_PASSWORD!r}).")

        generating = time.perf_counter()
        catalogue = _Catalogue.generate(
            rng=rng, count=products, kinds=kinds, images=images, clock=clock
        )
        report.tables["products"] = TableLoad(seconds=time.perf_counter() - generating)
        _load(sink, report, "products", Product, _PRODUCT_COLUMNS, catalogue.rows(sink))
        say(f"Products: {products:,}.")

        _load_orders(
            sink,
            report,
            rng=rng,
            count=orders,
            catalogue=catalogue,
            shoppers=shopper_pool,
            demo=_Shopper.of(customer),
            clock=clock,
            say=say,
        )

        if rebuild:
            with _timed(report.phases, "indexes and constraints"):
                sink.execute(rebuild)
        # Ids were written explicitly; move the identity sequences past them (SQLite does
        # that by itself).
        sink.execute(
            connection.ops.sequence_reset_sql(
                no_style(), [Category, Product, Order, OrderLine, User]
            )
        )
        with _timed(report.phases, "analyze"):
            sink.analyze([m._meta.db_table for m in (Category, Product, Order, OrderLine, User)])
        # The staff dashboard reads the denormalized sales tables, not the orders.
        with _timed(report.phases, "sales tables"):
            refresh_daily_sales()
            # Statistics for the sales tables too, or the planner guesses at their size.
            sink.analyze(
                [m._meta.db_table for m in (DailySales, ProductDailySales, ProductSales30d)]
            )
    report.total_seconds = time.perf_counter() - started
    return report


def ensure_placeholder_images(*, count: int = PLACEHOLDER_COUNT) -> list[str]:
    """Storage names of `count` generated product placeholder images, drawing missing ones.

    Files that exist are reused, so re-seeding neither redraws nor duplicates them.
    """
    names = []
    for index in range(count):
        name = f"{PLACEHOLDER_DIR}/placeholder-{index + 1}.png"
        if not default_storage.exists(name):
            name = default_storage.save(name, ContentFile(_placeholder_png(index)))
        names.append(name)
    return names


def ensure_demo_accounts() -> tuple[User, User]:
    """The demo customer and demo staff user, created with hashed passwords if missing.

    Existing accounts are left as they are: someone may have changed their password on purpose.
    """
    customer = User.objects.filter(username=DEMO_CUSTOMER[0]).first()
    if customer is None:
        customer = User.objects.create_user(
            DEMO_CUSTOMER[0], password=DEMO_CUSTOMER[1], **DEMO_CUSTOMER_PROFILE
        )
    staff = User.objects.filter(username=DEMO_STAFF[0]).first()
    if staff is None:
        staff = User.objects.create_superuser(
            DEMO_STAFF[0], password=DEMO_STAFF[1], **DEMO_STAFF_PROFILE
        )
        # The role says what the demo staff does, should the superuser flag ever be dropped.
        staff.groups.add(staff_role(ADMINS))
    return customer, staff


# --- dates ----------------------------------------------------------------------------------


class _Clock:
    """Epoch seconds of local midnights counted back from `today`."""

    def __init__(self, today: date) -> None:
        self.today = today
        self.midnight = self.day_start(0)

    def day_start(self, days_ago: int) -> int:
        day = self.today - timedelta(days=days_ago)
        return int(timezone.make_aware(datetime.combine(day, dt_time.min)).timestamp())


# --- row sinks --------------------------------------------------------------------------------


class _Sink(ABC):
    """Writes rows into a table; one implementation per database backend."""

    @abstractmethod
    def format_timestamp(self, epoch_seconds: int) -> str: ...

    @abstractmethod
    def write(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None: ...

    def defer_indexes(self, tables: Sequence[str]) -> list[str]:
        """Drop what slows a bulk load down; return the statements that put it back."""
        return []

    def execute(self, statements: Iterable[str]) -> None:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    def analyze(self, tables: Sequence[str]) -> None:
        self.execute(f"ANALYZE {connection.ops.quote_name(table)}" for table in tables)

    def settle_deferred_checks(self) -> None:
        """Run the foreign-key checks this transaction has deferred so far."""
        return None  # SQLite can alter and delete with checks pending


class _PostgresCopySink(_Sink):
    def format_timestamp(self, epoch_seconds: int) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(epoch_seconds))

    def write(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        quote = connection.ops.quote_name
        sql = f"COPY {quote(table)} ({', '.join(map(quote, columns))}) FROM STDIN"
        with connection.cursor() as cursor, cursor.copy(sql) as copy:
            write_row = copy.write_row
            for row in rows:
                write_row(row)

    def defer_indexes(self, tables: Sequence[str]) -> list[str]:
        # Unique constraints that another table's foreign key points at must stay; primary keys
        # stay too (rows arrive in key order, so keeping them costs little).
        constraints_sql = """
            SELECT format('ALTER TABLE %%s DROP CONSTRAINT %%I', c.conrelid::regclass, c.conname),
                   format('ALTER TABLE %%s ADD CONSTRAINT %%I %%s',
                          c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid))
            FROM pg_constraint c
            WHERE c.conrelid = ANY(%s::regclass[])
              AND (c.contype = 'f'
                   OR (c.contype = 'u' AND NOT EXISTS (
                        SELECT 1 FROM pg_constraint f
                        WHERE f.contype = 'f' AND f.conindid = c.conindid)))
            ORDER BY c.contype = 'u', c.conname
        """
        indexes_sql = """
            SELECT format('DROP INDEX %%s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
            FROM pg_index i
            WHERE i.indrelid = ANY(%s::regclass[])
              AND NOT EXISTS (
                SELECT 1 FROM pg_constraint c
                WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                  AND c.contype IN ('p', 'u', 'x'))
            ORDER BY i.indexrelid::regclass::text
        """
        with connection.cursor() as cursor:
            # Foreign keys first (in the order returned: FKs, then unique constraints).
            cursor.execute(constraints_sql, [list(tables)])
            constraints = cursor.fetchall()
            for drop, _create in constraints:
                cursor.execute(drop)
            cursor.execute(indexes_sql, [list(tables)])
            indexes = cursor.fetchall()
            for drop, _create in indexes:
                cursor.execute(drop)
        # Index builds sort in memory when they can; this is per operation, for this
        # transaction only.
        rebuild = ["SET LOCAL maintenance_work_mem = '256MB'"]
        rebuild += [create for _drop, create in indexes]
        # Unique constraints before the foreign keys that might need them.
        rebuild += [create for _drop, create in reversed(constraints)]
        return rebuild

    def analyze(self, tables: Sequence[str]) -> None:
        quote = connection.ops.quote_name
        self.execute([f"ANALYZE {', '.join(map(quote, tables))}"])

    def settle_deferred_checks(self) -> None:
        # Switching to immediate runs the queued checks now; then back to Django's default.
        self.execute(["SET CONSTRAINTS ALL IMMEDIATE", "SET CONSTRAINTS ALL DEFERRED"])


class _SqliteInsertSink(_Sink):
    def format_timestamp(self, epoch_seconds: int) -> str:
        # Django stores aware datetimes on SQLite as naive UTC text.
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch_seconds))

    def write(self, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        quote = connection.ops.quote_name
        placeholders = ", ".join(["%s"] * len(columns))
        # Table and column names come from the models, quoted; the values are parameters.
        names = ", ".join(map(quote, columns))
        sql = f"INSERT INTO {quote(table)} ({names}) VALUES ({placeholders})"  # noqa: S608 - see above
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)


def _sink_for_connection() -> _Sink:
    if connection.vendor == "postgresql":
        return _PostgresCopySink()
    return _SqliteInsertSink()


def _load(
    sink: _Sink,
    report: SeedReport,
    label: str,
    model: type[Model],
    columns: Sequence[str],
    rows: Iterable[tuple],
) -> None:
    """Write `rows` in chunks; the time spent generating them counts towards the table."""
    stats = report.tables.setdefault(label, TableLoad())
    started = time.perf_counter()
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, CHUNK_ROWS)):
        sink.write(model._meta.db_table, columns, chunk)
        stats.rows += len(chunk)
    stats.seconds += time.perf_counter() - started


@contextmanager
def _timed(phases: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = phases.get(name, 0.0) + time.perf_counter() - started


# --- reset ----------------------------------------------------------------------------------


def _seeded_shoppers() -> QuerySet[User]:
    return User.objects.filter(
        username__regex=rf"^{SHOPPER_PREFIX}[0-9]{{5,}}$",
        email__endswith=f"@{SHOPPER_EMAIL_DOMAIN}",
    )


def _delete_shop_data() -> None:
    """Remove orders, products, categories and seeded shoppers; other users stay."""
    tables = [m._meta.db_table for m in (OrderLine, Order, Product, Category)]
    if connection.vendor == "postgresql":
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(map(quote, tables))} RESTART IDENTITY CASCADE")
    else:
        OrderLine.objects.all().delete()
        Order.objects.all().delete()
        Product.objects.all().delete()
        # Categories protect their children, so remove the tree from the leaves up.
        while Category.objects.exists():
            Category.objects.filter(children__isnull=True).delete()
    _seeded_shoppers().delete()


# --- categories -----------------------------------------------------------------------------


_CATEGORY_COLUMNS = _words("id | name | slug | parent_id | description")


def _category_plan() -> list[tuple[Kind, Kind | None, tuple[str, ...]]]:
    """Every category as (kind, parent kind, features), in the order --categories takes them.

    Each department comes with its first two children, so the first N always form a small
    two-level tree; remaining children follow.
    """
    plan: list[tuple[Kind, Kind | None, tuple[str, ...]]] = []
    for dept in DEPARTMENTS:
        plan.append((dept.kind, None, dept.features))
        plan.extend((child, dept.kind, dept.features) for child in dept.children[:2])
    for dept in DEPARTMENTS:
        plan.extend((child, dept.kind, dept.features) for child in dept.children[2:])
    return plan


@dataclass(frozen=True)
class _PlacedKind:
    id: int
    kind: Kind
    features: tuple[str, ...]
    weight: float


def _category_rows(*, count: int) -> tuple[list[_PlacedKind], list[tuple]]:
    plan = _category_plan()[:count]
    ids = {kind.name: index + 1 for index, (kind, _parent, _f) in enumerate(plan)}
    has_children = {parent.name for _kind, parent, _f in plan if parent is not None}
    rows, placed = [], []
    for kind, parent, features in plan:
        description = f"{kind.name} for {kind.uses[0]}, {kind.uses[1]} and {kind.uses[2]}."
        rows.append(
            (
                ids[kind.name],
                kind.name,
                slugify(kind.name),
                parent and ids[parent.name],
                description,
            )
        )
        # Most products sit in the leaves; a department keeps a few general ones of its own.
        weight = 1.0 if kind.name in has_children else 3.0
        placed.append(_PlacedKind(ids[kind.name], kind, features, weight))
    return placed, rows


# --- users ----------------------------------------------------------------------------------


_USER_COLUMNS = _words(
    "id | password | last_login | is_superuser | username | first_name | last_name | email | "
    "is_staff | is_active | date_joined | full_name | phone | address_line | city | "
    "postal_code | country | marketing_opt_in"
)


@dataclass(frozen=True)
class _Shopper:
    id: int
    shipping_name: str
    shipping_address: str

    @classmethod
    def of(cls, user: User) -> _Shopper:
        return cls(user.id, user.display_name, profile_shipping_address(user=user))


def _load_shoppers(
    sink: _Sink, report: SeedReport, *, rng: random.Random, count: int, clock: _Clock
) -> list[_Shopper]:
    if connection.vendor == "postgresql":
        # Ids are assigned here, so hold off concurrent sign-ups until the sequence is moved on.
        with connection.cursor() as cursor:
            cursor.execute(
                f"LOCK TABLE {connection.ops.quote_name(User._meta.db_table)} "
                "IN SHARE ROW EXCLUSIVE MODE"
            )
    first_id = (User.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    shoppers: list[_Shopper] = []

    def rows() -> Iterator[tuple]:
        # One hash for all: hashing is deliberately slow, and 10,000 would take an hour.
        password = make_password(SHOPPER_PASSWORD)
        width = max(5, len(str(count)))
        for index in range(count):
            user_id = first_id + index
            username = f"{SHOPPER_PREFIX}{index + 1:0{width}d}"
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            city, district = rng.choice(CITIES)
            postcode = (
                f"{district} {rng.randrange(1, 10)}"
                f"{rng.choice(POSTCODE_LETTERS)}{rng.choice(POSTCODE_LETTERS)}"
            )
            street = f"{rng.randrange(1, 200)} {rng.choice(STREETS)}"
            joined = clock.midnight - int(86_400 * (HISTORY_DAYS + rng.random() * HISTORY_DAYS))
            full_name = f"{first} {last}"
            # The address lines as profile_shipping_address() writes them for a real checkout.
            address = "\n".join((street, city, postcode, COUNTRY))
            shoppers.append(_Shopper(user_id, full_name, address))
            yield (
                user_id,
                password,
                None,
                False,
                username,
                first,
                last,
                f"{username}@{SHOPPER_EMAIL_DOMAIN}",
                False,
                True,
                sink.format_timestamp(joined),
                full_name,
                f"+44 7700 900{rng.randrange(1000):03d}",
                street,
                city,
                postcode,
                COUNTRY,
                rng.random() < 0.3,
            )

    _load(sink, report, "users", User, _USER_COLUMNS, rows())
    return shoppers


# --- products -------------------------------------------------------------------------------


_PRODUCT_COLUMNS = _words(
    "id | name | slug | sku | description | price | "
    "stock | category_id | image | is_active | created_at | updated_at"
)


def _article(word: str) -> str:
    return "An" if word[0].lower() in "aeiou" else "A"


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


@dataclass
class _Catalogue:
    """Products in creation order (ids ascending with created_at), plus what orders copy."""

    names: list[str]
    skus: list[str]
    price_cents: list[int]
    created: list[int]  # epoch seconds, ascending
    # Running sum of popularity weights, so picking a product is one bisect.
    popularity: list[float]
    details: list[tuple]  # the remaining product columns, formatted by rows()

    @classmethod
    def generate(
        cls,
        *,
        rng: random.Random,
        count: int,
        kinds: list[_PlacedKind],
        images: list[str],
        clock: _Clock,
    ) -> _Catalogue:
        window = HISTORY_DAYS * 86_400
        # Skewed towards older products, so that even the oldest orders have a choice.
        created = sorted(
            clock.midnight - max(1, int(window * (1 - rng.random() ** 2))) for _ in range(count)
        )
        cum_kind_weights = list(itertools.accumulate(k.weight for k in kinds))
        names, skus, cents, details = [], [], [], []
        slugs: dict[str, str] = {}
        for index in range(count):
            product_id = index + 1
            placed = rng.choices(kinds, cum_weights=cum_kind_weights)[0]
            kind = placed.kind
            material, noun = rng.choice(kind.materials), rng.choice(kind.nouns)
            adjective = rng.choice(ADJECTIVES) if rng.random() < 0.6 else ""
            name = f"{adjective} {material} {noun}".lstrip()
            if name not in slugs:
                slugs[name] = slugify(name)
            described = f"{adjective} {material} {noun}".strip().lower()
            sentences = [
                f"{_article(described)} {described} with {rng.choice(placed.features)}.",
                "Made for {} and {}.".format(*rng.sample(kind.uses, 2))
                if rng.random() < 0.5
                else f"Ideal for {rng.choice(kind.uses)}.",
            ]
            if rng.random() < 0.5:
                sentences.append(rng.choice(CLOSING_SENTENCES))
            low, high = kind.prices
            whole = int(math.exp(rng.uniform(math.log(low), math.log(high))))
            price = min(max(whole * 100 + rng.choice((99, 0, 50, 95, 49)), 100), 99_999)
            roll = rng.random()
            stock = rng.randint(0, 5) if roll < LOW_STOCK_SHARE else rng.randint(6, 200)
            names.append(name)
            skus.append(f"{kind.code}-{product_id:06d}")
            cents.append(price)
            details.append(
                (
                    f"{slugs[name]}-{product_id}",
                    " ".join(sentences),
                    stock,
                    placed.id,
                    rng.choice(images) if images else "",
                    rng.random() >= INACTIVE_SHARE,
                )
            )
        popularity = list(
            itertools.accumulate(min(rng.paretovariate(1.2), 50.0) for _ in range(count))
        )
        return cls(names, skus, cents, created, popularity, details)

    def rows(self, sink: _Sink) -> Iterator[tuple]:
        fmt = sink.format_timestamp
        for index, (slug, description, stock, category_id, image, active) in enumerate(
            self.details
        ):
            stamp = fmt(self.created[index])
            yield (
                index + 1,
                self.names[index],
                slug,
                self.skus[index],
                description,
                _money(self.price_cents[index]),
                stock,
                category_id,
                image,
                active,
                stamp,
                stamp,
            )


# --- orders ---------------------------------------------------------------------------------


_ORDER_COLUMNS = _words(
    "id | user_id | number | status | "
    "total | item_count | shipping_name | shipping_address | created_at"
)
_LINE_COLUMNS = _words(
    "id | order_id | product_id | product_name | product_sku | unit_price | quantity"
)


def _status_table(days_ago: int) -> tuple[tuple[float, str], ...]:
    """Cumulative status shares for an order placed `days_ago` days before today.

    Fresh orders are still placed or paid; a fortnight on, nearly everything is delivered.
    """
    s = Order.Status
    if days_ago <= 2:
        shares = ((s.PLACED, 0.5), (s.PAID, 0.5))
    elif days_ago <= 5:
        shares = ((s.PLACED, 0.1), (s.PAID, 0.4), (s.SHIPPED, 0.5))
    elif days_ago <= 12:
        shares = ((s.PAID, 0.05), (s.SHIPPED, 0.35), (s.DELIVERED, 0.6))
    else:
        shares = ((s.SHIPPED, 0.02), (s.DELIVERED, 0.98))
    table = [(CANCELLED_SHARE, s.CANCELLED.value)]
    total = CANCELLED_SHARE
    for status, share in shares:
        total += share * (1 - CANCELLED_SHARE)
        table.append((total, status.value))
    table[-1] = (1.0, table[-1][1])
    return tuple(table)


def _orders_per_day(*, rng: random.Random, count: int, clock: _Clock) -> list[int]:
    """How many orders fall on each of the HISTORY_DAYS days before today, oldest first.

    Business grows over the year and weekends are busier; every chart day gets a few.
    """
    weights = []
    for days_ago in range(HISTORY_DAYS, 0, -1):
        trend = 1.0 + 1.5 * (HISTORY_DAYS - days_ago) / HISTORY_DAYS
        weekend = (clock.today - timedelta(days=days_ago)).weekday() >= 5
        weights.append(trend * (1.15 if weekend else 1.0))
    picks = rng.choices(
        range(HISTORY_DAYS), cum_weights=list(itertools.accumulate(weights)), k=count
    )
    per_day = [0] * HISTORY_DAYS
    for day in picks:
        per_day[day] += 1
    first_chart_day = HISTORY_DAYS - CHART_DAYS
    floor = min(MIN_ORDERS_PER_CHART_DAY, count // CHART_DAYS)
    floors = [0] * first_chart_day + [floor] * CHART_DAYS
    for day in range(first_chart_day, HISTORY_DAYS):
        while per_day[day] < floor:
            # Take from the day with the most to spare; one exists, as count >= CHART_DAYS*floor.
            donor = max(range(HISTORY_DAYS), key=lambda d: per_day[d] - floors[d])
            per_day[donor] -= 1
            per_day[day] += 1
    return per_day


def _demo_slots(*, rng: random.Random, per_day: list[int]) -> set[int]:
    """Positions (in time order) of the demo customer's orders, spread over recent months."""
    total = sum(per_day)
    wanted = min(DEMO_ORDER_COUNT, total // 4)
    if not wanted:
        return set()
    # One order from the last two days, still placed or paid; the rest spread over the window.
    recent = min(sum(per_day[-2:]), total) or 1
    start = min(sum(per_day[: HISTORY_DAYS - DEMO_ORDER_WINDOW_DAYS]), total - wanted)
    span = max(total - recent - start, 0) / (wanted - 1) if wanted > 1 else 0
    slots = {start + int(span * (i + rng.random())) for i in range(wanted - 1)}
    slots.add(total - 1 - int(rng.random() * recent))
    return slots


def _order_numbers(rng: random.Random) -> Iterator[str]:
    """Unique "SF-XXXX-XXXX" numbers: 31^8 possibilities, drawn without repeats."""
    pairs = [a + b for a in NUMBER_ALPHABET for b in NUMBER_ALPHABET]
    base = len(pairs)
    space = base**4
    seen: set[int] = set()
    random_ = rng.random
    while True:
        value = int(random_() * space)
        if value in seen:
            continue
        seen.add(value)
        high, low = divmod(value, base * base)
        head = pairs[high // base] + pairs[high % base]
        tail = pairs[low // base] + pairs[low % base]
        yield f"SF-{head}-{tail}"


def _load_orders(
    sink: _Sink,
    report: SeedReport,
    *,
    rng: random.Random,
    count: int,
    catalogue: _Catalogue,
    shoppers: list[_Shopper],
    demo: _Shopper,
    clock: _Clock,
    say: Progress,
) -> None:
    """Generate `count` orders in time order with their lines, writing both in chunks.

    Lines are generated with their order, so generation time counts towards orders.
    """
    order_stats = report.tables.setdefault("orders", TableLoad())
    line_stats = report.tables.setdefault("order lines", TableLoad())
    order_table, line_table = Order._meta.db_table, OrderLine._meta.db_table
    per_day = _orders_per_day(rng=rng, count=count, clock=clock)
    demo_slots = _demo_slots(rng=rng, per_day=per_day)
    pool = list(shoppers) or [demo]
    rng.shuffle(pool)
    numbers = _order_numbers(rng)

    names, skus, cents = catalogue.names, catalogue.skus, catalogue.price_cents
    price_text = [_money(c) for c in cents]
    popularity, created = catalogue.popularity, catalogue.created
    fmt = sink.format_timestamp
    random_ = rng.random
    pick = bisect.bisect_right
    pool_size = len(pool)

    orders: list[tuple] = []
    lines: list[tuple] = []
    order_id = line_id = 0
    started = time.perf_counter()
    report_every = max(CHUNK_ROWS, count // 10)

    def flush() -> None:
        nonlocal started
        sink.write(order_table, _ORDER_COLUMNS, orders)
        wrote_orders = time.perf_counter()
        sink.write(line_table, _LINE_COLUMNS, lines)
        # Orders get the time since the last flush (generating this chunk) plus their write.
        order_stats.seconds += wrote_orders - started
        started = time.perf_counter()
        line_stats.seconds += started - wrote_orders
        order_stats.rows += len(orders)
        line_stats.rows += len(lines)
        if order_stats.rows // report_every != (order_stats.rows - len(orders)) // report_every:
            say(f"Orders: {order_stats.rows:,} of {count:,} ({line_stats.rows:,} lines).")
        orders.clear()
        lines.clear()

    for day, day_count in enumerate(per_day):
        if not day_count:
            continue
        days_ago = HISTORY_DAYS - day
        start, end = clock.day_start(days_ago), clock.day_start(days_ago - 1)
        # Products on sale by the end of that day; at least one so early orders are possible.
        available = max(pick(created, end), 1)
        top = popularity[available - 1]
        statuses = _status_table(days_ago)
        moments = sorted(start + int(random_() * (end - start)) for _ in range(day_count))
        for moment in moments:
            position = order_id
            order_id += 1
            shopper = demo if position in demo_slots else pool[int(random_() * pool_size)]
            roll = random_()
            status = next(s for threshold, s in statuses if roll < threshold)
            roll = random_()
            wanted = next(
                n for n, threshold in enumerate(LINE_COUNT_CUMULATIVE, 1) if roll < threshold
            )
            wanted = min(wanted, available)
            chosen: list[int] = []
            attempts = 0
            while len(chosen) < wanted:
                attempts += 1
                # Popularity is heavy-tailed; after a few clashes fall back to any product.
                if attempts <= 12:
                    index = pick(popularity, random_() * top, 0, available)
                else:
                    index = int(random_() * available)
                if index not in chosen:
                    chosen.append(index)
            total = items = 0
            for index in chosen:
                roll = random_()
                quantity = next(
                    q for q, threshold in enumerate(QUANTITY_CUMULATIVE, 1) if roll < threshold
                )
                line_id += 1
                lines.append(
                    (
                        line_id,
                        order_id,
                        index + 1,
                        names[index],
                        skus[index],
                        price_text[index],
                        quantity,
                    )
                )
                total += cents[index] * quantity
                items += quantity
            orders.append(
                (
                    order_id,
                    shopper.id,
                    next(numbers),
                    status,
                    _money(total),
                    items,
                    shopper.shipping_name,
                    shopper.shipping_address,
                    fmt(moment),
                )
            )
            if len(orders) >= CHUNK_ROWS:
                flush()
    if orders:
        flush()


def _placeholder_png(index: int) -> bytes:
    """A flat-colour square with a shape and a label: recognisably a placeholder, tiny as PNG."""
    palette = (
        ((143, 170, 140), (214, 226, 208)),
        ((196, 154, 108), (238, 219, 196)),
        ((112, 137, 168), (207, 219, 233)),
        ((181, 120, 126), (236, 210, 212)),
        ((150, 140, 180), (224, 219, 238)),
        ((120, 160, 160), (208, 230, 228)),
        ((200, 170, 90), (242, 230, 196)),
        ((110, 110, 120), (214, 214, 220)),
    )
    dark, light = palette[index % len(palette)]
    size = PLACEHOLDER_SIZE
    image = Image.new("RGB", (size, size), light)
    draw = ImageDraw.Draw(image)
    box = (size * 0.22, size * 0.18, size * 0.78, size * 0.74)
    match index % 4:
        case 0:
            draw.ellipse(box, fill=dark)
        case 1:
            draw.rounded_rectangle(box, radius=size // 12, fill=dark)
        case 2:
            draw.polygon([(size / 2, box[1]), (box[2], box[3]), (box[0], box[3])], fill=dark)
        case _:
            mid_x, mid_y = size / 2, (box[1] + box[3]) / 2
            draw.polygon(
                [(mid_x, box[1]), (box[2], mid_y), (mid_x, box[3]), (box[0], mid_y)], fill=dark
            )
    try:
        font: ImageFont.ImageFont | ImageFont.FreeTypeFont = ImageFont.load_default(size=56)
    except (TypeError, OSError):
        font = ImageFont.load_default()  # a Pillow without FreeType: small bitmap font
    label = "Storefront"
    left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
    draw.text(
        ((size - (right - left)) / 2, size * 0.82 - (bottom - top) / 2), label, fill=dark, font=font
    )
    buffer = BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
