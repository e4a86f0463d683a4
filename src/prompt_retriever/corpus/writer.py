"""Writing a corpus file in the format its suffix implies (.txt tagged, .csv, .jsonl), atomically."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError
from ..fileio import atomic_write_jsonl, atomic_write_text
from .csvfile import csv_text
from .prompt import Prompt, id_problem
from .reader import detect_format
from .tagged import format_tagged_line


def write_corpus(prompts: Iterable[Prompt], path: str | Path) -> Path:
    """Write prompts in the format the file suffix implies (.txt tagged, .csv, .jsonl), atomically."""
    prompts = list(prompts)
    fmt = detect_format(path)
    if fmt in ("csv", "jsonl"):  # the tagged format stores no id (it is made from the content)
        for p in prompts:
            if problem := id_problem(p.id):
                raise InputError(f"prompt {p.id[:40]!r}: {problem}; it would not read back")
    if fmt == "jsonl":
        return atomic_write_jsonl(path, [p.to_dict() | {"source": None} for p in prompts])
    if fmt == "csv":
        header = [("id", "genre", "theme", "title", "text", "kind")]
        rows = [(p.id, p.genre, p.theme, p.title, p.text, p.kind or "") for p in prompts]
        return atomic_write_text(path, csv_text(header + rows))
    return atomic_write_text(path, "".join(format_tagged_line(p) + "\n" for p in prompts))
