"""A run folder (`system.json`, `index/`, `model/`, `corpus.jsonl`) and a saved index are data, not
instructions: a changed model is noticed, every file is read bounded, every field is checked, every path
stays inside the run, and an index works from any current folder (issue 26, "A run folder is trusted too
much"). Real files, real symlinks and FIFOs, the real bundled model; no mocks."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from prompt_retriever.cli import app
from prompt_retriever.corpus import write_corpus
from prompt_retriever.encoding.encoder import Encoder, backend_fingerprint, check_template, prompt_document
from prompt_retriever.encoding.models import model_fingerprint, resolve_model
from prompt_retriever.errors import IndexLoadError, InputError, PromptRetrieverError
from prompt_retriever.fileio import sha256_file
from prompt_retriever.search.retriever import PromptRetriever
from prompt_retriever.search.systems import SystemSpec

HAS_DEV_ZERO = Path("/dev/zero").exists()
needs_dev_zero = pytest.mark.skipif(not HAS_DEV_ZERO, reason="no /dev/zero")
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")


# ----------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, small_prompts) -> Path:
    """A small deployable run: a copy of the bundled model in run/model, a hybrid-rrf index, corpus.jsonl."""
    run = tmp_path_factory.mktemp("hardening-run") / "run"
    shutil.copytree(resolve_model("all-MiniLM-L6-v2").location, run / "model")
    write_corpus(small_prompts, run / "corpus.jsonl")
    retriever = PromptRetriever(str(run / "model"), system=SystemSpec("hybrid-rrf")).index(small_prompts)
    retriever.save_run(run, {"label": "a test run", "dev_ndcg@10": 0.5, "test_ndcg@10": 0.6, "test": {"t": 0.6}})
    return run


@pytest.fixture
def run(base_run, tmp_path) -> Path:
    """A private copy of the run made of hard links (cheap): tests replace files, never write into them."""
    dst = tmp_path / "run"
    shutil.copytree(base_run, dst, copy_function=os.link)
    return dst


def replace(path: Path, data: str | bytes) -> None:
    """Write `path` as a new file (never into a hard-linked one)."""
    if path.is_symlink() or path.exists():
        path.unlink()
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    replace(path, json.dumps(data))


def forge_system(run: Path, raw: str) -> None:
    """Override fields of system.json with a raw JSON object text (so `1e999` stays as written)."""
    text = json.dumps(json.loads((run / "system.json").read_text()))
    replace(run / "system.json", text[:-1] + ", " + raw.strip()[1:])


def refused_run(run: Path, match: str, error: type[Exception] = IndexLoadError) -> None:
    t0 = time.monotonic()
    with pytest.raises(error, match=match):
        PromptRetriever.from_run(run)
    assert time.monotonic() - t0 < 30


def link_to_dev_zero(path: Path) -> None:
    path.unlink()
    os.symlink("/dev/zero", path)


def digest(fp: str) -> str:
    return fp.rsplit("@", 1)[1]


def copy_model(tmp_path: Path, name: str = "m") -> Path:
    dst = tmp_path / name
    shutil.copytree(resolve_model("all-MiniLM-L6-v2").location, dst, copy_function=os.link)
    return dst


def test_an_untouched_run_loads(run):
    r = PromptRetriever.from_run(run)
    assert r.system.kind == "hybrid-rrf" and r.describe()["system"] == "a test run"
    assert r.search("lighthouse", k=2)


# ----------------------------------------------------------------------------- a changed model is noticed


@pytest.mark.parametrize(
    ("file", "changes"),
    [
        ("sentence_bert_config.json", {"max_seq_length": 4}),
        ("1_Pooling/config.json", {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}),
        ("modules.json", None),
        ("config.json", {"layer_norm_eps": 1e-3}),
        ("tokenizer_config.json", {"do_lower_case": False}),
        ("config_sentence_transformers.json", {"prompts": {"query": "x: "}}),
    ],
)
def test_a_changed_model_configuration_is_refused(run, file, changes):
    path = run / "model" / file
    if changes is None:  # modules.json is a list: drop the Normalize module
        replace(path, json.dumps(json.loads(path.read_text())[:2]))
    else:
        edit_json(path, **changes)
    refused_run(run, "model changed.*rerun the pipeline")


def test_a_changed_tokenizer_vocabulary_is_refused(run):
    vocab = (run / "model" / "vocab.txt").read_text().splitlines()
    vocab[2000], vocab[2001] = vocab[2001], vocab[2000]
    replace(run / "model" / "vocab.txt", "\n".join(vocab) + "\n")
    refused_run(run, "model changed")


def test_the_fingerprint_covers_what_changes_embeddings_and_nothing_else(tmp_path):
    a, b = copy_model(tmp_path, "a"), copy_model(tmp_path, "b")
    same = digest(model_fingerprint(str(a)))
    assert digest(model_fingerprint(str(b))) == same  # content, not place
    replace(b / "README.md", "a model card edited")
    replace(b / "training_manifest.json", "{}")
    assert digest(model_fingerprint(str(b))) == same
    before = {backend: backend_fingerprint(str(b), backend) for backend in ("torch", "onnx", "onnx-int8")}
    for file, changes in (
        ("sentence_bert_config.json", {"max_seq_length": 4}),
        ("1_Pooling/config.json", {"pooling_mode_cls_token": True}),
        ("special_tokens_map.json", {"unk_token": "[UNK2]"}),
    ):
        edit_json(b / file, **changes)
        now = digest(model_fingerprint(str(b)))
        assert now != same, file
        same = now
    for backend, fp in before.items():  # embedding caches and ONNX exports are keyed by these
        assert backend_fingerprint(str(b), backend) != fp
    bundled = model_fingerprint("all-MiniLM-L6-v2")
    weights = sha256_file(Path(resolve_model("all-MiniLM-L6-v2").location) / "model.safetensors")[:16]
    assert bundled.startswith("sentence-transformers/all-MiniLM-L6-v2@") and digest(bundled) != weights


def test_the_embedding_cache_and_loaded_model_notice_a_pooling_change(tmp_path):
    m = copy_model(tmp_path)
    text = ["a lighthouse keeper finds a letter from the sea"]
    first = Encoder(str(m)).encode_documents(text)
    edit_json(m / "1_Pooling" / "config.json", pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    second = Encoder(str(m)).encode_documents(text)
    assert not np.allclose(first, second)  # before: the cached (mean-pooled) vector came back


def test_a_run_made_before_the_fingerprint_covered_the_configuration_is_refused_clearly(run):
    legacy = "model@" + sha256_file(run / "model" / "model.safetensors")[:16]  # what older versions recorded
    edit_json(run / "system.json", model_fingerprint=legacy)
    edit_json(run / "index" / "manifest.json", fingerprint=legacy)
    refused_run(run, "older version.*weights only.*rerun the pipeline")
    with pytest.raises(IndexLoadError, match="older version.*rebuild"):
        PromptRetriever.load(run / "index")


# ----------------------------------------------------------------------------- unbounded reads


@needs_dev_zero
def test_system_json_symlinked_to_dev_zero(run):
    link_to_dev_zero(run / "system.json")
    refused_run(run, "regular file")


@needs_dev_zero
def test_corpus_jsonl_symlinked_to_dev_zero(run):
    link_to_dev_zero(run / "corpus.jsonl")
    refused_run(run, "regular file")


def test_oversized_system_json_is_refused_before_reading(run):
    replace(run / "system.json", (run / "system.json").read_bytes())  # a file of its own, not a hard link
    with open(run / "system.json", "ab") as fh:
        fh.truncate(2**31)  # sparse 2 GiB
    refused_run(run, "too large")


def call_with_fifo(fifo: Path, fn) -> BaseException | None:
    """Run `fn` in a thread; fail (after unblocking it) if it is still waiting on the FIFO after 20 s."""
    box: dict[str, BaseException | None] = {"exc": None}

    def target():
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["exc"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # let the blocked reader go
        os.close(fd)
        t.join(5)
        pytest.fail(f"reading {fifo.name} blocked on a FIFO")
    return box["exc"]


@needs_fifo
def test_corpus_jsonl_as_a_fifo(run):
    (run / "corpus.jsonl").unlink()
    os.mkfifo(run / "corpus.jsonl")
    exc = call_with_fifo(run / "corpus.jsonl", lambda: PromptRetriever.from_run(run))
    assert isinstance(exc, IndexLoadError) and "regular file" in str(exc)


@needs_dev_zero
def test_model_weights_symlinked_to_dev_zero(run):
    link_to_dev_zero(run / "model" / "model.safetensors")
    refused_run(run, "regular file", PromptRetrieverError)


@needs_fifo
def test_tokenizer_file_as_a_fifo(run):
    (run / "model" / "tokenizer.json").unlink()
    os.mkfifo(run / "model" / "tokenizer.json")
    exc = call_with_fifo(run / "model" / "tokenizer.json", lambda: PromptRetriever.from_run(run))
    assert isinstance(exc, PromptRetrieverError) and "regular file" in str(exc)


def test_sparse_weights_beyond_any_model_are_refused_unread(tmp_path):
    m = copy_model(tmp_path)
    (m / "model.safetensors").unlink()
    with open(m / "model.safetensors", "wb") as fh:
        fh.truncate(2**40)  # sparse 1 TiB
    t0 = time.monotonic()
    with pytest.raises(PromptRetrieverError, match="too large"):
        model_fingerprint(str(m))
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize(
    "template",
    ["{title:>300000000}", "{title!r:>9}", "{title.__class__}", "{text[0]}", "{0}", "{}", "{title", "x" * 2000],
)
def test_hostile_templates_are_refused(template, small_prompts):
    with pytest.raises(InputError, match="template"):
        check_template(template)
    with pytest.raises(InputError, match="template"):
        PromptRetriever(template=template)
    with pytest.raises(InputError, match="template"):
        prompt_document(small_prompts[0], template)


def test_named_and_plain_custom_templates_still_work(small_prompts):
    p = small_prompts[0]
    for name in ("text", "title_text", "full"):
        assert check_template(name) == name
    assert prompt_document(p, "{genre}: {text} {{literal}}") == f"{p.genre}: {p.text} {{literal}}"


def test_index_manifest_with_a_huge_template_is_refused_without_allocating(run):
    edit_json(run / "index" / "manifest.json", template="{title:>300000000}")
    t0 = time.monotonic()
    with pytest.raises(IndexLoadError, match="template"):
        PromptRetriever.load(run / "index")
    assert time.monotonic() - t0 < 10


# ----------------------------------------------------------------------------- forged fields


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"kind": "hybrid-rrf", "depth": 1.5}', "depth"),
        ('{"depth": true}', "depth"),
        ('{"depth": 100000000000}', "depth"),
        ('{"k_rrf": 0}', "k_rrf"),
        ('{"index": 5}', "index"),
        ('{"bounds": [1e999]}', "bounds"),
        ('{"bounds": ["x"]}', "bounds"),
        ('{"bounds": [4, 2]}', "bounds"),
        ('{"kind": "hybrid-adaptive", "alphas": [0.1, 0.2]}', "alphas"),
        ('{"alpha": 2}', "alpha"),
        ('{"alpha": NaN}', "alpha"),
        ('{"kind": "nope"}', "kind"),
        ('{"kind": ["dense"]}', "kind"),
        ('{"label": 5}', "label"),
        ('{"name": {"a": 1}}', "name"),
        ('{"test_ndcg@10": "high"}', "test_ndcg@10"),
        ('{"dev_ndcg@10": Infinity}', "dev_ndcg@10"),
        ('{"test": {"natural": "x"}}', "test"),
        ('{"model": 5}', "model"),
        ('{"model": "%s"}' % ("a" * 300), "model"),
        ('{"index": "%s"}' % ("a" * 300), "index"),
        ('{"model_fingerprint": null}', "model_fingerprint"),
        ('{"corpus_fingerprint": 7}', "corpus_fingerprint"),
        ('{"backend": "gpu"}', "backend"),
        ('{"template": 7}', "template"),
        ('{"template": "{title:>300000000}"}', "template"),
        ('{"format": true}', "format"),
        ('{"format": 2}', "format"),
    ],
)
def test_forged_system_fields_are_one_index_load_error(run, raw, field):
    forge_system(run, raw)
    refused_run(run, field)


def test_system_json_that_is_not_an_object(run):
    replace(run / "system.json", "[1, 2]")
    refused_run(run, "object")


def test_forged_depth_through_the_cli_is_a_clean_exit_2(run):
    forge_system(run, '{"kind": "hybrid-rrf", "depth": 1.5}')
    res = CliRunner().invoke(app, ["search", "lighthouse", "--run", str(run)])
    assert res.exit_code == 2 and "depth" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize(
    "system", [{"kind": "hybrid-rrf", "depth": 1.5}, {"kind": "hybrid-adaptive", "bounds": ["x"]}, {"alpha": "1"}]
)
def test_forged_system_in_an_index_manifest(run, system):
    edit_json(run / "index" / "manifest.json", system=system)
    with pytest.raises(IndexLoadError, match="system"):
        PromptRetriever.load(run / "index")


@pytest.mark.parametrize("changes", [{"backend": 5}, {"backend": "gpu"}, {"model": 5}, {"template": None}])
def test_forged_index_manifest_fields(run, changes):
    edit_json(run / "index" / "manifest.json", **changes)
    with pytest.raises(IndexLoadError, match=next(iter(changes))):
        PromptRetriever.load(run / "index")


# ----------------------------------------------------------------------------- paths outside the run


def test_model_path_climbing_out_of_the_run(run, tmp_path):
    copy_model(tmp_path / "other", "model")
    edit_json(run / "system.json", model="../other/model")
    refused_run(run, "outside the run")


def test_absolute_model_path(run, tmp_path):
    other = copy_model(tmp_path, "elsewhere")
    edit_json(run / "system.json", model=str(other))
    refused_run(run, "outside the run|relative")


def test_model_folder_symlinked_out_of_the_run(run, tmp_path):
    other = copy_model(tmp_path, "elsewhere")
    shutil.rmtree(run / "model")
    os.symlink(other, run / "model")
    refused_run(run, "outside the run")


def test_model_named_by_a_folder_of_the_current_directory(run, tmp_path, monkeypatch):
    copy_model(tmp_path, "othermodel")
    monkeypatch.chdir(tmp_path)
    edit_json(run / "system.json", model="othermodel")
    refused_run(run, "outside the run|not a model")


@pytest.mark.parametrize("where", ["absolute", "climbing", "symlink"])
def test_index_outside_the_run(run, tmp_path, where):
    outside = tmp_path / "outside-index"
    shutil.copytree(run / "index", outside, copy_function=os.link)
    if where == "absolute":
        edit_json(run / "system.json", index=str(outside))
    elif where == "climbing":
        edit_json(run / "system.json", index="../outside-index")
    else:
        shutil.rmtree(run / "index")
        os.symlink(outside, run / "index")
    refused_run(run, "outside the run|relative")


def test_index_template_disagreeing_with_the_system(run):
    edit_json(run / "index" / "manifest.json", template="text")
    refused_run(run, "template")


def test_a_run_of_a_bundled_model_by_name_still_loads(tmp_path, small_prompts):
    d = tmp_path / "named"
    PromptRetriever(system="bm25").index(small_prompts).save_run(d, {"label": "bm25 run"})
    assert json.loads((d / "system.json").read_text())["model"] == "all-MiniLM-L6-v2"
    assert PromptRetriever.from_run(d).describe()["system"] == "bm25 run"


def test_save_run_copies_a_model_from_outside_into_the_run(tmp_path, small_prompts, monkeypatch):
    other = copy_model(tmp_path, "elsewhere")  # e.g. `pipeline --base /path/to/model` when the base model wins
    r = PromptRetriever(str(other), system="hybrid").index(small_prompts[:3])
    r.save_run(tmp_path / "r", {"label": "x"})
    info = json.loads((tmp_path / "r" / "system.json").read_text())
    assert info["model"] == "models/elsewhere" and info["model_fingerprint"] == r.fingerprint
    assert not (tmp_path / "r" / "models" / "elsewhere" / "model.safetensors").is_symlink()
    shutil.rmtree(other)  # the run holds its own copy
    monkeypatch.chdir(tmp_path / "r" / "models")
    assert len(PromptRetriever.from_run(tmp_path / "r")) == 3


# ----------------------------------------------------------------------------- from any folder


def test_an_index_works_from_any_folder(tmp_path, monkeypatch, small_corpus_path):
    proj = tmp_path / "project"
    proj.mkdir()
    copy_model(proj, "mymodel")
    monkeypatch.chdir(proj)
    runner = CliRunner()
    res = runner.invoke(app, ["index", "--corpus", str(small_corpus_path), "--model", "mymodel", "--out", "idx"])
    assert res.exit_code == 0, res.output
    assert json.loads((proj / "idx" / "manifest.json").read_text())["model"] == "../mymodel"  # relative to the index
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert len(PromptRetriever.load(proj / "idx")) > 0
    res = runner.invoke(app, ["search", "lighthouse", "--index", str(proj / "idx"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["results"]


def test_a_run_works_from_any_folder(base_run, tmp_path, monkeypatch):
    manifest = json.loads((base_run / "index" / "manifest.json").read_text())
    assert manifest["model"] == "../model"  # relative to the index, not to where the run was made
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["search", "lighthouse", "--run", str(base_run), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["results"]
    assert len(PromptRetriever.load(base_run / "index")) > 0  # the run's index alone, from elsewhere


def test_an_index_of_the_older_format_says_to_rebuild_it(run, tmp_path, monkeypatch):
    """Format 1 named the model relative to the folder the index was built from: from elsewhere, one
    clear error instead of "model folder ... does not exist"."""
    edit_json(run / "index" / "manifest.json", format=1, model="runs/bundled/model")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(IndexLoadError, match="older version.*rebuild"):
        PromptRetriever.load(run / "index")
