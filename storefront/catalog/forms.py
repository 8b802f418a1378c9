from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.validators import FileExtensionValidator

from storefront.catalog import import_parsing
from storefront.catalog.models import ProductImport
from storefront.catalog.selectors import SORT_LABELS
from storefront.catalog.validators import validate_upload_size

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


def _checked_csv(upload):
    """The obvious problems of an import file, found before it is queued."""
    try:
        import_parsing.check_upload(upload)
    except import_parsing.ImportFileError as exc:
        raise forms.ValidationError(str(exc), code="bad_csv") from None
    return upload


class ProductImportForm(forms.Form):
    """The staff import page's upload."""

    file = forms.FileField(
        label="CSV file",
        validators=[FileExtensionValidator(allowed_extensions=["csv"]), validate_upload_size],
        help_text="Header row: sku,name,category,price,stock (optional: description,is_active); "
        "category is a category slug.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def clean_file(self):
        return _checked_csv(self.cleaned_data["file"])


class ProductImportAdminForm(forms.ModelForm):
    """The admin's "add" form: the upload only (the model field validates extension and size)."""

    class Meta:
        model = ProductImport
        fields = ["file"]

    def clean_file(self):
        return _checked_csv(self.cleaned_data["file"])
