from __future__ import annotations

import functools
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.core.validators import FileExtensionValidator
from django.db import models
from django.db.models import Q
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.html import linebreaks
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from storefront.catalog.validators import validate_image_extension, validate_upload_size
from storefront.storage import PrivateStorage

# The expression the GIN index is built on; the search selector must use exactly this one so
# PostgreSQL can answer the query from the index.
SEARCH_CONFIG = "english"
PRODUCT_SEARCH_VECTOR = SearchVector("name", "description", config=SEARCH_CONFIG)


class Category(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=120, unique=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        # Product pages link their category twice: no reverse() per call (see Product's).
        urlconf = get_urlconf() or settings.ROOT_URLCONF
        return f"{_listing_url(get_script_prefix(), urlconf)}?category={self.slug}"


class ProductQuerySet(models.QuerySet):
    def active(self) -> ProductQuerySet:
        return self.filter(is_active=True)


_SLUG_PLACEHOLDER = "slug-placeholder-0"


@functools.lru_cache(maxsize=8)
def _listing_url(script_prefix: str, urlconf: str) -> str:
    """The listing's URL per script prefix and URLconf (see _product_url_pattern)."""
    return reverse("catalog:product_list", urlconf=urlconf)


@functools.lru_cache(maxsize=8)
def _product_url_pattern(script_prefix: str, urlconf: str) -> str:
    """The product URL with a placeholder slug, per script prefix and URLconf (both part of
    what reverse() depends on, so a test overriding either gets a fresh pattern)."""
    return reverse("catalog:product_detail", kwargs={"slug": _SLUG_PLACEHOLDER}, urlconf=urlconf)


class Product(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=220, unique=True)
    sku = models.CharField("SKU", max_length=40, unique=True)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.IntegerField(default=0)
    # Bumped by every write that changes `stock` (checkout, cancellation, admin, API, import).
    # Writers that set an absolute stock (the admin forms, the API's `stock`) send the version
    # they read and are refused if it moved: a sale made meanwhile is never silently undone.
    # db_default: bulk loaders that name their columns (the seed's COPY) need not know it.
    stock_version = models.PositiveIntegerField(default=0, db_default=0, editable=False)
    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="products", db_index=False
    )
    image = models.ImageField(
        upload_to="products/%Y/%m/",
        blank=True,
        validators=[validate_image_extension, validate_upload_size],
        help_text="JPEG, PNG or WebP.",
    )
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProductQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(price__gte=Decimal("0")), name="product_price_non_negative"
            ),
            models.CheckConstraint(condition=Q(stock__gte=0), name="product_stock_non_negative"),
        ]
        indexes = [
            # Category listing, newest first (also serves the category FK lookups).
            models.Index(fields=["category", "-created_at"], name="product_category_newest_idx"),
            # The default listing: active products, newest first.
            models.Index(
                fields=["-created_at", "-id"],
                condition=Q(is_active=True),
                name="product_active_newest_idx",
            ),
            models.Index(
                fields=["price", "id"], condition=Q(is_active=True), name="product_active_price_idx"
            ),
            models.Index(
                fields=["name", "id"], condition=Q(is_active=True), name="product_active_name_idx"
            ),
            # Staff dashboard: low stock among active products.
            models.Index(
                fields=["stock"], condition=Q(is_active=True), name="product_active_stock_idx"
            ),
            GinIndex(PRODUCT_SEARCH_VECTOR, name="product_search_gin"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        # Listings call this once per card: fill the reversed pattern instead of reversing
        # each time (a reverse() was ~15 % of an uncached listing page's time).
        urlconf = get_urlconf() or settings.ROOT_URLCONF
        return _product_url_pattern(get_script_prefix(), urlconf).replace(
            _SLUG_PLACEHOLDER, self.slug
        )

    # The product page's text as displayed: computed once per product version, since the page
    # reads the product from the cache, where these travel with it (catalog.selectors
    # .product_detail computes them before storing). The same output as the filters
    # `description|truncatechars:150` and `description|linebreaks`.
    @functools.cached_property
    def meta_description(self) -> str:
        return Truncator(self.description).chars(150)

    @functools.cached_property
    def description_html(self) -> SafeString:
        return mark_safe(linebreaks(self.description, autoescape=True))  # noqa: S308 - escaped

    @property
    def in_stock(self) -> bool:
        return self.stock > 0

    @property
    def stock_is_low(self) -> bool:
        """Shown as "Only N left" (the checkout invalidates cached listings on this range)."""
        return 0 < self.stock <= settings.STOREFRONT_LOW_STOCK_THRESHOLD


_private_import_storage = PrivateStorage("imports")


def private_import_storage() -> PrivateStorage:
    # A callable, so the migration records this function rather than a machine-specific path.
    return _private_import_storage


class ProductImport(models.Model):
    """One product CSV uploaded by staff and imported in batches by a Celery task."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    FINISHED = (Status.DONE, Status.FAILED)

    file = models.FileField(
        upload_to="%Y/%m/",
        storage=private_import_storage,
        max_length=255,
        validators=[FileExtensionValidator(allowed_extensions=["csv"]), validate_upload_size],
        help_text="A UTF-8 CSV file with the header sku,name,category,price,stock "
        "(optional: description,is_active).",
    )
    original_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Data rows in the file (known once the task has read it through), and rows handled so far.
    total_rows = models.PositiveIntegerField(null=True, blank=True)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField("created", default=0)
    updated_count = models.PositiveIntegerField("updated", default=0)
    unchanged_count = models.PositiveIntegerField("unchanged", default=0)
    rejected_count = models.PositiveIntegerField("rejected", default=0)
    # [{"line": 7, "sku": "AB-1", "reason": "..."}], the first REJECTED_ROWS_KEPT of them.
    rejected_rows = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="product_imports",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    REJECTED_ROWS_KEPT = 1000

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The import page: the most recent imports first.
            models.Index(fields=["-created_at"], name="productimport_newest_idx"),
        ]

    def __str__(self) -> str:
        return f"Product import #{self.pk} ({self.original_name or self.file.name})"

    def get_absolute_url(self) -> str:
        return reverse("catalog:product_import_detail", kwargs={"import_id": self.pk})

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def rejected_rows_not_listed(self) -> int:
        """Rejected rows beyond the ones kept in `rejected_rows`."""
        return max(0, self.rejected_count - len(self.rejected_rows))

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.total_rows:
            return 0
        return min(100, self.processed_rows * 100 // self.total_rows)
