"""How often is a position estimated from the library's own GPS right? Prints figures; never
passes or fails. Run from the repository root (after benchmarks/places.py, whose sample and
embeddings it reuses):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/library_gps.py [--data /work/shared/data]

The sample's landmark photos are given camera GPS at their landmark (from landmarks.csv),
scattered 0-300 m as a visitor's would be; its ordinary photos (food, faces, streets...) GPS
at one of 20 home towns (scattered 0-3 km), as a person's everyday photos are. The GPS of a
seeded 30 % is hidden; each of those is estimated from the others by phototagger.location
(no capture times: the rule's worst case). *Precision*: of the estimates, the share within
1 km (and within 5 km) of the hidden position.
"""

from __future__ import annotations

import math

import numpy as np
from places import embedded_sample

from phototagger import decision
from phototagger.landmarks import distance_km, read_gazetteer
from phototagger.location import estimate

HIDDEN = 0.3


def scattered(rng, centre: tuple[float, float], km: float) -> tuple[float, float]:
    distance, bearing = km * math.sqrt(rng.random()), rng.random() * 2 * math.pi
    lat = centre[0] + distance / 111.2 * math.cos(bearing)
    lon = centre[1] + distance / (111.2 * math.cos(math.radians(centre[0]))) * math.sin(bearing)
    return lat, lon


def main() -> None:
    data, labels, vectors, _ = embedded_sample(__doc__.splitlines()[0])
    gazetteer = read_gazetteer(data / "landmarks" / "landmarks.csv")
    rng = np.random.default_rng(0)
    homes = [(float(rng.uniform(-40, 60)), float(rng.uniform(-120, 140))) for _ in range(20)]
    truth = [scattered(rng, (gazetteer[label].latitude, gazetteer[label].longitude), 0.3)
             if label else scattered(rng, homes[int(rng.integers(20))], 3.0)
             for label in labels]
    hidden = rng.random(len(labels)) < HIDDEN
    kinds = np.array([bool(label) for label in labels])
    print(f"{len(labels)} photos, GPS hidden on {hidden.sum()} "
          f"({(hidden & kinds).sum()} landmark, {(hidden & ~kinds).sum()} ordinary)")
    for threshold in (0.7, 0.75, 0.8, 0.85, 0.9):
        decision.PLACE_SIMILARITY = threshold
        found = estimate(vectors[hidden], [None] * hidden.sum(), vectors[~hidden],
                         [p for p, h in zip(truth, hidden, strict=True) if not h],
                         [None] * (~hidden).sum())
        errors = [(distance_km((e.latitude, e.longitude), truth[i]), kinds[i])
                  for e, i in zip(found, np.flatnonzero(hidden), strict=True) if e is not None]
        near = sum(km <= 1 for km, _ in errors)
        fair = sum(km <= 5 for km, _ in errors)
        print(f"similarity >= {threshold}: estimated {len(errors)} of {hidden.sum()} "
              f"({sum(k for _, k in errors)} landmark, {sum(not k for _, k in errors)} "
              f"ordinary); within 1 km {near / max(1, len(errors)):.1%}, within 5 km "
              f"{fair / max(1, len(errors)):.1%}")


if __name__ == "__main__":
    main()
