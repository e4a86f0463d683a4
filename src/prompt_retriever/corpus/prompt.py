"""The `Prompt` record and the rules every format shares for its fields: ids, slugs, titles, lengths.

A prompt's id is either given (CSV, JSONL: it must obey `ID_RE`) or made from its content
(`make_prompt_id`); two prompts are duplicates when their titles have the same `title_key`.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from ..fileio import sha256_text

MAX_FIELD_CHARS = 200
MAX_TEXT_CHARS = 5000


@dataclass(frozen=True)
class Prompt:
    """One creative-writing prompt.

    `kind` is the prompt's collection, "fiction" or "nonfiction" (None when unknown), given by a `kind` column
    or field or else by the file's name (`kind_from_file_name`). It keeps that spelling because it is the
    field's name in JSONL and CSV files and in the API; it is not the format the prompt was read from, nor
    a query's kind or a retrieval system's kind.
    """

    id: str
    genre: str
    theme: str
    title: str
    text: str
    kind: str | None = None  # "fiction" | "nonfiction" | None: the collection
    source: str | None = None  # "file:line" it was read from

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> Prompt:
        return cls(**{k: row.get(k) for k in ("id", "genre", "theme", "title", "text", "kind", "source")})


# ----------------------------------------------------------------------------- ids

# A given id (CSV/JSONL): safe as a file name and in a URL, and never a path. `ID_RE` is matched whole
# (`fullmatch`); `ID_PATTERN` is the same rule anchored, for a URL path parameter.
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")
ID_PATTERN = re.compile(f"^{ID_RE.pattern}$")
ID_RULE = "1-120 characters from A-Z a-z 0-9 . _ - starting with a letter or digit"
# Invisible characters that make two titles look the same; ignored by the duplicate check.
_INVISIBLE_RE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


def collapse_spaces(value: str) -> str:
    """`value` with every run of white space one space, and none at either end."""
    return re.sub(r"\s+", " ", value).strip()


def slugify(text: str, max_len: int = 48) -> str:
    norm = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", norm).strip("-")
    return (slug[:max_len].rstrip("-")) or "prompt"


def make_prompt_id(genre: str, theme: str, title: str, text: str) -> str:
    """Stable id: title slug plus a short hash of the content, so re-ordering a file keeps ids."""
    digest = hashlib.sha1("\x1f".join((genre, theme, title, text)).encode("utf-8")).hexdigest()[:8]
    return f"{slugify(title)}-{digest}"


def id_problem(pid: str) -> str | None:
    """Why `pid` is not a safe prompt id, or None."""
    if ID_RE.fullmatch(pid):
        return None
    shown = pid if len(pid) <= 40 else pid[:40] + "..."
    return f"invalid id {shown!r}: an id is {ID_RULE}"


def title_key(title: str) -> str:
    """What the duplicate check compares: NFKC, case-folded, invisible characters dropped, spaces collapsed."""
    norm = _INVISIBLE_RE.sub("", unicodedata.normalize("NFKC", title))
    return collapse_spaces(unicodedata.normalize("NFKC", norm.casefold()))


def corpus_fingerprint(prompts: Iterable[Prompt]) -> str:
    """Hash of the prompts' content (ids and fields), independent of file order and source paths."""
    rows = sorted(json.dumps([p.id, p.genre, p.theme, p.title, p.text, p.kind]) for p in prompts)
    return sha256_text("\n".join(rows))[:16]
