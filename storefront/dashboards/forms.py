from __future__ import annotations

from django import forms


class ExportFilterForm(forms.Form):
    """Which orders an export holds (the streamed CSV and the exports page): by local date."""

    since = forms.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Placed on or after this day (empty: from the first order).",
    )
    until = forms.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Placed on or before this day (empty: up to now).",
    )

    def clean(self) -> dict:
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("“since” must not be after “until”.")
        return data
