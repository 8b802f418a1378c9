import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from storefront.catalog.models import Product
from tests.factories import CategoryFactory, StaffFactory

pytestmark = pytest.mark.django_db


def png_bytes(size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), "teal").save(buffer, format="PNG")
    return buffer.getvalue()


def post_product(client: Client, upload: SimpleUploadedFile):
    category = CategoryFactory()
    return client.post(
        "/admin/catalog/product/add/",
        {
            "name": "Teal Tile",
            "slug": "teal-tile",
            "sku": "TILE-1",
            "description": "",
            "price": "3.00",
            "stock": "4",
            "category": category.pk,
            "is_active": "on",
            "image": upload,
        },
    )


def test_admin_accepts_a_png_and_stores_it_in_media(client: Client, settings) -> None:
    client.force_login(StaffFactory(is_superuser=True))
    response = post_product(client, SimpleUploadedFile("tile.png", png_bytes(), "image/png"))
    assert response.status_code == 302
    product = Product.objects.get(slug="teal-tile")
    assert product.image.name.startswith("products/")
    assert (settings.MEDIA_ROOT / product.image.name).is_file()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("tile.png", b"<script>alert(1)</script>", "Upload a valid image."),
        ("tile.ico", png_bytes(), "File extension “ico” is not allowed."),
        ("tile.html", b"<html></html>", "Upload a valid image."),
    ],
)
def test_admin_refuses_bad_images(client: Client, name: str, content: bytes, message: str) -> None:
    client.force_login(StaffFactory(is_superuser=True))
    response = post_product(client, SimpleUploadedFile(name, content))
    assert response.status_code == 200  # the admin re-renders its form with the error
    assert message in response.content.decode()
    assert not Product.objects.filter(slug="teal-tile").exists()


def test_admin_refuses_oversized_images(client: Client, settings) -> None:
    settings.STOREFRONT_MAX_UPLOAD_MB = 0
    client.force_login(StaffFactory(is_superuser=True))
    response = post_product(client, SimpleUploadedFile("tile.png", png_bytes(), "image/png"))
    assert "the limit is 0 MB" in response.content.decode()
    assert not Product.objects.filter(slug="teal-tile").exists()
