"""Inputs that used to pass and should not, faults that gave tracebacks, and text that reached the terminal
raw (issue 26): an empty or piped corpus in the pipeline, spreadsheet formulas in exported CSVs, JSONL keys
that collide once normalised, meaningless queries, huge corpus files, a full disk, and terminal escapes.

The full-disk tests mount a real, small tmpfs (root only; skipped otherwise) and fill it."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

from prompt_retriever.cli import app
from prompt_retriever.corpus import Prompt, load_corpus, read_corpus, write_corpus
from prompt_retriever.errors import InputError
from prompt_retriever.golden import GoldenImportError, GoldenSet, import_golden
from prompt_retriever.golden.goldenset import Query, make_query_id
from prompt_retriever.pipeline import PipelineConfig, run_pipeline

runner = CliRunner()
CLI = Path(sys.executable).with_name("prompt-retriever")


def quiet() -> Console:
    return Console(file=io.StringIO(), emoji=False)


def assert_inert(output: str) -> None:
    assert "\x1b" not in output and "\x07" not in output and "\x9b" not in output
    assert "MarkupError" not in output and "Traceback" not in output


# ----------------------------------------------------------------------------- the pipeline's corpus stage


def test_pipeline_refuses_an_empty_corpus_and_records_nothing(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = tmp_path / "run"
    with pytest.raises(InputError, match="no prompts"):
        run_pipeline(PipelineConfig(corpus=[empty], out=out, until="split"), quiet())
    assert not (out / "stages" / "corpus.json").exists() and not (out / "corpus.jsonl").exists()


def test_pipeline_refuses_a_corpus_whose_every_line_is_skipped(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("not a prompt\n<Horror> </Horror> no text\n")
    with pytest.raises(InputError, match="no prompts"):
        run_pipeline(PipelineConfig(corpus=[bad], out=tmp_path / "run", until="corpus", skip_invalid=True), quiet())
    assert not (tmp_path / "run" / "stages" / "corpus.json").exists()


def test_pipeline_reads_a_piped_corpus_once(tmp_path, small_corpus_path):
    """A pipe can be read once: the stage's cache key and its work must share that one read."""
    data = small_corpus_path.read_bytes()
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    try:
        run_pipeline(PipelineConfig(corpus=[Path(f"/dev/fd/{r}")], out=tmp_path / "run", until="corpus"), quiet())
    finally:
        os.close(r)
    assert len(load_corpus(tmp_path / "run" / "corpus.jsonl")) == 8
    state = json.loads((tmp_path / "run" / "stages" / "corpus.json").read_text())
    assert state["result"]["prompts"] == 8


def pipe_into_pipeline(data: bytes, out: Path) -> subprocess.CompletedProcess:
    args = [str(CLI), "pipeline", "--corpus", "/dev/stdin", "--out", str(out), "--until", "corpus"]
    return subprocess.run(args, input=data, capture_output=True, timeout=120, cwd=out.parent)


def test_cat_corpus_into_pipeline_dev_stdin(tmp_path, small_corpus_path):
    data = small_corpus_path.read_bytes()
    out = tmp_path / "run"
    res = pipe_into_pipeline(data, out)
    assert res.returncode == 0, res.stderr.decode()
    assert len(load_corpus(out / "corpus.jsonl")) == 8
    res = pipe_into_pipeline(data, out)  # the same corpus again: the stage is skipped
    assert res.returncode == 0, res.stderr.decode()
    assert b"corpus: inputs unchanged, skipped" in res.stdout
    res = pipe_into_pipeline(data.split(b"\n", 3)[3], out)  # another corpus through the same path: rerun
    assert res.returncode == 0, res.stderr.decode()
    assert len(load_corpus(out / "corpus.jsonl")) == 5
    res = pipe_into_pipeline(b"", out)  # nothing piped in: refused, and the last good corpus stays
    assert res.returncode == 2 and b"no prompts" in res.stderr
    assert len(load_corpus(out / "corpus.jsonl")) == 5


# ----------------------------------------------------------------------------- huge corpus files


def test_a_huge_sparse_corpus_file_is_refused_before_it_is_read(tmp_path):
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as fh:
        fh.truncate(2 * 1024**3)  # 2 GB of holes: no disk used
    # 1 GiB of address space: reading the 2 GB file would fail with MemoryError. The peak is the child's
    # own (VmHWM starts anew at exec; ru_maxrss would carry the forking test process's peak over).
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1024**3, 1024**3))\n"
        "from prompt_retriever.corpus import read_corpus\n"
        "report = read_corpus(sys.argv[1])\n"
        "print(report.errors[0] if report.errors else 'no error', len(report.prompts))\n"
        "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(huge)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    first, rss_kb = res.stdout.splitlines()
    assert f"{huge}:0: error: the file is larger than" in first and first.endswith(" 0")
    assert int(rss_kb) < 400_000  # well under the file's size: nothing was read


def test_an_endless_corpus_is_read_no_further_than_the_cap(tmp_path, monkeypatch):
    import prompt_retriever.corpus.reader as corpus

    monkeypatch.setattr(corpus, "MAX_CORPUS_FILE_BYTES", 1 << 20)
    report = read_corpus("/dev/zero")  # a character device: no size to check, so the read itself stops
    assert [str(e) for e in report.errors] == [
        "/dev/zero:0: error: the file is larger than 1 MiB, the most a corpus file may hold; split it into "
        "several files"
    ]


# ----------------------------------------------------------------------------- CSV formulas


FORMULAS = ["=cmd|' /C calc'!A0", '=HYPERLINK("http://x.invalid","click")', "@SUM(1+1)*cmd", "+1+1", "-2+3"]


def hostile_corpus(tmp_path) -> list[Prompt]:
    rows = [
        {"genre": "Horror", "theme": "Grief", "title": f"Title {i}", "text": f"{f} then a keeper climbs the stairs {i}"}
        for i, f in enumerate(FORMULAS)
    ]
    rows.append({"genre": "Horror", "theme": "Grief", "title": "'=quoted", "text": "'=already neutral, keep as is"})
    rows.append({"genre": "Horror", "theme": "Grief", "title": "Plain", "text": "'Tis the season of the lamp."})
    path = tmp_path / "hostile.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_corpus(path)


def spreadsheet_cells(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [cell for row in csv.reader(fh) for cell in row]


def test_exported_pairs_csv_neutralises_formulas_and_imports_back(tmp_path):
    prompts = hostile_corpus(tmp_path)
    texts = [*FORMULAS, "\tTAB", "\rCR", "'@at", "'Tis fine"]
    queries = [Query(make_query_id("title", t), t, "title") for t in texts]
    qrels = {q.id: {prompts[i % len(prompts)].id: 2} for i, q in enumerate(queries)}
    gs = GoldenSet(prompts, queries, qrels)
    path = gs.export_pairs_csv(tmp_path / "pairs.csv")
    cells = spreadsheet_cells(path)
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "'=cmd|' /C calc'!A0" in cells and "''=already neutral, keep as is" in cells
    assert "'Tis fine" in cells and "'Tis the season of the lamp." in cells  # no formula: left alone
    back, _ = import_golden(path, prompts)
    # the importer reads the cells back as written before neutralising (white space aside, as for any row)
    assert {q.text: back.qrels[q.id] for q in back.queries} == {" ".join(q.text.split()): qrels[q.id] for q in queries}


def test_pipeline_pairs_csv_and_queries_generate_csv_are_neutralised(tmp_path):
    prompts = hostile_corpus(tmp_path)
    corpus = write_corpus(prompts, tmp_path / "c.jsonl")
    res = runner.invoke(app, ["queries", "generate", "--corpus", str(corpus), "--out", str(tmp_path / "g")])
    assert res.exit_code == 0, res.output
    cells = spreadsheet_cells(tmp_path / "g" / "pairs.csv")
    assert any(c.startswith("'=cmd") for c in cells)
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_corpus_csv_written_neutralised_reads_back_the_same(tmp_path):
    prompts = hostile_corpus(tmp_path)
    path = write_corpus(prompts, tmp_path / "c.csv")
    assert not [c for c in spreadsheet_cells(path) if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    back = load_corpus(path)
    assert [(p.id, p.title, p.text) for p in back] == [(p.id, p.title, p.text) for p in prompts]


@given(st.text(max_size=12))
def test_csv_neutralising_is_reversible(value):
    from prompt_retriever.corpus import csv_cell, csv_value

    cell = csv_cell(value)
    assert csv_value(cell) == value
    assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r")


# ----------------------------------------------------------------------------- JSONL keys that collide


@pytest.fixture(scope="module")
def prompts12():
    return load_corpus(Path(__file__).parent / "data" / "golden12.txt")


def test_jsonl_import_refuses_keys_that_collide_after_normalising(tmp_path, prompts12):
    a, b = prompts12[0], prompts12[1]
    lines = [
        json.dumps({"query": "a ghost story", "context": a.text, "relevance": 1, "Relevance": 0}),
        json.dumps({"query": "a train romance", "context": a.text, " CONTEXT ": b.text, "relevance": 1}),
        '{"query": "first", "query": "second", "context": ' + json.dumps(b.text) + ', "relevance": 1}',
        json.dumps({"query": "a fine one", "context": b.text, "relevance": 1}),
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(GoldenImportError) as exc:
        import_golden(path, prompts12)
    errors = [str(e) for e in exc.value.report.errors]
    assert errors == [
        f"{path}:1: error: keys 'relevance' and 'Relevance' are one column once case and spaces are ignored; "
        "record dropped",
        f"{path}:2: error: keys 'context' and ' CONTEXT ' are one column once case and spaces are ignored; "
        "record dropped",
        f"{path}:3: error: key 'query' is given twice; record dropped",
    ]
    gs, report = import_golden(path, prompts12, skip_invalid=True)
    assert [q.text for q in gs.queries] == ["a fine one"] and report.dropped_rows == 3


def test_csv_import_refuses_header_columns_that_collide(tmp_path, prompts12):
    path = tmp_path / "pairs.csv"
    path.write_text(f'query,context,relevance,Relevance\na ghost story,"{prompts12[0].text}",1,0\n')
    with pytest.raises(InputError, match="columns 'relevance' and 'Relevance' are one column"):
        import_golden(path, prompts12)


def test_corpus_jsonl_refuses_a_key_given_twice(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"genre": "Horror", "theme": "Grief", "title": "T", "text": "benign", "text": "=evil"}\n')
    report = read_corpus(path)
    assert [str(e) for e in report.errors] == [f"{path}:1: error: key 'text' is given twice"]


# ----------------------------------------------------------------------------- meaningless queries

MEANINGLESS = ["", "   ", "\x00", "\u200b", "\u2800", "\u3164", "\u200b\u2800 \u3164\ufeff\ufe0f\xad"]


@pytest.mark.parametrize("query", MEANINGLESS)
def test_meaningless_queries_are_refused_by_the_shared_check(query):
    from prompt_retriever.corpus import check_query, query_problem

    assert query_problem(query) is not None
    with pytest.raises(InputError, match="empty query"):
        check_query(query)


@pytest.mark.parametrize("query", ["a", "42", "日本の灯台", "lighthouse\u200b", " ghost ", "x\x00y", "?!", "🙂"])
def test_queries_with_a_visible_character_pass(query):
    from prompt_retriever.corpus import check_query

    assert check_query(query) == query.strip()


@pytest.mark.parametrize("query", ["", "\u200b", "\u2800", "\u3164", "\x00"])
def test_python_search_refuses_meaningless_queries(small_retriever, query):
    from prompt_retriever.search.retriever import SearchRequest

    with pytest.raises(InputError, match="empty query"):
        small_retriever.search(query)
    with pytest.raises(InputError, match="empty query"):
        small_retriever.search_many(["lighthouse", query])
    with pytest.raises(InputError, match="empty query"):
        small_retriever.search_requests([SearchRequest("lighthouse"), SearchRequest(query)])


def test_python_search_refuses_an_unknown_genre_or_theme_like_the_cli_and_api(small_retriever):
    from prompt_retriever.search.retriever import SearchRequest

    with pytest.raises(InputError, match="unknown genre 'Westerns'"):
        small_retriever.search("lighthouse", genre="Westerns")
    with pytest.raises(InputError, match="unknown theme 'Pirates'"):
        small_retriever.search("lighthouse", theme="Pirates")
    with pytest.raises(InputError, match="unknown genre 'Westerns'"):
        small_retriever.search_requests([SearchRequest("lighthouse", genre="Westerns")])
    # known names in any case and blank filters still work
    assert {h.prompt.genre for h in small_retriever.search("lighthouse", genre=" horror ", k=8)} == {"Horror"}
    assert len(small_retriever.search("lighthouse", genre="", theme="  ", k=3)) == 3


@pytest.mark.parametrize("query", ["\u200b", "\u2800", "\u3164", "\ufeff\u2060"])
def test_cli_search_refuses_meaningless_queries(small_corpus_path, query):
    res = runner.invoke(app, ["search", query, "--corpus", str(small_corpus_path)])
    assert res.exit_code == 2 and "empty query" in res.output, res.output


def test_cli_search_refuses_an_unknown_theme_too(small_corpus_path):
    res = runner.invoke(app, ["search", "lighthouse", "--corpus", str(small_corpus_path), "--theme", "Pirates"])
    assert res.exit_code == 2 and "unknown theme 'Pirates'" in res.output, res.output


@pytest.mark.parametrize("query", ["%00", "%E2%80%8B", "%E2%A0%80", "%E3%85%A4"])
def test_api_refuses_meaningless_queries(small_retriever, query):
    from fastapi.testclient import TestClient

    from prompt_retriever.serving.api import create_app

    client = TestClient(create_app(small_retriever))
    r = client.get(f"/api/search?q={query}")
    assert r.status_code == 422 and r.json()["error"].startswith("empty query"), r.text


def test_judged_query_files_refuse_meaningless_queries(tmp_path, small_prompts):
    from prompt_retriever.golden.goldenset import load_judged_queries

    path = tmp_path / "judged.jsonl"
    path.write_text(json.dumps({"query": "\u3164", "relevant": {small_prompts[0].title: 2}}) + "\n")
    with pytest.raises(InputError, match=re.escape(f"{path}:1: empty query")):
        load_judged_queries(path, small_prompts)


def test_pairs_import_refuses_meaningless_queries(tmp_path, prompts12):
    path = tmp_path / "pairs.csv"
    path.write_text(f'query,context,relevance\n\u200b,"{prompts12[0].text}",1\n')
    with pytest.raises(GoldenImportError) as exc:
        import_golden(path, prompts12)
    assert [str(e) for e in exc.value.report.errors] == [
        f"{path}:2: error: empty query '\\u200b': it has no visible character"
    ]


# ----------------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB filesystem (tmpfs) at tmp_path/disk, unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    d = tmp_path / "disk"
    d.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def fill(d: Path) -> Path:
    """Fill the filesystem holding `d` to the last byte."""
    filler = d / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_index_out_on_a_full_disk_says_so_and_keeps_the_old_index(small_disk, small_corpus_path, small_prompts):
    from prompt_retriever.search.retriever import PromptRetriever

    idx = small_disk / "idx"
    res = runner.invoke(app, ["index", "--corpus", str(small_corpus_path), "--out", str(idx)])
    assert res.exit_code == 0, (res.output, res.exception)
    before = {p.name: p.read_bytes() for p in idx.iterdir() if p.name != "manifest.json"}
    filler = fill(small_disk)
    res = runner.invoke(app, ["index", "--corpus", str(small_corpus_path), "--out", str(idx)])
    assert res.exit_code == 2, (res.output, res.exception)
    assert "no space left on tmpfs (mounted at" in res.output and "Traceback" not in res.output
    assert f"writing {idx}/embeddings.npy" in res.output  # the file asked for, not its scratch copy
    assert {p.name: p.read_bytes() for p in idx.iterdir() if p.name != "manifest.json"} == before
    assert len(PromptRetriever.load(idx)) == len(small_prompts)  # the old index is whole
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "idx"]  # no scratch folder left
    filler.unlink()
    res = runner.invoke(app, ["index", "--corpus", str(small_corpus_path), "--out", str(idx)])
    assert res.exit_code == 0, (res.output, res.exception)


def test_atomic_write_on_a_full_disk_names_the_device(small_disk):
    from prompt_retriever.fileio import DiskFullError, atomic_write_text

    fill(small_disk)
    with pytest.raises(DiskFullError, match=re.escape(f"no space left on tmpfs (mounted at {small_disk}) writing ")):
        atomic_write_text(small_disk / "f.txt", "x" * 100_000)
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_a_model_written_on_a_full_disk_says_so(small_disk):
    """The writers training uses: torch's C++ stream ("basic_ios::clear: iostream error", no errno) for the
    checkpoints, safetensors for the weights. Inside `atomic_dir` both read "no space left on ..."."""
    import torch
    from safetensors.torch import save_file

    from prompt_retriever.fileio import DiskFullError, atomic_dir

    for write in (
        lambda d: torch.save({"w": torch.zeros(1_000_000)}, d / "optimizer.pt"),
        lambda d: save_file({"w": torch.zeros(1_000_000)}, str(d / "model.safetensors")),
    ):
        with (
            pytest.raises(DiskFullError, match="no space left on tmpfs") as exc,
            atomic_dir(small_disk / "model", "training") as staged,
        ):
            write(staged.work)
        assert exc.value.__cause__ is not None  # the writer's own error stays attached
        assert list(small_disk.iterdir()) == []


def test_a_failure_with_room_left_is_not_called_a_full_disk(tmp_path):
    from prompt_retriever.fileio import atomic_dir

    with pytest.raises(RuntimeError, match="a bug"), atomic_dir(tmp_path / "model", "training"):
        raise RuntimeError("a bug")


# ----------------------------------------------------------------------------- terminals


def test_corpus_stats_prints_a_hostile_csv_kind_inertly(tmp_path):
    path = tmp_path / "c.csv"
    kind = "\x1b]0;pwned\x07\x1b[2J[/][red]x"
    path.write_text(f'genre,theme,title,text,kind\nHorror,Grief,T,"A keeper climbs the stairs.","{kind}"\n')
    res = runner.invoke(app, ["corpus", "stats", str(path)])
    assert res.exit_code == 0, (res.output, res.exception)
    assert_inert(res.output)
    assert "\\x1b]0;pwned\\x07\\x1b[2J[/][red]x 1" in res.output


def test_a_csv_kind_longer_than_a_field_may_be_is_an_error(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(f'genre,theme,title,text,kind\nHorror,Grief,T,"A keeper climbs the stairs.",{"k" * 201}\n')
    report = read_corpus(path)
    assert [str(e) for e in report.errors] == [f"{path}:2: error: field(s) longer than 200 characters: ['kind']"]


def test_index_out_with_markup_in_its_path(tmp_path, small_corpus_path):
    for name in ("idx[/]", "idx[red]"):
        out = tmp_path / name
        res = runner.invoke(app, ["index", "--corpus", str(small_corpus_path), "--out", str(out)])
        assert res.exit_code == 0, (res.output, res.exception)
        assert f"into {out}" in res.output.replace("\n", "")


@pytest.fixture(scope="module")
def served_hostile_model(tmp_path_factory, small_corpus_path) -> tuple[str, str]:
    """`serve` over a copy of the bundled model in a folder named with markup and an OSC title sequence:
    (stdout up to its "serving ..." line, stderr)."""
    from prompt_retriever.encoding.models import resolve_model

    model = tmp_path_factory.mktemp("hostile") / "m[red]\x1b]0;pwned\x07"
    shutil.copytree(resolve_model("all-MiniLM-L6-v2").location, model)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [str(CLI), "serve", "--model", str(model), "--corpus", str(small_corpus_path), "--port", str(port)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode("utf-8", "replace")
            lines.append(line)
            if not line or "serving" in line:
                break
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    return "".join(lines), err.decode("utf-8", "replace")


def test_serve_announces_a_hostile_model_folder_name_inertly(served_hostile_model):
    out, err = served_hostile_model
    assert "serving 8 prompts (m[red]\\x1b]0;pwned\\x07@" in out, (out, err)
    assert_inert(out)


def test_serve_logs_a_hostile_model_folder_name_inertly(served_hostile_model):
    out, err = served_hostile_model
    assert "serving" in out, (out, err)
    assert "\x1b" not in err and "\x07" not in err, err
