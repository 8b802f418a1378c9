"""`{% load links %}`: Django's ``{% url %}`` and ``{% static %}``, answers remembered per process.

Same syntax and output as the built-in tags (they subclass them). Why not the built-ins: Django
caches neither answer. A ``reverse()`` costs ~40 µs and a manifest static URL ~30 µs here, and
the site's header alone asks for eight URLs and two static files on every page: ~0.4 ms of
an uncached listing's ~4.8 ms (measured with bench-style CPU timing, docs/performance.md).

What is remembered, and why it stays right:

* ``{% url %}`` per view name and argument values, when those are strings or numbers (an
  object as argument goes to ``reverse()`` each time, as with the built-in tag), in a bounded
  LRU (URL_CACHE_SIZE). The key holds everything ``reverse()`` depends on besides the URLconf's
  contents: the current app (as the built-in tag finds it), the script prefix and the thread's
  URLconf.
* ``{% static %}`` per path: the storage answers from its manifest, read once at start.

Both are forgotten when a setting changes (tests' ``override_settings``: STATIC_URL,
ROOT_URLCONF, STORAGES), the only way either answer changes inside a running process.
"""

from __future__ import annotations

import functools
from typing import Any

from django import template
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template.base import Parser, Token
from django.template.context import Context
from django.template.defaulttags import URLNode
from django.template.defaulttags import url as builtin_url
from django.templatetags.static import StaticNode
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString

register = template.Library()

_statics: dict[str, str] = {}
# Distinct URLs remembered (per process): the site's fixed links plus the most used
# per-object ones (a product's add-to-cart URL); least recently used ones are dropped.
URL_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=URL_CACHE_SIZE)
def _reverse(
    name: str,
    args: tuple,
    kwargs: tuple,
    current_app: str | None,
    script_prefix: str,
    urlconf: str | None,
) -> str:
    """reverse(), keyed on everything it depends on besides the URLconf's contents (the
    script prefix is read by reverse() itself; it is in the key so each prefix has its own)."""
    return reverse(name, args=args, kwargs=dict(kwargs), current_app=current_app, urlconf=urlconf)


@receiver(setting_changed)
def _forget(**kwargs: Any) -> None:
    _reverse.cache_clear()
    _statics.clear()


class CachedURLNode(URLNode):
    def __init__(self, node: URLNode) -> None:
        super().__init__(node.view_name, node.args, node.kwargs, node.asvar)

    def render(self, context: Context) -> str:
        args = tuple(arg.resolve(context) for arg in self.args)
        kwargs = tuple(sorted((k, v.resolve(context)) for k, v in self.kwargs.items()))
        name = self.view_name.resolve(context)
        values = (name, *args, *(v for _, v in kwargs))
        if not all(type(v) in _KEYABLE for v in values):
            return super().render(context)  # e.g. a model instance as argument: as Django does
        try:
            url = _reverse(name, args, kwargs, *_url_environment(context))
        except NoReverseMatch:
            if self.asvar is None:
                raise
            url = ""
        if self.asvar:
            context[self.asvar] = url
            return ""
        return conditional_escape(url) if context.autoescape else url


_ENVIRONMENT = "storefront.template_links.environment"


def _url_environment(context: Context) -> tuple[str | None, str, str | None]:
    """What `reverse()` depends on besides the view and its arguments: the current app (found
    exactly as URLNode.render finds it), the script prefix and the thread's URLconf. None of
    them changes while a template renders, so they are read once per render (kept in its
    render context) instead of once per link: ~10 µs a link, a page's header has eight."""
    render_context = context.render_context
    environment = render_context.get(_ENVIRONMENT)
    if environment is None:
        try:
            current_app = context.request.current_app
        except AttributeError:
            try:
                current_app = context.request.resolver_match.namespace
            except AttributeError:
                current_app = None
        environment = (current_app, get_script_prefix(), get_urlconf())
        render_context[_ENVIRONMENT] = environment
    return environment


# Argument types whose value alone decides the URL (and that hash by value).
_KEYABLE = (str, int, SafeString)


class CachedStaticNode(StaticNode):
    @classmethod
    def handle_simple(cls, path: str) -> str:
        url = _statics.get(path)
        if url is None:
            url = _statics[path] = super().handle_simple(path)
        return url


@register.tag
def url(parser: Parser, token: Token) -> CachedURLNode:
    """``{% url %}`` (same arguments), remembered when every argument is a literal."""
    return CachedURLNode(builtin_url(parser, token))


@register.tag
def static(parser: Parser, token: Token) -> CachedStaticNode:
    """``{% static %}`` (same arguments), remembered per path."""
    return CachedStaticNode.handle_token(parser, token)
