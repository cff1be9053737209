"""Reviewing suggestions: a person confirms some (as ``tag`` does) and rejects others (as
``untag`` does), one by one or many at once, through phototagger.corrections."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass

from phototagger.corrections import Outcome, confirm_landmark, remove_landmark
from phototagger.index import Library


@dataclass(frozen=True)
class Reviewed:
    photo_id: int
    action: str  # confirm | reject
    outcome: Outcome


def review_suggestions(
    library: Library,
    suggested: dict[int, tuple[str, str]],
    confirm: list[int],
    reject: list[int],
    write: str,
    *,
    wait: float,
    estimate_position: bool = True,
    network: str | None = None,
) -> list[Reviewed]:
    """Confirm the suggestion of each photo in ``confirm`` and reject those in ``reject``;
    ``suggested``: each photo's path and suggested landmark (slug), by id. The answers come
    in the order asked, confirmations first."""
    by_landmark: dict[str, list[int]] = defaultdict(list)
    for pid in confirm:
        by_landmark[suggested[pid][1]].append(pid)
    done: dict[tuple[str, int], Outcome] = {}
    for slug, ids in by_landmark.items():
        paths = [suggested[pid][0] for pid in ids]
        outcomes = confirm_landmark(library, paths, slug, write, wait=wait,
                                    estimate_position=estimate_position, network=network)
        done.update({("confirm", pid): o for pid, o in zip(ids, outcomes, strict=True)})
    if reject:
        outcomes = remove_landmark(library, [suggested[pid][0] for pid in reject], wait=wait)
        done.update({("reject", pid): o for pid, o in zip(reject, outcomes, strict=True)})
    asked = [("confirm", pid) for pid in confirm] + [("reject", pid) for pid in reject]
    return [Reviewed(pid, action, done[action, pid]) for action, pid in asked]


def review_summary(reviewed: list[Reviewed]) -> str:
    """One line: what became of one photo, or how many were confirmed and rejected, with
    why any could not be."""
    if len(reviewed) == 1:
        [one] = reviewed
        return f"{os.path.basename(one.outcome.path)}: {said(one)}"
    confirmed = sum(r.outcome.ok for r in reviewed if r.action == "confirm")
    rejected = sum(r.outcome.ok for r in reviewed if r.action == "reject")
    parts = [f"{confirmed} confirmed"] if confirmed else []
    parts += [f"{rejected} rejected"] if rejected else []
    failed = [f"{os.path.basename(r.outcome.path)}: {said(r)}"
              for r in reviewed if not r.outcome.ok]
    return "; ".join([", ".join(parts) or "nothing changed", *failed])


def said(reviewed: Reviewed) -> str:
    """What became of one photo, in words."""
    if reviewed.action == "reject" and reviewed.outcome.ok:
        return "suggestion rejected (later scans leave this photo untagged)"
    return reviewed.outcome.message
