"""`{% load links %}`: Django's ``{% url %}`` and ``{% static %}``, answers remembered per process.

Same syntax and output as the built-in tags (they subclass them). Why not the built-ins: Django
caches neither answer. A ``reverse()`` costs ~40 µs and a manifest static URL ~30 µs here, and
the site's header alone asks for eight URLs and two static files on every page: ~0.4 ms of
an uncached listing's ~4.8 ms (measured with bench-style CPU timing, docs/performance.md).

What is remembered, and why it stays right:

* ``{% url %}`` only when the view name and every argument are literals (``{% url 'orders:cart'
  %}``, ``{% url 'x' 3 %}``); one with a variable argument goes to ``reverse()`` each time. The
  key holds everything ``reverse()`` depends on besides the URLconf's contents: the current app
  (as the built-in tag finds it), the script prefix and the thread's URLconf.
* ``{% static %}`` per path: the storage answers from its manifest, read once at start.

Both are forgotten when a setting changes (tests' ``override_settings``: STATIC_URL,
ROOT_URLCONF, STORAGES), the only way either answer changes inside a running process.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template.base import FilterExpression, Parser, Token
from django.template.context import Context
from django.template.defaulttags import URLNode
from django.template.defaulttags import url as builtin_url
from django.templatetags.static import StaticNode
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse
from django.utils.html import conditional_escape

register = template.Library()

_urls: dict[tuple, str] = {}
_statics: dict[str, str] = {}


@receiver(setting_changed)
def _forget(**kwargs: Any) -> None:
    _urls.clear()
    _statics.clear()


def _literal(expression: FilterExpression) -> tuple[bool, Any]:
    """(True, value) for a literal without filters (``'name'``, ``3``), else (False, None)."""
    if expression.filters:
        return False, None
    if not expression.is_var:
        return True, expression.var
    if expression.var.lookups is None:  # a number
        return True, expression.var.literal
    return False, None


class CachedURLNode(URLNode):
    def __init__(self, node: URLNode) -> None:
        super().__init__(node.view_name, node.args, node.kwargs, node.asvar)
        parts = [_literal(self.view_name)]
        parts += [_literal(arg) for arg in self.args]
        kwarg_parts = {name: _literal(value) for name, value in self.kwargs.items()}
        self.constant = all(ok for ok, _ in parts) and all(ok for ok, _ in kwarg_parts.values())
        if self.constant:
            self.literal_name = parts[0][1]
            self.literal_args = tuple(value for _, value in parts[1:])
            self.literal_kwargs = tuple(sorted((k, v) for k, (_, v) in kwarg_parts.items()))

    def render(self, context: Context) -> str:
        if not self.constant:
            return super().render(context)
        # The current app exactly as URLNode.render finds it.
        try:
            current_app = context.request.current_app
        except AttributeError:
            try:
                current_app = context.request.resolver_match.namespace
            except AttributeError:
                current_app = None
        key = (
            self.literal_name,
            self.literal_args,
            self.literal_kwargs,
            current_app,
            get_script_prefix(),
            get_urlconf(),
        )
        url = _urls.get(key)
        if url is None:
            try:
                url = reverse(
                    self.literal_name,
                    args=self.literal_args,
                    kwargs=dict(self.literal_kwargs),
                    current_app=current_app,
                )
            except NoReverseMatch:
                if self.asvar is None:
                    raise
                url = ""
            else:
                _urls[key] = url
        if self.asvar:
            context[self.asvar] = url
            return ""
        return conditional_escape(url) if context.autoescape else url


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
