"""`--out` never loses what was there: a folder holding files the command did not make is refused (exit 2,
before any work) unless `--force`; `.`, `..`, `/` and the home folder are never replaced, even with --force;
`fileio.atomic_dir` refuses the same on its own, as a last line of defence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prompt_retriever.cli import app
from prompt_retriever.errors import OutputDirError, PromptRetrieverError
from prompt_retriever.fileio import atomic_dir, check_out_dir, protected_dir

DATA = Path(__file__).parent / "data"
CORPUS = str(DATA / "small_corpus.txt")
runner = CliRunner()


def victims(folder: Path) -> Path:
    """A folder of someone's work: a file and a file in a subfolder."""
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "thesis.txt").write_text("three years of work")
    (folder / "sub" / "notes.md").write_text("# notes")
    return folder


def survived(folder: Path) -> bool:
    return (folder / "thesis.txt").read_text() == "three years of work" and (
        folder / "sub" / "notes.md"
    ).read_text() == "# notes"


def refused(res, folder: str | Path) -> bool:
    text = " ".join(res.output.split())
    return res.exit_code == 2 and str(folder) in text and "Traceback" not in text


# Every command that writes a folder, pointed at OUT. The golden set, models and files they would read
# need not exist: the refusal comes before anything is read, so before any training.
COMMANDS = {
    "train": ["train", "--golden", "no-such-golden", "--out", "OUT"],
    "train --soup-keywords": ["train", "--golden", "no-such-golden", "--soup-keywords", "2", "--out", "OUT"],
    "soup": ["soup", "no-such-model-a", "no-such-model-b", "--out", "OUT"],
    "index": ["index", "--corpus", CORPUS, "--out", "OUT"],
    "queries generate": ["queries", "generate", "--corpus", CORPUS, "--out", "OUT"],
    "queries import": ["queries", "import", "no-such-pairs.csv", "--corpus", CORPUS, "--out", "OUT"],
    "evaluate": ["evaluate", "--golden", "no-such-golden", "-s", "bm25", "--out", "OUT"],
    "compare": ["compare", "--golden", "no-such-golden", "--candidate", "m", "--out", "OUT"],
    "pipeline": ["pipeline", "--corpus", CORPUS, "--out", "OUT"],
}
REPLACING = ("train", "train --soup-keywords", "soup")  # the commands that replace --out whole


def command(name: str, out: str | Path, *extra: str) -> list[str]:
    return [str(out) if a == "OUT" else a for a in COMMANDS[name]] + list(extra)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_refuses_a_folder_it_did_not_make(tmp_path, name):
    important = victims(tmp_path / "important")
    res = runner.invoke(app, command(name, important))
    assert refused(res, important), res.output
    text = " ".join(res.output.split())
    assert "not empty" in text and "--force" in text and "choose another folder" in text
    assert survived(important)
    assert sorted(p.name for p in important.iterdir()) == ["sub", "thesis.txt"]  # nothing written beside them


@pytest.mark.parametrize("name", REPLACING)
def test_the_current_folder_and_its_parents_are_never_replaced_even_with_force(tmp_path, monkeypatch, name):
    project = victims(tmp_path / "myproject")
    inner = victims(project / "inner")
    monkeypatch.chdir(inner)
    for out in (".", "..", str(project), "/"):
        for extra in ((), ("--force",)):
            res = runner.invoke(app, command(name, out, *extra))
            assert refused(res, out), (out, extra, res.output)
            assert "never replaced" in res.output
    assert survived(project) and survived(inner)


@pytest.mark.parametrize("name", REPLACING)
def test_the_home_folder_is_never_replaced_even_with_force(tmp_path, monkeypatch, name):
    home = victims(tmp_path / "home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, command(name, home, "--force"))
    assert refused(res, home) and "home folder" in res.output, res.output
    assert survived(home)


def test_force_lets_a_writing_command_write_beside_the_files(tmp_path):
    important = victims(tmp_path / "important")
    res = runner.invoke(app, command("queries generate", important, "--force"))
    assert res.exit_code == 0, res.output
    assert survived(important) and (important / "manifest.json").exists()
    # now it is a golden set this tool made: writing it again needs no --force
    res = runner.invoke(app, command("queries generate", important, "--seed", "7"))
    assert res.exit_code == 0, res.output
    assert survived(important) and json.loads((important / "manifest.json").read_text())["counts"]["queries"] > 0


def test_an_output_of_the_same_kind_is_rewritten_without_force(tmp_path):
    idx = tmp_path / "idx"
    for _ in range(2):
        res = runner.invoke(app, command("index", idx))
        assert res.exit_code == 0, res.output
    # but an index is no golden set, and a golden set no model: each command recognises only its own kind
    res = runner.invoke(app, command("queries generate", idx))
    assert refused(res, idx) and "not a golden set made by prompt-retriever" in " ".join(res.output.split())
    res = runner.invoke(app, command("train", idx))
    assert refused(res, idx) and "not a model made by prompt-retriever" in " ".join(res.output.split())
    assert (idx / "embeddings.npy").exists()


def test_queries_split_refuses_a_folder_that_is_not_a_golden_set(tmp_path):
    important = victims(tmp_path / "important")
    res = runner.invoke(app, ["queries", "split", str(important)])
    assert refused(res, important) and "not a golden set" in res.output
    assert survived(important) and sorted(p.name for p in important.iterdir()) == ["sub", "thesis.txt"]
    # a golden set with a file of the user's beside it: split rewrites its own files and leaves that one
    g = tmp_path / "g"
    assert runner.invoke(app, command("queries generate", g)).exit_code == 0
    victims(g)
    res = runner.invoke(app, ["queries", "split", str(g), "--test", "0.25", "--dev", "0.25"])
    assert res.exit_code == 0, res.output
    assert survived(g) and (g / "qrels" / "test.tsv").exists()


def test_a_file_is_refused_as_an_output_folder(tmp_path):
    thesis = tmp_path / "thesis.txt"
    thesis.write_text("three years of work")
    for name in ("train", "index"):
        res = runner.invoke(app, command(name, thesis, "--force"))
        assert refused(res, thesis) and "is a file, not a folder" in res.output, res.output
    assert thesis.read_text() == "three years of work"


# ----------------------------------------------------------------------------- the rule, in fileio


def test_check_out_dir_allows_new_empty_and_own_folders(tmp_path):
    assert check_out_dir(tmp_path / "new", "model") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_out_dir(tmp_path / "empty", "model")
    model = tmp_path / "model"
    model.mkdir()
    (model / "training_manifest.json").write_text("{}")
    (model / "model.safetensors").write_text("")
    check_out_dir(model, "model")
    run = victims(tmp_path / "run")
    (run / "stages").mkdir()
    check_out_dir(run, "run")  # a pipeline run: no --force needed to resume it
    with pytest.raises(OutputDirError, match="not a pipeline run"):
        check_out_dir(victims(tmp_path / "other"), "run")
    assert issubclass(OutputDirError, PromptRetrieverError)


def test_protected_dir(tmp_path, monkeypatch):
    home = tmp_path / "home" / "me"
    work = tmp_path / "work" / "project"
    home.mkdir(parents=True)
    work.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    assert protected_dir(".") == "the current folder"
    assert protected_dir("..") == protected_dir(tmp_path) == "a parent of the current folder"
    assert protected_dir("/") == "a filesystem root"
    assert protected_dir(home) == "the home folder"
    assert protected_dir(tmp_path / "home") == "a parent of the home folder"
    assert protected_dir("out") is None and protected_dir(home / "models" / "m") is None


def test_atomic_dir_refuses_before_the_work_and_replaces_only_its_own_folders(tmp_path, monkeypatch):
    important = victims(tmp_path / "important")
    ran = []
    with pytest.raises(OutputDirError, match="refusing to replace it"), atomic_dir(important, "training"):
        ran.append(True)  # the work (training) never starts
    assert not ran and survived(important)

    def build(target):
        with atomic_dir(target, "training") as staged:
            staged.result.mkdir()
            (staged.result / "training_manifest.json").write_text("{}")

    build(tmp_path / "m")  # new
    build(tmp_path / "m")  # its own output: replaced
    (tmp_path / "empty").mkdir()
    build(tmp_path / "empty")
    assert (tmp_path / "empty" / "training_manifest.json").exists()

    check_out_dir(important, "model", force=True)  # --force: the user asked for it to be replaced
    build(important)
    assert sorted(p.name for p in important.iterdir()) == ["training_manifest.json"]
    assert not list(tmp_path.glob(".*training-*"))  # no scratch folder left

    monkeypatch.chdir(victims(tmp_path / "cwd"))
    with pytest.raises(OutputDirError, match="current folder"):
        build(Path("."))
    assert survived(tmp_path / "cwd")
