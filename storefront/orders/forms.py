from __future__ import annotations

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
