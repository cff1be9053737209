"""The gazetteer: what a landmark is called, where it stands, and lookup by name."""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from phototagger.errors import ConfigError

_TEXT_FIELDS = ("city", "region", "country", "country_code")


@dataclass(frozen=True)
class Landmark:
    """One gazetteer row. Any field but ``slug`` and ``name`` may be missing (``None``)."""

    slug: str
    name: str
    aliases: tuple[str, ...] = ()
    city: str | None = None
    region: str | None = None
    country: str | None = None
    country_code: str | None = None
    latitude: float | None = None
    longitude: float | None = None

    @property
    def has_location(self) -> bool:
        return self.latitude is not None and self.longitude is not None

    @property
    def place_path(self) -> tuple[str, ...]:
        """Country, city, name: the levels of a hierarchical keyword, missing ones left out."""
        return tuple(part for part in (self.country, self.city, self.name) if part)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["aliases"] = list(self.aliases)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Landmark:
        try:
            slug, name = str(data["slug"]), str(data["name"])
        except KeyError as missing:
            raise ConfigError(f"landmark entry lacks {missing}") from None
        return cls(
            slug=slug,
            name=name,
            aliases=tuple(a for a in data.get("aliases") or () if a),
            **{key: _text(data.get(key)) for key in _TEXT_FIELDS},
            latitude=_number(data.get("latitude")),
            longitude=_number(data.get("longitude")),
        )


def _text(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _number(value: object) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"not a coordinate: {value!r}") from None


def read_gazetteer(path: str | Path) -> dict[str, Landmark]:
    """Read a gazetteer CSV: slug,name,aliases,city,region,country,country_code,lat,lon."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise ConfigError(f"cannot read gazetteer {path}: {error.strerror}") from None
    landmarks = {}
    for row in rows:
        row = dict(row)
        row["aliases"] = [a.strip() for a in (row.get("aliases") or "").split("|")]
        landmark = Landmark.from_dict(row)
        landmarks[landmark.slug] = landmark
    return landmarks


_LETTERS = str.maketrans(
    {"œ": "oe", "æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ı": "i", "'": None, "’": None, "`": None}
)


def fold(text: str) -> str:
    """A name as people type it: no case, accents or punctuation ("Sacré-Cœur" -> "sacre coeur")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).translate(_LETTERS)
    return " ".join("".join(ch if ch.isalnum() else " " for ch in plain).split())


def match(landmarks: Iterable[Landmark], query: str) -> list[Landmark]:
    """Landmarks whose slug, name or an alias contains ``query``; exact matches first.

    A query with no letter or digit (``%``, ``_``) names nothing: folded, it would be empty,
    and the empty text is inside every name.
    """
    wanted = fold(query)
    if not wanted:
        return []
    exact, partial = [], []
    for landmark in landmarks:
        names = [fold(n) for n in (landmark.slug, landmark.name, *landmark.aliases)]
        if wanted in names:
            exact.append(landmark)
        elif any(wanted in n for n in names):
            partial.append(landmark)
    return exact + partial
