from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """The shop's user: Django's auth user plus the profile fields checkout needs.

    A custom user model from day one (Django's own advice) keeps profile data in one row,
    so pages that show the user never need a second query for a profile.
    """

    email = models.EmailField("email address", unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    phone = models.CharField(max_length=32, blank=True)
    address_line = models.CharField("address", max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=100, blank=True)
    marketing_opt_in = models.BooleanField("send me offers by email", default=False)

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.username

    @property
    def display_name(self) -> str:
        return self.full_name or self.username

    @property
    def shipping_address(self) -> str:
        parts = [self.address_line, f"{self.postal_code} {self.city}".strip(), self.country]
        return "\n".join(p for p in parts if p)
