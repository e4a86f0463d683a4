"""Genre/theme filters: how a filter value compares (`filter_key`: trimmed, case-insensitive, blank means
no filter) and which of an index's names it selects (`FilterNames`). The one rule for the stores, the
systems' masks, `PromptRetriever` and the API."""

from __future__ import annotations

from collections.abc import Iterable


def filter_key(value: str | None) -> str | None:
    """How a genre/theme filter compares: trimmed and case-insensitive; blank means no filter."""
    return value.strip().casefold() if value and value.strip() else None


class FilterNames:
    """The names one filter (genre or theme) can take, e.g. the genres of an index's prompts; a filter
    value selects the name it equals as `filter_key` compares."""

    def __init__(self, names: Iterable[str]):
        names = list(names)
        self.names: list[str] = sorted(set(names))
        self._by_key = {n.casefold(): n for n in names}

    def canonical(self, value: str | None) -> str | None:
        """The name `value` selects; None for no filter (None or blank). `KeyError` for a value that
        selects no name."""
        key = filter_key(value)
        return None if key is None else self._by_key[key]
