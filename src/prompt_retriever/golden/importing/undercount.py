"""Flagging a genre/theme query ("Find a Fantasy writing prompt") that judges one prompt relevant while the
corpus has many that fit: the metric then undercounts."""

from __future__ import annotations

from collections.abc import Sequence

from ...corpus import Prompt
from ..matching import WORD

UNDERCOUNT_MIN = 3  # a genre/theme query judging 1 prompt is flagged when the corpus has this many of them

# Words that carry no topic in a request such as "Find me a Fantasy writing prompt".
_FILLER_WORDS = (
    "a an the some any one me i we you my our please find give show get want need looking look for suggest "
    "recommend write writing written prompt prompts story stories piece pieces idea ideas tale tales about of on "
    "in with to and or kind type sort genre theme themed something good new short"
)
_FILLER = frozenset(_FILLER_WORDS.split())


def _named(query_words: list[str], names: Sequence[str]) -> tuple[set[str], set[int]]:
    """The corpus names (genres or themes) a query's words spell out, and the word positions they use."""
    found: set[str] = set()
    used: set[int] = set()
    for name in names:
        nw = WORD.findall(name.casefold())
        if not nw:
            continue
        for i in range(len(query_words) - len(nw) + 1):
            if query_words[i : i + len(nw)] == nw:
                found.add(name)
                used.update(range(i, i + len(nw)))
    return found, used


def undercount_warning(text: str, relevant: int, corpus: Sequence[Prompt]) -> str | None:
    """A warning for a genre/theme query ("Find a Fantasy writing prompt": nothing but genre and theme
    names and filler words) that judges one prompt relevant while the corpus has many that fit."""
    if relevant != 1:
        return None
    words = WORD.findall(text.casefold())
    genres, g_used = _named(words, sorted({p.genre for p in corpus}))
    themes, t_used = _named(words, sorted({p.theme for p in corpus}))
    if not genres and not themes:
        return None
    rest = [w for i, w in enumerate(words) if i not in g_used | t_used and w not in _FILLER]
    if rest:
        return None  # it asks for something more specific than the genre or theme
    fitting = [p for p in corpus if (not genres or p.genre in genres) and (not themes or p.theme in themes)]
    if len(fitting) < UNDERCOUNT_MIN:
        return None
    what = " + ".join([*sorted(genres), *sorted(themes)])
    return (
        f"query {text!r} asks for {what} ({len(fitting)} such prompts in the corpus) but judges only 1 prompt "
        "relevant: the metric then undercounts (a system returning another of them is scored as wrong); "
        "judge every fitting prompt or leave the query out"
    )
