"""Matching what an imported golden set quotes to corpus prompts: a pairs context (a tagged line, one line
of a record broken over two lines, or a text) to one prompt, and a RAGAS reference chunk to the prompts it
holds. Used by `importing`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..corpus import (
    JoinedRecord,
    Prompt,
    RecordHalf,
    detect_format,
    parse_record_half,
    parse_tagged_line,
    read_corpus,
    strip_keyword,
    title_key,
)

MIN_WORDS = 12  # a cut chunk's part of a prompt counts from this many contiguous words...
MIN_CHARS = 60  # ...or this many characters
_SHINGLE = 4  # words per lookup key of the chunk matcher (runs are then extended word by word)
WORD = re.compile(r"\w+")
_TAG = re.compile(r"<[^<>]*>")
_CUT_HEAD = re.compile(r"^[^<>]*>")  # a chunk that starts inside a tag
_CUT_TAIL = re.compile(r"<[^<>]*$")  # ... or ends inside one


def norm(value: object) -> str:
    """Whitespace collapsed; None is ""."""
    return " ".join(str(value).split()) if value is not None else ""


def preview(text: str, n: int = 70) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


@dataclass(frozen=True)
class ContextMatch:
    """What a pairs context names: a prompt, or an error; warnings about repairs made on the way."""

    prompt: Prompt | None
    warnings: tuple[str, ...] = ()
    error: str | None = None
    half: RecordHalf | None = None  # the context is one line of a record broken over two lines
    joined: JoinedRecord | None = None  # ... of this record the corpus parser joined, when known


class PromptIndex:
    """Finds the corpus prompt a pairs context names (tagged line or text), and the prompts a RAGAS chunk holds."""

    def __init__(self, corpus: Sequence[Prompt]):
        self.corpus = list(corpus)
        self.by_id = {p.id: p for p in self.corpus}
        self.by_title = {title_key(p.title): p for p in self.corpus}
        self.by_text: dict[str, list[Prompt]] = {}
        for p in self.corpus:
            self.by_text.setdefault(norm(p.text), []).append(p)
        # chunk matching: the words of every prompt text, their spans, and a shingle index
        self.words: dict[str, list[str]] = {}
        self.spans: dict[str, list[tuple[int, int]]] = {}
        self.shingles: dict[tuple[str, ...], list[tuple[str, int]]] = {}
        self.short: list[Prompt] = []  # texts with fewer words than a shingle
        for p in self.corpus:
            text = norm(p.text).casefold()
            found = list(WORD.finditer(text))
            words = [m.group() for m in found]
            self.words[p.id] = words
            self.spans[p.id] = [m.span() for m in found]
            if len(words) < _SHINGLE:
                self.short.append(p)
                continue
            for j in range(len(words) - _SHINGLE + 1):
                self.shingles.setdefault(tuple(words[j : j + _SHINGLE]), []).append((p.id, j))
        self._cache: dict[str, ContextMatch] = {}
        self._joined: dict[str, JoinedRecord] | None = None

    # ------------------------------------------------------------------ pairs
    def match_context(self, context: str) -> ContextMatch:
        """The prompt one pairs context names; cached, since contexts repeat."""
        c = norm(context)
        if c not in self._cache:
            self._cache[c] = self._match(c)
        return self._cache[c]

    def _by_text(self, text: str) -> tuple[Prompt | None, str | None]:
        hits = self.by_text.get(text, [])
        if len(hits) == 1:
            return hits[0], None
        if len(hits) > 1:
            titles = ", ".join(repr(p.title) for p in hits[:3])
            return None, f"context matches {len(hits)} prompts by its text ({titles}); give the full tagged line"
        return None, None

    def _match(self, c: str) -> ContextMatch:
        if not c:
            return ContextMatch(None, error="empty context")
        if c.startswith("<"):
            res = parse_tagged_line(c)
            if not res.errors and res.values is not None and res.text is not None:
                return self._match_line(res.values, res.text, [f"context: {w}" for w in res.warnings])
            p, ambiguous = self._by_text(c)
            if p is not None:
                return ContextMatch(p)
            if ambiguous:
                return ContextMatch(None, error=ambiguous)
            half = parse_record_half(c)
            if half is not None:
                return self._match_half(half, c)
            return ContextMatch(
                None,
                error=f"context is not a valid tagged line ({res.errors[0]}) and matches no prompt text: "
                f"{preview(c)!r}",
            )
        text = strip_keyword(c)
        for candidate in dict.fromkeys((c, text)):
            p, ambiguous = self._by_text(candidate)
            if p is not None or ambiguous:
                return ContextMatch(p, error=ambiguous)
        return ContextMatch(None, error=f"context matches no corpus prompt (by tagged line or text): {preview(c)!r}")

    def _match_line(self, values: dict[str, str], text: str, warnings: list[str]) -> ContextMatch:
        """A whole tagged line: by title and text, else by text."""
        title = values["title"]
        p = self.by_title.get(title_key(title))
        if p is not None and norm(p.text) == text:
            if (p.genre, p.theme) != (values["genre"], values["theme"]):
                warnings.append(
                    f"context tags <{values['genre']}> <{values['theme']}> differ from the corpus "
                    f"prompt {p.title!r} ({p.genre}, {p.theme}); matched by title and text"
                )
            return ContextMatch(p, tuple(warnings))
        by_text, ambiguous = self._by_text(text)
        if by_text is not None:
            warnings.append(f"context title {title!r} is not the corpus title {by_text.title!r}; matched by text")
            return ContextMatch(by_text, tuple(warnings))
        if ambiguous:
            error = ambiguous
        elif p is not None:
            error = (
                f"context names the prompt {title!r}, but its text differs from that prompt's text in the corpus: "
                f"{preview(text)!r}"
            )
        else:
            error = f"no corpus prompt has the title {title!r} or the text {preview(text)!r}"
        return ContextMatch(None, tuple(warnings), error)

    def _match_half(self, half: RecordHalf, c: str) -> ContextMatch:
        """One line of a record broken over two lines: the prompt whose fields it holds; among several, the one
        the corpus parser joined from two lines split at the same place."""
        fits = [p for p in self.corpus if half.fits(p)]
        joined = {p.id: j for p in fits if (j := self.joined().get(p.id)) is not None and _same_split(j, half)}
        if len(fits) > 1 and joined:
            fits = [p for p in fits if p.id in joined]
        if len(fits) == 1:
            return ContextMatch(fits[0], half=half, joined=joined.get(fits[0].id))
        if not fits:
            return ContextMatch(
                None, error=f"context holds only {half.describe()}, and no corpus prompt has them: {preview(c)!r}"
            )
        titles = ", ".join(repr(p.title) for p in fits[:3]) + (", ..." if len(fits) > 3 else "")
        return ContextMatch(
            None,
            error=f"context holds only {half.describe()}, which {len(fits)} prompts have ({titles}); give the "
            "full tagged line",
        )

    def joined(self) -> dict[str, JoinedRecord]:
        """The records of this corpus that the parser joined from two lines, by prompt id: found by reading
        again the tagged files the prompts came from (`Prompt.source`), once, when a context needs them."""
        if self._joined is None:
            files = {p.source.rsplit(":", 1)[0] for p in self.corpus if p.source and ":" in p.source}
            tagged = sorted(f for f in files if detect_format(f) == "tagged" and Path(f).is_file())
            records = read_corpus(tagged).joined if tagged else []
            self._joined = {j.prompt_id: j for j in records if j.prompt_id in self.by_id}
        return self._joined

    # ------------------------------------------------------------------ ragas chunks
    def match_chunk(self, chunk: str) -> set[str]:
        """Ids of the prompts whose text, or a long enough contiguous part of it, is in `chunk`."""
        c = norm(chunk)
        c = _CUT_TAIL.sub(" ", _CUT_HEAD.sub(" ", c, count=1), count=1)
        found: set[str] = set()
        for segment in _TAG.split(c):
            segment = strip_keyword(segment)
            words = WORD.findall(segment.casefold())
            if words:
                found |= self._match_words(words)
        return found

    def _match_words(self, words: list[str]) -> set[str]:
        found: set[str] = set()
        for p in self.short:  # whole text only
            w = self.words[p.id]
            if any(words[i : i + len(w)] == w for i in range(len(words) - len(w) + 1)):
                found.add(p.id)
        done: dict[tuple[str, int], int] = {}  # (prompt, alignment) -> first chunk word past the run
        for i in range(len(words) - _SHINGLE + 1):
            for pid, j in self.shingles.get(tuple(words[i : i + _SHINGLE]), ()):
                if pid in found or done.get((pid, j - i), -1) > i:
                    continue
                pw = self.words[pid]
                m = _SHINGLE
                while i + m < len(words) and j + m < len(pw) and words[i + m] == pw[j + m]:
                    m += 1
                done[(pid, j - i)] = i + m
                spans = self.spans[pid]
                chars = spans[j + m - 1][1] - spans[j][0]
                if m == len(pw) or m >= MIN_WORDS or chars >= MIN_CHARS:
                    found.add(pid)
        return found


def _same_split(record: JoinedRecord, half: RecordHalf) -> bool:
    """Whether `half` is the line of `record` it claims to be: its first line, or its second, with the same
    tag pairs."""
    line = parse_record_half(record.head if half.head else record.tail)
    return line is not None and line.head == half.head and list(line.values) == list(half.values)
