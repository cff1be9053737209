"""The gazetteer: what a landmark is called, where it stands, and lookup by name."""

from __future__ import annotations

import csv
import functools
import math
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import iso3166

from phototagger.errors import ConfigError

_TEXT_FIELDS = ("city", "region", "country", "country_code")

#: How far from a landmark a camera can stand and still show it. Most are photographed from a
#: few km; a mountain, a bay or the Great Wall near Beijing from up to a few hundred. A
#: camera farther away is not looking at the landmark, however sure the model is: on the
#: exif-samples photos with camera GPS, 10 of 18 got a confident landmark 1,400-12,800 km away.
FARTHEST_VIEW_KM = 300.0
EARTH_RADIUS_KM = 6371.0


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (latitude, longitude) points, in km (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2
    h += math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


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

    def distance_from(self, position: tuple[float, float] | None) -> float | None:
        """km from a camera's (latitude, longitude); None where either place is unknown.

        (0, 0) counts as unknown: it is what a camera without a fix writes.
        """
        if position is None or not self.has_location or tuple(position) == (0.0, 0.0):
            return None
        return distance_km(position, (self.latitude, self.longitude))

    def seen_from(self, position: tuple[float, float] | None) -> bool:
        """Whether a camera at ``position`` could show this landmark (yes, where unknown)."""
        distance = self.distance_from(position)
        return distance is None or distance <= FARTHEST_VIEW_KM

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


def slugify(name: str) -> str:
    """The stable id of a landmark a person names: ``Niagara Falls`` -> ``niagara-falls``."""
    words = "".join(c if c.isalnum() else " " for c in fold(name)).split()
    if not words:
        raise ConfigError(f"not a landmark name: {name!r}")
    return "-".join(words)


def new_landmark(name: str, **place) -> Landmark:
    """A landmark a person names, with the place fields they give, checked: both coordinates
    or neither, each in range, a two-letter country code."""
    landmark = Landmark.from_dict({"slug": slugify(name), "name": name.strip(), **place})
    lat, lon = landmark.latitude, landmark.longitude
    if (lat is None) != (lon is None):
        raise ConfigError("give both --lat and --lon, or neither")
    if lat is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ConfigError(f"coordinates out of range: {lat}, {lon} (latitude -90 to 90, "
                          "longitude -180 to 180)")
    code = landmark.country_code
    if code is not None and not (len(code) == 2 and code.isalpha()):
        raise ConfigError(f"not a two-letter country code: {code!r}")
    return replace(landmark, country_code=code.upper() if code else None)


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


#: Names people call countries by that ISO 3166 does not use (its short names are "Viet Nam",
#: "Türkiye", "United Kingdom of Great Britain and Northern Ireland"): the common names of
#: Debian's iso-codes, and a few more. "UK" is ISO's own exceptional reservation for GB.
COUNTRY_ALIASES = {
    "UK": "GB", "Britain": "GB", "Great Britain": "GB", "United Kingdom": "GB",
    "United States": "US", "Russia": "RU", "Turkey": "TR", "Vietnam": "VN", "Iran": "IR",
    "Syria": "SY", "Laos": "LA", "South Korea": "KR", "North Korea": "KP", "Taiwan": "TW",
    "Bolivia": "BO", "Venezuela": "VE", "Tanzania": "TZ", "Moldova": "MD", "Holland": "NL",
    "Ivory Coast": "CI", "Czech Republic": "CZ", "Burma": "MM", "Palestine": "PS",
}


@functools.cache
def _country_names() -> dict[str, str]:
    """Every folded ISO 3166-1 alpha-3 code, short name and alias -> its alpha-2 code."""
    names = {fold(alias): code for alias, code in COUNTRY_ALIASES.items()}
    for country in iso3166.countries:
        for name in (country.alpha3, country.name, country.apolitical_name):
            names.setdefault(fold(name), country.alpha2)
    return names


def country_code(query: str) -> str | None:
    """The ISO 3166-1 alpha-2 code a query names: the code itself (``fr``), an alpha-3 code
    (``USA``), a country's ISO name or a common one (``Viet Nam``, ``UK``); else None."""
    folded = fold(query)
    if len(folded) == 2 and folded.isalpha():
        return _country_names().get(folded, folded.upper())
    return _country_names().get(folded)
