"""Reading corpus files: bytes under a size cap, text (UTF-8, with undecodable bytes reported), the format
a file's suffix implies, and `read_corpus` / `load_corpus` over one or more files or the bundled corpus.

Every line of an input file ends up either as a `Prompt` or as an `Issue` naming the file, the line
and the problem; nothing is dropped silently. Blank lines are counted, not reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from ..errors import InputError
from ..fileread import read_at_most
from .collector import Collector, kind_from_file_name
from .csvfile import parse_csv
from .issues import CorpusError, CorpusReport
from .jsonl import parse_jsonl
from .prompt import Prompt
from .tagged import parse_tagged

# The most one corpus file may hold. A file is read whole (raw bytes, text, lines: about four times its
# size at the peak), so this bounds the memory a file can take; a prompt is at most ~6 KB (the field caps),
# so it is room for 20,000+ of the longest prompts. More prompts: several files.
MAX_CORPUS_FILE_BYTES = 128 << 20


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


def read_file_bytes(path: str | Path, limit: int, advice: str) -> bytes:
    """The bytes of one file, read once (so a pipe such as `/dev/stdin` works) and never more than `limit`: a
    larger regular file is refused before it is read, an endless one (a device) once that much is read.
    Raises `InputError` naming the file; for a file too large, "... larger than N MiB" then `advice`."""
    try:
        raw = read_at_most(path, limit)
    except OSError as exc:
        raise InputError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    if raw is None:
        raise InputError(f"{path}: the file is larger than {_mib(limit)}{advice}")
    return raw


def decode_utf8(raw: bytes) -> tuple[str, tuple[int, int] | None]:
    """The text of a file's bytes (UTF-8, a byte-order mark dropped), and None; or, when some bytes are not
    UTF-8, the text with them replaced and (the line of the first, its value)."""
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        bad = (raw[: exc.start].count(b"\n") + 1, raw[exc.start])
        return raw.decode("utf-8-sig", errors="replace"), bad


def read_corpus_bytes(path: str | Path) -> bytes:
    """The bytes of one corpus file, never more than `MAX_CORPUS_FILE_BYTES` (`read_file_bytes`)."""
    advice = ", the most a corpus file may hold; split it into several files"
    return read_file_bytes(path, MAX_CORPUS_FILE_BYTES, advice)


def read_corpus_text(path: Path, collector: Collector, raw: bytes | None = None) -> str | None:
    """The text of one corpus file (`raw`: its bytes, already read); None, with the problem reported,
    when it cannot be read."""
    if raw is None:
        try:
            raw = read_corpus_bytes(path)
        except InputError as exc:
            collector.issue(str(path), 0, "error", str(exc).removeprefix(f"{path}: "))
            return None
    text, bad = decode_utf8(raw)
    if bad is not None:
        line, byte = bad
        message = f"not valid UTF-8 (byte 0x{byte:02x}); undecodable bytes replaced"
        collector.issue(str(path), line, "warning", message)
    return text


def detect_format(path: str | Path) -> str:
    """The format a corpus file's suffix implies: "csv", "jsonl" or "tagged"."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    return "tagged"


def read_corpus(
    paths: str | Path | Sequence[str | Path],
    kind: str | None = None,
    *,
    data: Sequence[bytes] | None = None,
) -> CorpusReport:
    """Parse one or more corpus files into a report (prompts + issues); never raises on bad lines.

    `kind`: the prompts' kind (collection), when not given by a row or by the file's name.
    `data`: the files' bytes, already read (`read_corpus_bytes`), one per path, so that a caller that
    hashes a pipe first reads it only once; else each file is read here."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if data is not None and len(data) != len(paths):
        raise InputError(f"{len(paths)} corpus files but {len(data)} contents")
    c = Collector()
    for i, p in enumerate(paths):
        path = Path(p)
        text = read_corpus_text(path, c, None if data is None else data[i])
        if text is None:
            continue
        file_kind = kind or kind_from_file_name(str(path))
        fmt = detect_format(path)
        if fmt == "csv":
            parse_csv(path, text, file_kind, c)
        elif fmt == "jsonl":
            parse_jsonl(path, text, file_kind, c)
        else:
            parse_tagged(path, text, file_kind, c)
    return c.report


def load_corpus(
    paths: str | Path | Sequence[str | Path] | None = None,
    *,
    skip_invalid: bool = False,
    kind: str | None = None,
) -> list[Prompt]:
    """Load prompts; raise `CorpusError` on any invalid line unless `skip_invalid`. None = bundled corpus."""
    report = read_corpus(paths if paths is not None else bundled_corpus_paths(), kind=kind)
    if report.errors and not skip_invalid:
        raise CorpusError(report)
    return report.prompts


def bundled_corpus_paths() -> list[Path]:
    """The corpus files shipped in the package (`prompt_retriever/data`, package data of the wheel)."""
    data = resources.files("prompt_retriever") / "data"
    return [Path(str(data / name)) for name in ("fiction.txt", "nonfiction.txt")]
