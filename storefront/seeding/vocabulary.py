"""The seed's vocabulary: word lists read from vocabulary.toml, shipped as package data."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

VOCABULARY_FILE = "vocabulary.toml"


@dataclass(frozen=True)
class Kind:
    """One category's vocabulary: product nouns, materials, a price range and use cases."""

    name: str
    code: str  # SKU prefix
    nouns: tuple[str, ...]
    materials: tuple[str, ...]
    prices: tuple[int, int]  # whole currency units, low and high
    uses: tuple[str, ...]


@dataclass(frozen=True)
class Department:
    kind: Kind
    features: tuple[str, ...]
    children: tuple[Kind, ...]


@dataclass(frozen=True)
class Vocabulary:
    departments: tuple[Department, ...]
    adjectives: tuple[str, ...]
    closing_sentences: tuple[str, ...]
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    streets: tuple[str, ...]
    cities: tuple[tuple[str, str], ...]  # (city, postcode district)


@functools.cache
def vocabulary() -> Vocabulary:
    """The vocabulary, read and checked once per process."""
    text = resources.files(__package__).joinpath(VOCABULARY_FILE).read_text(encoding="utf-8")
    return _parse(tomllib.loads(text))


def _parse(data: dict[str, Any]) -> Vocabulary:
    departments = tuple(
        Department(
            kind=_kind(department),
            features=_words(department, "features"),
            children=tuple(_kind(child) for child in department["children"]),
        )
        for department in data["departments"]
    )
    cities = []
    for entry in _words(data, "cities"):
        city, _, district = entry.rpartition(":")
        if not city or not district:
            raise ValueError(f"{VOCABULARY_FILE}: a city is 'city:district', not {entry!r}.")
        cities.append((city, district))
    return Vocabulary(
        departments=departments,
        adjectives=_words(data, "adjectives"),
        closing_sentences=_words(data, "closing_sentences"),
        first_names=_words(data, "first_names"),
        last_names=_words(data, "last_names"),
        streets=_words(data, "streets"),
        cities=tuple(cities),
    )


def _kind(table: dict[str, Any]) -> Kind:
    low, high = table["prices"]
    if not 0 < low <= high:
        raise ValueError(f"{VOCABULARY_FILE}: {table['name']!r} has prices {low}-{high}.")
    return Kind(
        name=table["name"],
        code=table["code"],
        nouns=_words(table, "nouns"),
        materials=_words(table, "materials"),
        prices=(low, high),
        uses=_words(table, "uses"),
    )


def _words(table: dict[str, Any], key: str) -> tuple[str, ...]:
    words = tuple(table[key])
    if not words or not all(isinstance(word, str) and word for word in words):
        raise ValueError(f"{VOCABULARY_FILE}: {key!r} must be a list of non-empty strings.")
    return words
