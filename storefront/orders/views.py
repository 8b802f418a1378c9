from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware, get_token
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from storefront import pagination
from storefront.catalog.models import Product
from storefront.catalog.selectors import product_for_cart
from storefront.error_pages import error_response
from storefront.orders import selectors, services
from storefront.orders.cart import Cart, CartError
from storefront.orders.forms import CheckoutForm, QuantityForm
from storefront.orders.models import Order
from storefront.orders.shipping import profile_shipping_address


def _cart_page(request: HttpRequest, *, errors: list[str] | None = None, status: int = 200):
    return render(
        request,
        "orders/cart.html",
        {"cart": Cart(request.session).contents(), "errors": errors or []},
        status=status,
    )


def cart_page(request: HttpRequest) -> HttpResponse:
    return _cart_page(request)


def _product_for_cart(product_id: int) -> Product:
    product = product_for_cart(product_id=product_id)
    if product is None:
        raise Http404("That product does not exist.")
    return product


def _change_cart(request: HttpRequest, product_id: int, *, replace: bool) -> HttpResponse:
    form = QuantityForm(request.POST)
    if not form.is_valid():
        return _cart_page(request, errors=form.errors["quantity"], status=400)
    product = _product_for_cart(product_id)
    cart = Cart(request.session, user=request.user)
    before = cart.quantity_of(product.id)
    quantity = form.cleaned_data["quantity"]
    try:
        if replace:
            cart.set(product=product, quantity=quantity)
        else:
            cart.add(product=product, quantity=quantity)
    except CartError as exc:
        return _cart_page(request, errors=[str(exc)], status=409)
    if not replace or not before:
        messages.success(request, f"{product.name} is in your cart.")
    elif before == quantity:
        messages.info(request, f"{product.name}: quantity is still {quantity}.")
    else:
        messages.success(request, f"{product.name}: quantity changed from {before} to {quantity}.")
    return redirect("orders:cart")


# Django's own CSRF check, called by cart_add (see there) instead of by the middleware.
_csrf = CsrfViewMiddleware(lambda request: HttpResponse())


@csrf_exempt  # checked inside by CsrfViewMiddleware itself, with a gentler failure
@require_POST
def cart_add(request: HttpRequest, product_id: int) -> HttpResponse:
    """Add to the cart from a product page.

    Product pages are cached once for every anonymous visitor (and by nginx's microcache), so
    their add-to-cart form holds no CSRF token and the page sets no cookie;
    static/js/add-to-cart.js fetches a token (`cart_token`) when the form is submitted. A
    browser without JavaScript posts without one: rather than the 403 "form expired" page,
    which would lose the choice, it gets a page asking to confirm, with a token and the same
    product and quantity. Any other CSRF failure (a wrong token, another site's Origin) is the
    usual 403.
    """
    refused = _csrf.process_view(request, None, (), {})  # None: not the exempt view
    if refused is not None:
        if not _without_token_from_this_site(request):
            return refused
        form = QuantityForm(request.POST)
        if not form.is_valid():
            return _cart_page(request, errors=form.errors["quantity"], status=400)
        product = _product_for_cart(product_id)
        return render(
            request,
            "orders/cart_confirm.html",
            {"product": product, "quantity": form.cleaned_data["quantity"]},
        )
    return _change_cart(request, product_id, replace=False)


def _without_token_from_this_site(request: HttpRequest) -> bool:
    """No token at all (the cached form), and no Origin naming another site."""
    if request.POST.get("csrfmiddlewaretoken") or request.META.get(settings.CSRF_HEADER_NAME):
        return False
    origin = request.META.get("HTTP_ORIGIN")
    return origin is None or origin in (
        f"{request.scheme}://{request.get_host()}",
        *settings.CSRF_TRUSTED_ORIGINS,
    )


@never_cache
@require_safe
def cart_token(request: HttpRequest) -> HttpResponse:
    """This visitor's CSRF token (and, through CsrfViewMiddleware, its cookie) for the
    add-to-cart form of a cached product page."""
    return JsonResponse({"token": get_token(request)})


@require_POST
def cart_update(request: HttpRequest, product_id: int) -> HttpResponse:
    return _change_cart(request, product_id, replace=True)


@require_POST
def cart_remove(request: HttpRequest, product_id: int) -> HttpResponse:
    cart = Cart(request.session, user=request.user)
    was_in_cart = cart.quantity_of(product_id) > 0
    # Removed even when the product is gone from the shop: its id would linger in the session.
    cart.remove(product_id=product_id)
    product = product_for_cart(product_id=product_id)
    if product is None:
        if was_in_cart:
            messages.success(request, "Removed a product that is no longer sold from your cart.")
    elif was_in_cart:
        messages.success(request, f"Removed {product.name} from your cart.")
    else:
        messages.info(request, f"{product.name} was not in your cart.")
    return redirect("orders:cart")


@login_required
def checkout_page(request: HttpRequest) -> HttpResponse:
    cart = Cart(request.session)
    user = request.user
    form = CheckoutForm(
        request.POST or None,
        initial={
            "shipping_name": user.display_name,
            "shipping_address": profile_shipping_address(user=user),
            # A new key each time the form is rendered unbound (a re-rendered POST keeps its
            # own: that submission placed nothing).
            "idempotency_key": CheckoutForm.new_idempotency_key(),
        },
    )
    status = 200
    errors: list[str] = []
    if request.method == "POST":
        if form.is_valid():
            items = [
                services.OrderItem(product_id=pid, quantity=qty) for pid, qty in cart.items.items()
            ]
            try:
                order = services.place_order_from_cart(user=user, items=items, **form.cleaned_data)
            except services.AlreadyPlaced as exc:
                # The same form again (a double click, a retry): the first submission's order.
                # The cart is left alone: the first submission emptied it, and anything in it
                # now was added since.
                messages.info(request, "This order was already placed.")
                return redirect(exc.order)
            except services.CheckoutError as exc:
                errors, status = exc.messages, 409
            else:
                cart.clear()
                messages.success(request, f"Thank you! Your order {order.number} is placed.")
                return redirect(order)
        else:
            status = 400
    contents = cart.contents()
    if not contents.lines and request.method == "GET":
        messages.info(request, "Your cart is empty: add a product before checking out.")
        return redirect("orders:cart")
    return render(
        request,
        "orders/checkout.html",
        {"cart": contents, "form": form, "errors": errors},
        status=status,
    )


@login_required
def order_history_page(request: HttpRequest) -> HttpResponse:
    try:
        page = pagination.paginate(
            selectors.order_history_for(user=request.user),
            params=request.GET,
            per_page=selectors.ORDER_HISTORY_PAGE_SIZE,
            # A bookmarked ?page=N past the numbered pages: redirected to its cursor page.
            jump_rows=pagination.MAX_JUMP_ROWS,
        )
    except pagination.PageMoved as exc:
        return redirect(f"{request.path}{exc.url}")
    except pagination.BadPageRequest as exc:
        return error_response(request, status=400, message=str(exc))
    except pagination.PageNotFound as exc:
        raise Http404(str(exc) or "That page of your order history does not exist.") from None
    return render(request, "orders/order_list.html", {"page": page, "orders": page.items})


@login_required
def order_detail_page(request: HttpRequest, number: str) -> HttpResponse:
    try:
        order = selectors.order_detail_for(user=request.user, number=number)
    except Order.DoesNotExist:
        raise Http404("We could not find that order in your account.") from None
    return render(request, "orders/order_detail.html", {"order": order})
