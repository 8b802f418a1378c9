"""Storefront: a Django shop with its production stack."""

# Loaded with Django so that @shared_task binds to this app (settings, broker, eager mode).
from storefront.celery import app as celery_app

__all__ = ["celery_app"]
