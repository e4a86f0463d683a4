"""Collecting the prompts and issues of a corpus read from one or more files, checking duplicate titles
(by `title_key`) and duplicate ids across all of them."""

from __future__ import annotations

from pathlib import Path

from .issues import CorpusReport, Issue, Severity
from .prompt import Prompt, make_prompt_id, title_key


def kind_from_file_name(path: str) -> str | None:
    """The prompt kind (collection) a file's name implies: "nonfiction", "fiction" or None."""
    stem = Path(path).stem.lower()
    if "nonfiction" in stem or "non-fiction" in stem or "non_fiction" in stem:
        return "nonfiction"
    if "fiction" in stem:
        return "fiction"
    return None


class Collector:
    """Accumulates prompts and issues across files, checking duplicate titles and ids."""

    def __init__(self) -> None:
        self.report = CorpusReport()
        self._titles: dict[str, tuple[str, str]] = {}
        self._ids: dict[str, str] = {}

    def issue(self, path: str, line: int, severity: Severity, message: str) -> None:
        self.report.issues.append(Issue(path, line, severity, message))

    def add(
        self,
        path: str,
        line: int,
        genre: str,
        theme: str,
        title: str,
        text: str,
        kind: str | None,
        given_id: str | None = None,
    ) -> Prompt | None:
        """The prompt added (`kind`: its collection), or None (a duplicate, reported)."""
        where = f"{path}:{line}"
        key = title_key(title)
        if key in self._titles:
            first_where, first_title = self._titles[key]
            same = f" as {first_title!r}" if first_title != title else ""
            self.issue(path, line, "error", f"duplicate title {title!r} (first at {first_where}{same})")
            return None
        pid = given_id or make_prompt_id(genre, theme, title, text)
        if pid in self._ids:
            self.issue(path, line, "error", f"duplicate id {pid!r} (first at {self._ids[pid]})")
            return None
        self._titles[key] = (where, title)
        self._ids[pid] = where
        prompt = Prompt(id=pid, genre=genre, theme=theme, title=title, text=text, kind=kind, source=where)
        self.report.prompts.append(prompt)
        return prompt
