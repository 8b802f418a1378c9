"""Generated product placeholder images, shared by every seeded product."""

from __future__ import annotations

from io import BytesIO

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, ImageDraw, ImageFont

PLACEHOLDER_DIR = "products/placeholders"
PLACEHOLDER_COUNT = 8
PLACEHOLDER_SIZE = 600

# (shape, background) colours, one pair per placeholder.
_PALETTE = (
    ((143, 170, 140), (214, 226, 208)),
    ((196, 154, 108), (238, 219, 196)),
    ((112, 137, 168), (207, 219, 233)),
    ((181, 120, 126), (236, 210, 212)),
    ((150, 140, 180), (224, 219, 238)),
    ((120, 160, 160), (208, 230, 228)),
    ((200, 170, 90), (242, 230, 196)),
    ((110, 110, 120), (214, 214, 220)),
)


def ensure_placeholder_images(*, count: int = PLACEHOLDER_COUNT) -> list[str]:
    """Storage names of `count` generated product placeholder images, drawing missing ones.

    Files that exist are reused, so re-seeding neither redraws nor duplicates them.
    """
    names = []
    for index in range(count):
        name = f"{PLACEHOLDER_DIR}/placeholder-{index + 1}.png"
        if not default_storage.exists(name):
            name = default_storage.save(name, ContentFile(_placeholder_png(index)))
        names.append(name)
    return names


def _placeholder_png(index: int) -> bytes:
    """A flat-colour square with a shape and a label: recognisably a placeholder, tiny as PNG."""
    dark, light = _PALETTE[index % len(_PALETTE)]
    size = PLACEHOLDER_SIZE
    image = Image.new("RGB", (size, size), light)
    draw = ImageDraw.Draw(image)
    box = (size * 0.22, size * 0.18, size * 0.78, size * 0.74)
    match index % 4:
        case 0:
            draw.ellipse(box, fill=dark)
        case 1:
            draw.rounded_rectangle(box, radius=size // 12, fill=dark)
        case 2:
            draw.polygon([(size / 2, box[1]), (box[2], box[3]), (box[0], box[3])], fill=dark)
        case _:
            mid_x, mid_y = size / 2, (box[1] + box[3]) / 2
            draw.polygon(
                [(mid_x, box[1]), (box[2], mid_y), (mid_x, box[3]), (box[0], mid_y)], fill=dark
            )
    try:
        font: ImageFont.ImageFont | ImageFont.FreeTypeFont = ImageFont.load_default(size=56)
    except (TypeError, OSError):
        font = ImageFont.load_default()  # a Pillow without FreeType: small bitmap font
    label = "Storefront"
    left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
    draw.text(
        ((size - (right - left)) / 2, size * 0.82 - (bottom - top) / 2), label, fill=dark, font=font
    )
    buffer = BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
