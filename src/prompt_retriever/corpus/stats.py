"""Corpus statistics: counts by genre, theme and kind (collection), and prompt lengths in words."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .prompt import Prompt


@dataclass
class CorpusStats:
    count: int
    by_genre: dict[str, int]
    by_theme: dict[str, int]
    by_kind: dict[str, int]
    genres_per_theme: dict[str, int]
    words: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def corpus_stats(prompts: Sequence[Prompt]) -> CorpusStats:
    lengths = sorted(len(p.text.split()) for p in prompts) or [0]

    def pct(q: float) -> float:
        return float(lengths[min(len(lengths) - 1, int(q * (len(lengths) - 1) + 0.5))])

    genres_of_theme: dict[str, set[str]] = {}
    for p in prompts:
        genres_of_theme.setdefault(p.theme, set()).add(p.genre)
    return CorpusStats(
        count=len(prompts),
        by_genre=dict(Counter(p.genre for p in prompts).most_common()),
        by_theme=dict(Counter(p.theme for p in prompts).most_common()),
        by_kind=dict(Counter(p.kind or "unknown" for p in prompts).most_common()),
        genres_per_theme={t: len(g) for t, g in sorted(genres_of_theme.items(), key=lambda kv: -len(kv[1]))},
        words={
            "min": float(lengths[0]),
            "p25": pct(0.25),
            "median": pct(0.5),
            "p75": pct(0.75),
            "max": float(lengths[-1]),
            "mean": round(sum(lengths) / len(lengths), 1),
        },
    )
