from __future__ import annotations

import uuid

from django import forms
from django.conf import settings


class QuantityForm(forms.Form):
    quantity = forms.IntegerField()

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # The limit is a setting, so the field is built per form rather than at import time.
        limit = settings.STOREFRONT_MAX_LINE_QUANTITY
        self.fields["quantity"] = forms.IntegerField(
            min_value=1,
            max_value=limit,
            error_messages={
                "required": "Say how many you want.",
                "invalid": "The quantity must be a whole number.",
                "min_value": "The quantity must be at least 1.",
                "max_value": f"You can order at most {limit} of one product.",
            },
        )


class CheckoutForm(forms.Form):
    shipping_name = forms.CharField(label="Full name", max_length=150)
    shipping_address = forms.CharField(
        label="Shipping address", max_length=500, widget=forms.Textarea(attrs={"rows": 3})
    )
    # One key per rendered checkout form (a fresh UUID each time the page is shown; see
    # views.checkout_page): the order stores it, so a second POST of the same form (a double
    # click, a browser retry) finds that order instead of placing another. Not signed: the key
    # only ever matches the same customer's orders, so choosing one gains nothing. Optional, so
    # a POST without it (an old page, a script) checks out as before, without that protection.
    idempotency_key = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def clean_idempotency_key(self) -> str:
        value = self.cleaned_data["idempotency_key"]
        if not value:
            return ""
        try:
            return str(uuid.UUID(value))
        except ValueError:
            # A hidden field's error would not be shown: say it for the whole form.
            self.add_error(None, "This checkout page is out of date: please submit it again.")
            return ""

    @staticmethod
    def new_idempotency_key() -> str:
        return str(uuid.uuid4())
