from __future__ import annotations

from decimal import Decimal

from django import forms

from storefront.catalog.selectors import SORT_LABELS

MAX_PRICE = Decimal("99999999.99")


class ProductFilterForm(forms.Form):
    """Validates the listing's query string; errors become a 400 page that names them."""

    q = forms.CharField(label="Search", required=False, max_length=200, strip=True)
    category = forms.SlugField(required=False, max_length=120)
    min_price = forms.DecimalField(
        label="Min price", required=False, min_value=0, max_value=MAX_PRICE, decimal_places=2
    )
    max_price = forms.DecimalField(
        label="Max price", required=False, min_value=0, max_value=MAX_PRICE, decimal_places=2
    )
    sort = forms.ChoiceField(required=False, choices=[("", "Default"), *SORT_LABELS.items()])

    def clean(self) -> dict:
        data = super().clean()
        low, high = data.get("min_price"), data.get("max_price")
        if low is not None and high is not None and low > high:
            raise forms.ValidationError("The minimum price must not be above the maximum price.")
        return data
