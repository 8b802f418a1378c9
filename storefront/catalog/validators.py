from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.validators import FileExtensionValidator

# Formats browsers show everywhere; ImageField's own check accepts every format Pillow reads
# (e.g. EPS, ICO), which a shop has no reason to serve.
IMAGE_EXTENSIONS = ["jpg", "jpeg", "png", "webp"]
validate_image_extension = FileExtensionValidator(allowed_extensions=IMAGE_EXTENSIONS)


def validate_upload_size(file: File) -> None:
    limit = settings.STOREFRONT_MAX_UPLOAD_MB * 1024 * 1024
    if file.size is not None and file.size > limit:
        raise ValidationError(
            f"The file is {file.size / 1024 / 1024:.1f} MB; the limit is "
            f"{settings.STOREFRONT_MAX_UPLOAD_MB} MB.",
            code="file_too_large",
        )
