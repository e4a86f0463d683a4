"""Forged or hostile index folders are refused with one clear IndexLoadError: checksums that match
do not make the data trustworthy, and no file is read beyond what the manifest allows."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from prompt_retriever.errors import IndexLoadError
from prompt_retriever.fileio import sha256_file
from prompt_retriever.search.retriever import PromptRetriever


@pytest.fixture
def idx(tmp_path, small_retriever) -> Path:
    return small_retriever.save(tmp_path / "idx")


def manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def reseal(d: Path, **changes) -> None:
    """Recompute the manifest's checksums (and apply `changes`) so only the forged content is wrong."""
    m = manifest(d)
    m.update(changes)
    m["checksums"] = {n: sha256_file(d / n) for n in ("embeddings.npy", "prompts.jsonl")}
    (d / "manifest.json").write_text(json.dumps(m))


def write_npy(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    path.write_bytes(buf.getvalue())


def refused(d: Path, match: str) -> None:
    with pytest.raises(IndexLoadError, match=match):
        PromptRetriever.load(d)


def test_untouched_index_still_loads(idx, small_retriever):
    assert len(PromptRetriever.load(idx)) == len(small_retriever)


def test_manifest_that_is_a_list(idx):
    (idx / "manifest.json").write_text("[1, 2, 3]")
    refused(idx, "manifest")


def test_manifest_with_bad_count(idx):
    reseal(idx, count="eight")
    refused(idx, "count")


def test_prompt_row_without_fields(idx):
    lines = (idx / "prompts.jsonl").read_text().splitlines()
    (idx / "prompts.jsonl").write_text("\n".join(["{}", *lines[1:]]) + "\n")
    reseal(idx)
    refused(idx, "prompts.jsonl")


def test_prompt_row_that_is_not_an_object(idx):
    lines = (idx / "prompts.jsonl").read_text().splitlines()
    (idx / "prompts.jsonl").write_text("\n".join(["[1]", *lines[1:]]) + "\n")
    reseal(idx)
    refused(idx, "prompts.jsonl")


def test_duplicate_ids(idx):
    lines = (idx / "prompts.jsonl").read_text().splitlines()
    (idx / "prompts.jsonl").write_text("\n".join([lines[0], lines[0], *lines[2:]]) + "\n")
    reseal(idx)
    refused(idx, "duplicate")


def test_npy_header_claiming_236_tib(idx):
    m = manifest(idx)
    header = {"descr": "<f4", "fortran_order": False, "shape": (160_000_000_000, 384)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)  # magic and header, then only a few real rows
    data = buf.getvalue() + np.zeros((m["count"], 384), np.float32).tobytes()
    (idx / "embeddings.npy").write_bytes(data)
    reseal(idx)
    refused(idx, "shape")


def test_wrong_dimension(idx):
    m = manifest(idx)
    write_npy(idx / "embeddings.npy", np.ones((m["count"], 100), np.float32) / 10)
    reseal(idx)
    refused(idx, "dimension|shape")
    reseal(idx, dimension=100)  # consistent with the manifest, not with the model
    refused(idx, "dimension")


def test_wrong_dtype(idx):
    m = manifest(idx)
    write_npy(idx / "embeddings.npy", np.ones((m["count"], 384), np.int32))
    reseal(idx)
    refused(idx, "dtype")


def test_nan_rows(idx):
    emb = np.load(idx / "embeddings.npy")
    emb[2] = np.nan
    write_npy(idx / "embeddings.npy", emb)
    reseal(idx)
    refused(idx, "finite")


def test_embeddings_symlinked_to_dev_zero(idx):
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    (idx / "embeddings.npy").unlink()
    os.symlink("/dev/zero", idx / "embeddings.npy")
    t0 = time.monotonic()
    refused(idx, "regular file")
    assert time.monotonic() - t0 < 5


def test_oversized_file_refused_before_reading(idx):
    with open(idx / "prompts.jsonl", "ab") as fh:
        fh.truncate(2**34)  # sparse 16 GiB: refused by its size, never read
    refused(idx, "too large")


def test_a_prompt_file_keeping_a_line_separator_in_a_string_is_read_whole():
    """JSON lines end at a newline only: U+2028 inside a prompt's text is part of that line (the reader
    once split at it with `str.splitlines` and refused the index)."""
    import json as _json
    from pathlib import Path as _Path

    from prompt_retriever.search.persistence import parse_prompts

    row = {"id": "p-1", "genre": "Horror", "theme": "Grief", "title": "Two\u2028lines", "text": "a\u0085b"}
    blob = (_json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    [prompt] = parse_prompts(_Path("prompts.jsonl"), blob)
    assert prompt.title == "Two\u2028lines" and prompt.text == "a\u0085b"
