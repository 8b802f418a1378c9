"""`{% load links %}` (storefront/template_links.py): the built-in tags' answers, remembered
only where nothing in the request can change them."""

from __future__ import annotations

import pytest
from django.template import engines
from django.test import RequestFactory, override_settings
from django.urls import NoReverseMatch, set_script_prefix

from storefront import template_links

pytestmark = pytest.mark.django_db


def _render(text: str, context: dict | None = None) -> str:
    return engines["django"].from_string(text).render(context or {})


@pytest.fixture(autouse=True)
def _fresh() -> None:
    template_links._forget()
    yield
    set_script_prefix("/")
    template_links._forget()


def test_same_answers_as_the_builtin_tags() -> None:
    pairs = [
        ("{% url 'catalog:product_list' %}", "/products/"),
        ("{% url 'orders:cart_add' 7 %}", "/cart/add/7/"),
        ("{% url 'orders:cart_add' product_id=7 %}", "/cart/add/7/"),
        ("{% url 'catalog:product_detail' slug %}", "/products/oak-desk/"),
        ("{% url 'catalog:product_list' as u %}[{{ u }}]", "[/products/]"),
        ("{% url 'no:such' as u %}[{{ u }}]", "[]"),
    ]
    for text, expected in pairs:
        builtin = _render(text, {"slug": "oak-desk"})
        linked = _render("{% load links %}" + text, {"slug": "oak-desk"})
        assert linked == builtin == expected, text
    with pytest.raises(NoReverseMatch):
        _render("{% load links %}{% url 'no:such' %}")
    assert _render("{% load links %}{% static 'css/site.css' %}") == _render(
        "{% load static %}{% static 'css/site.css' %}"
    )


def test_urls_are_remembered_per_argument_value_and_objects_are_not_keys() -> None:
    template = (
        "{% load links %}{% url 'catalog:product_list' %}|{% url 'catalog:product_detail' s %}"
    )
    assert _render(template, {"s": "a"}) == "/products/|/products/a/"
    assert _render(template, {"s": "b"}) == "/products/|/products/b/"
    assert _render(template, {"s": "a"}) == "/products/|/products/a/"
    info = template_links._reverse.cache_info()
    assert (info.currsize, info.hits) == (3, 3)

    class Slug:  # an object as argument: its str() may change, so reverse() every time
        def __init__(self, text: str) -> None:
            self.text = text

        def __str__(self) -> str:
            return self.text

    slug = Slug("c")
    text = "{% load links %}{% url 'catalog:product_detail' s %}"
    assert _render(text, {"s": slug}) == "/products/c/"
    slug.text = "d"
    assert _render(text, {"s": slug}) == "/products/d/"
    assert template_links._reverse.cache_info().currsize == 3


def test_a_script_prefix_or_a_changed_setting_gives_fresh_answers() -> None:
    template = "{% load links %}{% url 'catalog:product_list' %} {% static 'css/site.css' %}"
    plain = _render(template)
    set_script_prefix("/shop/")
    url, _ = _render(template).split()
    assert url == "/shop/products/"
    set_script_prefix("/")
    with override_settings(
        STATIC_URL="/assets/",
        STORAGES={
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
        },
    ):
        assert _render(template).split()[1] == "/assets/css/site.css"
    assert _render(template) == plain


def test_current_app_is_part_of_the_key() -> None:
    request = RequestFactory().get("/")
    request.current_app = "catalog"
    text = "{% load links %}{% url 'catalog:product_list' %}"
    assert engines["django"].from_string(text).render({}, request) == "/products/"
    assert _render(text) == "/products/"
    assert template_links._reverse.cache_info().currsize == 2
