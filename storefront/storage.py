"""File storage for staff-only files (CSV imports, order exports)."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage


class PrivateStorage(FileSystemStorage):
    """Files under PRIVATE_MEDIA_ROOT/<subdir>, which nginx never serves (staff download them
    through views that check permissions). The location is read from settings on each use, so
    tests and the Celery worker can move it; there is no public URL."""

    def __init__(self, subdir: str) -> None:
        super().__init__()
        self.subdir = subdir

    @property
    def base_location(self) -> str:
        return os.path.join(settings.PRIVATE_MEDIA_ROOT, self.subdir)

    @property
    def location(self) -> str:
        return os.path.abspath(self.base_location)

    @property
    def base_url(self) -> None:
        return None
