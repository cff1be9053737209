"""The Places page: the groups ``phototagger places`` finds (phototagger.places), shown for a
person to name, and what naming one learned (``learn --from-place``, phototagger.vocabulary)."""

from __future__ import annotations

import os

from phototagger.places import Place
from phototagger.vocabulary import Learning


def place_view(place: Place) -> dict:
    """A place as the page shows it; ``prefill``: the coordinates its form starts with, the
    position ``learn --from-place`` gives the landmark by default (the GPS median, when
    tight), so that the form says what will happen."""
    prefill = place.position
    return {
        "id": place.id,
        "count": len(place.photo_ids),
        "gps_photos": place.gps_photos,
        "latitude": place.latitude,
        "longitude": place.longitude,
        "spread_km": place.spread_km,
        "prefill": {"latitude": f"{prefill[0]:.6f}", "longitude": f"{prefill[1]:.6f}"}
        if prefill else {},
    }


def learned_summary(result: Learning) -> str:
    """What naming a place learned, in words: the landmark and where it stands, how well its
    photos agree (and which look wrong), and how many indexed photos show it now."""
    landmark, redecided = result.landmark, result.redecided
    where = [part for part in (landmark.city, landmark.country) if part]
    if landmark.has_location:
        where.append(f"at {landmark.latitude:.5f}, {landmark.longitude:.5f}")
    lines = [
        f"learned {landmark.name}" + (f" ({', '.join(where)})" if where else "")
        + f" from {result.photos} photos ({result.added} new); they agree "
        f"{result.agreement:.2f} (median similarity to each other)"
    ]
    lines += [f"does not look like the others ({similarity:.2f}): {os.path.basename(source)}"
              " - a wrong photo?" for source, similarity in result.outliers]
    tagged, suggested = redecided.matching.get(landmark.slug, (0, 0))
    lines.append(f"indexed photos of it now: {tagged} tagged, {suggested} suggested "
                 f"({redecided.changed} of {redecided.photos} photos re-decided; the next scan "
                 "that writes puts the tags into the files)")
    return "\n".join(lines)
