"""The seeded category tree and products, drawn from the vocabulary."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from django.utils.text import slugify

from storefront.bulk_load import TableLoader
from storefront.seeding.clock import HISTORY_DAYS, Clock
from storefront.seeding.vocabulary import Kind, vocabulary

LOW_STOCK_SHARE = 0.08
INACTIVE_SHARE = 0.03


def category_plan() -> list[tuple[Kind, Kind | None, tuple[str, ...]]]:
    """Every category as (kind, parent kind, features), in the order --categories takes them.

    Each department comes with its first two children, so the first N always form a small
    two-level tree; remaining children follow.
    """
    departments = vocabulary().departments
    plan: list[tuple[Kind, Kind | None, tuple[str, ...]]] = []
    for dept in departments:
        plan.append((dept.kind, None, dept.features))
        plan.extend((child, dept.kind, dept.features) for child in dept.children[:2])
    for dept in departments:
        plan.extend((child, dept.kind, dept.features) for child in dept.children[2:])
    return plan


@dataclass(frozen=True)
class PlacedKind:
    """A kind written as a category: its id and how many of the products it gets."""

    id: int
    kind: Kind
    features: tuple[str, ...]
    weight: float


def category_rows(*, count: int) -> tuple[list[PlacedKind], list[tuple]]:
    """The first `count` categories of the plan, and their rows in CATEGORY_BULK_COLUMNS order."""
    plan = category_plan()[:count]
    ids = {kind.name: index + 1 for index, (kind, _parent, _f) in enumerate(plan)}
    has_children = {parent.name for _kind, parent, _f in plan if parent is not None}
    rows, placed = [], []
    for kind, parent, features in plan:
        description = f"{kind.name} for {kind.uses[0]}, {kind.uses[1]} and {kind.uses[2]}."
        rows.append(
            (
                ids[kind.name],
                kind.name,
                slugify(kind.name),
                parent and ids[parent.name],
                description,
            )
        )
        # Most products sit in the leaves; a department keeps a few general ones of its own.
        weight = 1.0 if kind.name in has_children else 3.0
        placed.append(PlacedKind(ids[kind.name], kind, features, weight))
    return placed, rows


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _article(word: str) -> str:
    return "An" if word[0].lower() in "aeiou" else "A"


@dataclass
class Catalogue:
    """Products in creation order (ids ascending with created_at), plus what orders copy."""

    names: list[str]
    skus: list[str]
    price_cents: list[int]
    created: list[int]  # epoch seconds, ascending
    # Running sum of popularity weights, so picking a product is one bisect.
    popularity: list[float]
    details: list[tuple]  # the remaining product columns, formatted by rows()

    @classmethod
    def generate(
        cls,
        *,
        rng: random.Random,
        count: int,
        kinds: list[PlacedKind],
        images: list[str],
        clock: Clock,
    ) -> Catalogue:
        words = vocabulary()
        adjectives, closing_sentences = words.adjectives, words.closing_sentences
        window = HISTORY_DAYS * 86_400
        # Skewed towards older products, so that even the oldest orders have a choice.
        created = sorted(
            clock.midnight - max(1, int(window * (1 - rng.random() ** 2))) for _ in range(count)
        )
        cum_kind_weights = list(itertools.accumulate(k.weight for k in kinds))
        names, skus, cents, details = [], [], [], []
        slugs: dict[str, str] = {}
        for index in range(count):
            product_id = index + 1
            placed = rng.choices(kinds, cum_weights=cum_kind_weights)[0]
            kind = placed.kind
            material, noun = rng.choice(kind.materials), rng.choice(kind.nouns)
            adjective = rng.choice(adjectives) if rng.random() < 0.6 else ""
            name = f"{adjective} {material} {noun}".lstrip()
            if name not in slugs:
                slugs[name] = slugify(name)
            described = f"{adjective} {material} {noun}".strip().lower()
            sentences = [
                f"{_article(described)} {described} with {rng.choice(placed.features)}.",
                "Made for {} and {}.".format(*rng.sample(kind.uses, 2))
                if rng.random() < 0.5
                else f"Ideal for {rng.choice(kind.uses)}.",
            ]
            if rng.random() < 0.5:
                sentences.append(rng.choice(closing_sentences))
            low, high = kind.prices
            whole = int(math.exp(rng.uniform(math.log(low), math.log(high))))
            price = min(max(whole * 100 + rng.choice((99, 0, 50, 95, 49)), 100), 99_999)
            roll = rng.random()
            stock = rng.randint(0, 5) if roll < LOW_STOCK_SHARE else rng.randint(6, 200)
            names.append(name)
            skus.append(f"{kind.code}-{product_id:06d}")
            cents.append(price)
            details.append(
                (
                    f"{slugs[name]}-{product_id}",
                    " ".join(sentences),
                    stock,
                    placed.id,
                    rng.choice(images) if images else "",
                    rng.random() >= INACTIVE_SHARE,
                )
            )
        popularity = list(
            itertools.accumulate(min(rng.paretovariate(1.2), 50.0) for _ in range(count))
        )
        return cls(names, skus, cents, created, popularity, details)

    def rows(self, loader: TableLoader) -> Iterator[tuple]:
        """The products' rows in PRODUCT_BULK_COLUMNS order."""
        fmt = loader.format_timestamp
        for index, (slug, description, stock, category_id, image, active) in enumerate(
            self.details
        ):
            stamp = fmt(self.created[index])
            yield (
                index + 1,
                self.names[index],
                slug,
                self.skus[index],
                description,
                money(self.price_cents[index]),
                stock,
                category_id,
                image,
                active,
                stamp,
                stamp,
            )
