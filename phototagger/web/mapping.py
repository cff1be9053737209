"""What the Map page shows: the library's photos at the positions of the landmarks they are
tagged with, and at the positions estimated for them from the library's own GPS photos
(phototagger.location), a pin per place, each with the library page's filter for its photos.

Estimated positions are many and each slightly different: they are counted in boxes of a
hundredth of a degree (about a kilometre, as ``places`` and ``learn --from-place`` call a
spread small), and a box's pin leads to ``Library.find(estimated_in=box)``, which compares
exactly as :func:`cell` does, so a pin's count is the number of photos its link lists.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from phototagger.index import Library
from phototagger.index import tables as orm
from phototagger.landmarks import Landmark

#: Boxes per degree that estimated positions are counted in.
CELLS_PER_DEGREE = 100


@dataclass(frozen=True)
class Pin:
    """One place on the map: ``kind`` is ``landmark`` or ``estimate``; ``filters``: the
    library page's query that lists its ``count`` photos."""

    kind: str
    name: str
    latitude: float
    longitude: float
    count: int
    filters: dict[str, str] = field(default_factory=dict)


def landmark_pins(library: Library, session: Session) -> tuple[list[Pin], list[tuple[Landmark,
                                                                                      int]]]:
    """A pin per landmark that tagged photos show, most photos first; and the landmarks with
    tagged photos but no position (a person's new name given without coordinates)."""
    counts = library.landmark_counts(session)
    pins, unplaced = [], []
    for landmark in library.all_landmarks(session):
        count = counts.get(landmark.slug)
        if not count:
            continue
        if landmark.has_location:
            pins.append(Pin("landmark", landmark.name, landmark.latitude, landmark.longitude,
                            count, {"landmark": landmark.name}))
        else:
            unplaced.append((landmark, count))
    return sorted(pins, key=lambda p: (-p.count, p.name)), unplaced


def cell(latitude: float, longitude: float) -> tuple[float, float, float, float]:
    """The box (south, west, north, east) of a hundredth of a degree that holds a position:
    south <= latitude < north and west <= longitude < east, compared as the index does."""
    south, north = _edges(latitude)
    west, east = _edges(longitude)
    return south, west, north, east


def _edges(value: float) -> tuple[float, float]:
    # floor(value * 100) can land one box off where value * 100 rounds across a whole
    # number; the comparisons below are the ones the query makes, so they decide.
    k = math.floor(value * CELLS_PER_DEGREE)
    if value < k / CELLS_PER_DEGREE:
        k -= 1
    elif value >= (k + 1) / CELLS_PER_DEGREE:
        k += 1
    return k / CELLS_PER_DEGREE, (k + 1) / CELLS_PER_DEGREE


def box_text(box: tuple[float, float, float, float]) -> str:
    """A box as the library page's ``estimated`` parameter writes it (exact: repr)."""
    return ",".join(repr(edge) for edge in box)


def estimate_pins(session: Session) -> list[Pin]:
    """A pin per box of photos placed from the library's GPS (at their median), most first."""
    found = session.execute(
        select(orm.Photo.estimated_latitude, orm.Photo.estimated_longitude)
        .where(orm.Photo.status == "ok", orm.Photo.estimated_latitude.is_not(None),
               orm.Photo.estimated_longitude.is_not(None)))
    boxes: dict[tuple[float, float, float, float], list[tuple[float, float]]] = \
        defaultdict(list)
    for latitude, longitude in found:
        boxes[cell(latitude, longitude)].append((latitude, longitude))
    pins = []
    for box, positions in boxes.items():
        latitude = statistics.median(lat for lat, _ in positions)
        longitude = statistics.median(lon for _, lon in positions)
        pins.append(Pin("estimate", f"near {latitude:.4f}, {longitude:.4f}", latitude,
                        longitude, len(positions),
                        {"estimated": box_text(box), "state": "all"}))
    return sorted(pins, key=lambda p: (-p.count, p.latitude, p.longitude))


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """``south,west,north,east`` in degrees, south below north and west below east; None
    when it is not that."""
    parts = text.split(",")
    if len(parts) != 4:
        return None
    try:
        south, west, north, east = (float(part) for part in parts)
    except ValueError:
        return None
    if not all(math.isfinite(edge) for edge in (south, west, north, east)):
        return None
    if not (-90 <= south < north <= 91 and -180 <= west < east <= 181):
        return None  # the last boxes reach a hundredth past 90 and 180
    return south, west, north, east
