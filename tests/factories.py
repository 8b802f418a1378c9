"""factory_boy factories shared by every test package."""

from __future__ import annotations

from decimal import Decimal

import factory
from django.utils.text import slugify

from storefront.accounts import services as account_services
from storefront.accounts.models import User
from storefront.accounts.roles import ADMINS, staff_role
from storefront.catalog.models import Category, Product
from storefront.orders.models import Order, OrderLine

TEST_PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    full_name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", TEST_PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class StaffFactory(UserFactory):
    """A staff member in the Admins role, or in the roles given: StaffFactory(roles=[SUPPORT])."""

    is_staff = True
    username = factory.Sequence(lambda n: f"staff{n}")

    @factory.post_generation
    def roles(obj, create, extracted, **kwargs):
        if create:
            obj.groups.set(
                [staff_role(name) for name in (extracted if extracted is not None else [ADMINS])]
            )


def api_token_for(user: User) -> str:
    """A new API token for `user`, as /api/auth/token/ would return it."""
    return account_services.api_token_create(user=user)[1]


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category

    name = factory.Sequence(lambda n: f"Category {n}")
    slug = factory.LazyAttribute(lambda c: slugify(c.name))


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    name = factory.Sequence(lambda n: f"Product {n}")
    slug = factory.LazyAttribute(lambda p: slugify(p.name))
    sku = factory.Sequence(lambda n: f"SKU-{n:06d}")
    description = "A sturdy everyday product."
    price = Decimal("10.00")
    stock = 10
    category = factory.SubFactory(CategoryFactory)
    is_active = True


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    user = factory.SubFactory(UserFactory)
    number = factory.Sequence(lambda n: f"SF-T{n:03d}-TEST")
    status = Order.Status.PLACED
    total = Decimal("0")


class OrderLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    product = factory.SubFactory(ProductFactory)
    product_name = factory.LazyAttribute(lambda line: line.product.name)
    product_sku = factory.LazyAttribute(lambda line: line.product.sku)
    unit_price = factory.LazyAttribute(lambda line: line.product.price)
    quantity = 1


def order_with_lines(*, user: User, products: list[Product], quantity: int = 1) -> Order:
    order = OrderFactory(user=user)
    for product in products:
        OrderLineFactory(order=order, product=product, quantity=quantity)
    order.total = sum((p.price * quantity for p in products), Decimal("0"))
    order.item_count = quantity * len(products)
    order.save()
    return order
