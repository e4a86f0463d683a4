"""Team-draft interleaving (Radlinski, Kurup and Joachims, "How does clickthrough data reflect retrieval
quality?", CIKM 2008): two rankings merged into one list, each result credited to the ranking ("team")
that picked it, so a writer's clicks say which ranking they preferred without showing two lists.

Each round, the team with fewer picks so far picks next (on equal picks a coin flip decides), taking its
own highest-ranked result not yet in the list. The original stops when either ranking runs out; here
the other team then goes on picking its own results until the list has `k` (both systems answered the
same k and filters, so this happens only when a filter leaves fewer than `k` results to one of them).

>>> import random
>>> mixed = team_draft(["a", "b", "c"], ["b", "d", "a"], 4, random.Random(7))
>>> sorted(mixed.ids) == ["a", "b", "c", "d"], len(mixed.teams)
(True, 4)
>>> team_draft(["x", "y"], ["x", "y"], 2, random.Random(0)).ids
('x', 'y')
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

CURRENT = "current"
CANDIDATE = "candidate"


@dataclass(frozen=True)
class Interleaving:
    """The merged list (`ids`, at most `k`, no duplicates) and, per position, the team that picked it."""

    ids: tuple[str, ...]
    teams: tuple[str, ...]

    def team_of(self, position: int) -> str:
        """The team of the result at 1-based `position`."""
        return self.teams[position - 1]


def team_draft(
    a: Sequence[str],
    b: Sequence[str],
    k: int,
    rng: random.Random,
    *,
    names: tuple[str, str] = (CURRENT, CANDIDATE),
) -> Interleaving:
    """Team-draft interleave ranking `a` (team `names[0]`) with ranking `b` (team `names[1]`), cut to `k`
    results; `rng` flips the coins (one per round where both teams have as many picks). Deterministic for
    the same rankings and the same `rng` state. ValueError for `k` < 1 or two equal team names."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if names[0] == names[1]:
        raise ValueError(f"the two teams need two names, got {names[0]!r} twice")
    rankings = (list(a), list(b))
    cursor = [0, 0]  # per team: how far down its own ranking it has looked
    picked: set[str] = set()
    ids: list[str] = []
    teams: list[str] = []
    sizes = [0, 0]

    def next_of(team: int) -> str | None:
        ranking = rankings[team]
        while cursor[team] < len(ranking) and ranking[cursor[team]] in picked:
            cursor[team] += 1
        return ranking[cursor[team]] if cursor[team] < len(ranking) else None

    while len(ids) < k:
        heads = (next_of(0), next_of(1))
        if heads[0] is not None and heads[1] is not None:
            team = rng.randrange(2) if sizes[0] == sizes[1] else int(sizes[1] < sizes[0])  # fewer picks go next
        elif heads[0] is not None or heads[1] is not None:  # one ranking ran out: the other fills the list
            team = 0 if heads[0] is not None else 1
        else:
            break
        item = heads[team]
        picked.add(item)
        ids.append(item)
        teams.append(names[team])
        sizes[team] += 1
    return Interleaving(tuple(ids), tuple(teams))
