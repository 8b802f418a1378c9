from decimal import Decimal

import pytest
from django.db import connection

from storefront.catalog import selectors
from storefront.catalog.models import Product
from tests.factories import CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db


def names(qs) -> list[str]:
    return [p.name for p in qs]


def test_listing_shows_only_active_products() -> None:
    ProductFactory(name="Visible Lamp")
    ProductFactory(name="Hidden Lamp", is_active=False)
    assert names(selectors.product_listing()) == ["Visible Lamp"]


def test_category_filter_includes_child_categories() -> None:
    furniture = CategoryFactory(name="Furniture")
    chairs = CategoryFactory(name="Chairs", parent=furniture)
    other = CategoryFactory(name="Garden")
    ProductFactory(name="Oak Table", category=furniture)
    ProductFactory(name="Bar Stool", category=chairs)
    ProductFactory(name="Hose", category=other)
    categories = selectors.category_list()
    ids = selectors.category_with_descendant_ids(category=furniture, categories=categories)
    assert sorted(names(selectors.product_listing(category_ids=ids))) == ["Bar Stool", "Oak Table"]
    ids = selectors.category_with_descendant_ids(category=chairs, categories=categories)
    assert names(selectors.product_listing(category_ids=ids)) == ["Bar Stool"]


def test_price_range_is_inclusive() -> None:
    for price in ("5.00", "10.00", "20.00", "30.00"):
        ProductFactory(name=f"P{price}", price=Decimal(price))
    got = selectors.product_listing(
        min_price=Decimal("10"), max_price=Decimal("20"), sort="price_asc"
    )
    assert names(got) == ["P10.00", "P20.00"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("price_asc", ["Cheap", "Middle", "Dear"]),
        ("price_desc", ["Dear", "Middle", "Cheap"]),
        ("name", ["Cheap", "Dear", "Middle"]),
        ("newest", ["Middle", "Dear", "Cheap"]),
    ],
)
def test_sorts(sort: str, expected: list[str]) -> None:
    ProductFactory(name="Cheap", price=Decimal("1.00"))
    ProductFactory(name="Dear", price=Decimal("99.00"))
    ProductFactory(name="Middle", price=Decimal("50.00"))
    assert names(selectors.product_listing(sort=sort)) == expected


def test_search_matches_name_and_description() -> None:
    ProductFactory(name="Walnut Desk Lamp", description="Warm light for reading.")
    ProductFactory(name="Steel Kettle", description="Boils water quickly, lamp not included.")
    ProductFactory(name="Linen Towel", description="Soft and absorbent.")
    assert sorted(names(selectors.product_listing(search="lamp"))) == [
        "Steel Kettle",
        "Walnut Desk Lamp",
    ]
    assert names(selectors.product_listing(search="absorbent")) == ["Linen Towel"]
    assert names(selectors.product_listing(search="   ")) != []


def test_full_text_search_stems_and_ranks_on_postgres(require_postgres) -> None:
    ProductFactory(name="Walnut Desk Lamp", description="A lamp. Lamps light rooms.")
    ProductFactory(name="Steel Kettle", description="Sits next to a lamp.")
    # Stemming: "lamps" finds "lamp"; ranking puts the product about lamps first.
    assert names(selectors.product_listing(search="lamps")) == ["Walnut Desk Lamp", "Steel Kettle"]
    # websearch syntax: exclusion with a minus sign.
    assert names(selectors.product_listing(search="lamp -kettle")) == ["Walnut Desk Lamp"]


def test_full_text_search_uses_the_gin_index(require_postgres) -> None:
    category = CategoryFactory()
    Product.objects.bulk_create(
        Product(name=f"Kettle {i}", slug=f"kettle-{i}", sku=f"K-{i}", price=1, category=category)
        for i in range(300)
    )
    ProductFactory(name="Walnut Lamp", category=category)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE catalog_product")
    qs = selectors.product_listing(search="lamp")
    assert names(qs) == ["Walnut Lamp"]
    assert "product_search_gin" in qs.explain()


def test_product_detail_hides_inactive_products() -> None:
    product = ProductFactory(is_active=False)
    with pytest.raises(type(product).DoesNotExist):
        selectors.product_detail(slug=product.slug)


def test_related_products_come_from_the_same_category() -> None:
    category = CategoryFactory()
    product = ProductFactory(category=category)
    siblings = ProductFactory.create_batch(5, category=category)
    ProductFactory()  # another category
    related = selectors.related_products(product=product, limit=4)
    assert len(related) == 4
    assert {p.pk for p in related} <= {p.pk for p in siblings}


def test_category_tree_nests_children() -> None:
    parent = CategoryFactory(name="Home")
    CategoryFactory(name="Kitchen", parent=parent)
    CategoryFactory(name="Books")
    tree = selectors.category_tree()
    assert [(n.category.name, [c.name for c in n.children]) for n in tree] == [
        ("Books", []),
        ("Home", ["Kitchen"]),
    ]
