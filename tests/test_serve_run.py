"""A pipeline run is deployable: the system it chose on dev is what `search`/`serve --run` answer with,
and the serving path reproduces the evaluation's numbers exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from typer.testing import CliRunner

from prompt_retriever.cli import app
from prompt_retriever.errors import IndexLoadError
from prompt_retriever.evaluation.choose import choose_system
from prompt_retriever.evaluation.metrics import evaluate
from prompt_retriever.evaluation.systems import build_systems
from prompt_retriever.golden import GoldenSet
from prompt_retriever.pipeline import PipelineConfig, _system_spec, primary_golden, run_pipeline
from prompt_retriever.search import PromptRetriever, SearchRequest
from prompt_retriever.search.runs import filter_mask, rank
from prompt_retriever.serving.api import create_app
from prompt_retriever.training import TrainConfig

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("deploy")
    corpus = tmp / "golden12.txt"
    shutil.copy(DATA / "golden12.txt", corpus)
    cfg = PipelineConfig(
        corpus=[corpus],
        out=tmp / "run",
        test=0.25,
        dev=0.25,
        systems=("bm25", "hybrid", "hybrid-rrf"),
        train=TrainConfig(max_steps=2, batch_size=4, hard_negatives=1, max_rows=16),
        n_bootstrap=200,
        n_permutations=200,
        plots=False,
    )
    run_pipeline(cfg, Console(quiet=True))
    return tmp / "run"


def ndcg_of(hits_by_query, gs: GoldenSet, queries) -> float:
    """NDCG@10 of served hits, ranked as served (scores only carry the order)."""
    run = {q.id: {h.prompt.id: -float(h.rank) for h in hits} for q, hits in zip(queries, hits_by_query, strict=True)}
    return evaluate(run, {q.id: gs.qrels[q.id] for q in queries}, ["ndcg@10"])["ndcg@10"]


def test_the_run_records_its_choice_and_the_report_says_what_to_do(run_dir):
    info = json.loads((run_dir / "system.json").read_text())
    assert info["chosen_on"]["split"] == "dev" and info["chosen_on"]["families"] == ["template"]
    best = max(info["chosen_on"]["candidates"].items(), key=lambda kv: kv[1]["mean"])
    assert best[0] == info["name"] and best[1]["mean"] == info["dev_ndcg@10"]
    assert info["kind"] in ("dense", "bm25", "hybrid", "hybrid-rrf")
    assert (run_dir / "index" / "manifest.json").exists()
    report = (run_dir / "REPORT.md").read_text()
    first = report.split("\n\n")[1]
    assert first.startswith("Fine-tuning") and info["label"] in first  # the verdict opens the report
    assert f"serve --run {run_dir}" in report and f'search "haunted lighthouse" --run {run_dir}' in report
    lines = report.splitlines()
    headings = [i for i, line in enumerate(lines) if line.startswith("#")]
    for i, j in zip(headings, headings[1:], strict=False):
        assert any(line.strip() for line in lines[i + 1 : j]), f"empty heading {lines[i]!r}"


def test_the_served_system_reproduces_the_reported_test_ndcg(run_dir):
    info = json.loads((run_dir / "system.json").read_text())
    gs = GoldenSet.load(run_dir / "golden")
    queries = primary_golden(gs).split_queries("test")  # the report's test split
    r = PromptRetriever.from_run(run_dir)
    assert r.system.kind == info["kind"]
    batched = r.search_requests([SearchRequest(q.text, 10) for q in queries])
    assert ndcg_of(batched, gs, queries) == info["test_ndcg@10"]
    # and through the HTTP API, one request at a time, as a user gets it
    client = TestClient(create_app(r))
    served = []
    for q in queries:
        res = client.get("/api/search", params={"q": q.text, "k": 10})
        assert res.status_code == 200
        ids = [x["prompt"]["id"] for x in res.json()["results"]]
        served.append([type("H", (), {"prompt": r.get(pid), "rank": n})() for n, pid in enumerate(ids, 1)])
    assert ndcg_of(served, gs, queries) == info["test_ndcg@10"]


@pytest.mark.parametrize("kind", ["dense", "bm25", "hybrid", "hybrid-rrf", "hybrid-adaptive"])
def test_every_kind_serves_exactly_what_evaluation_scores_with_and_without_filters(run_dir, kind):
    gs = GoldenSet.load(run_dir / "golden")
    model = str(run_dir / "model")
    spec = model if kind == "dense" else "bm25" if kind == "bm25" else f"{kind}:{model}"
    (system,) = build_systems([spec], gs.corpus, dev=gs.dev_pairs())
    served_spec, used = _system_spec(system)
    assert served_spec.kind == kind
    served = PromptRetriever(used or model, system=served_spec).index(gs.corpus)
    queries = [(q.id, q.text) for q in gs.split_queries("test")]
    genre = gs.corpus[0].genre
    for filt in (None, genre):
        mask = filter_mask([p.genre for p in gs.corpus], [p.theme for p in gs.corpus], filt, None)
        want = system.search(queries, 10, mask)
        got = served.search_requests([SearchRequest(text, 10, filt) for _, text in queries])
        for (qid, _), hits in zip(queries, got, strict=True):
            assert [h.prompt.id for h in hits] == rank(want[qid])
            assert {h.prompt.id: h.score for h in hits} == pytest.approx(want[qid], abs=1e-6)
            if filt:
                assert all(h.prompt.genre == filt for h in hits)


def test_the_choice_reads_dev_only(run_dir):
    gs = GoldenSet.load(run_dir / "golden")
    model = str(run_dir / "model")
    systems = build_systems([model, "bm25", f"hybrid:{model}"], gs.corpus, dev=gs.dev_pairs())
    chosen = choose_system(systems, gs).name

    def rigged(split: str, favour) -> GoldenSet:
        """A copy whose `split` qrels are exactly the favoured system's top 3: it wins that split."""
        ids = set(gs.splits[split])
        queries = [(q.id, q.text) for q in gs.queries if q.id in ids]
        run = favour.search(queries, 3)
        qrels = dict(gs.qrels)
        for qid, _ in queries:
            qrels[qid] = {pid: 1 for pid in run[qid]} or dict(gs.qrels[qid])
        return GoldenSet(gs.corpus, gs.queries, qrels, gs.splits, gs.negatives, gs.manifest)

    other = next(s for s in systems if s.name != chosen)
    assert choose_system(systems, rigged("test", other)).name == chosen  # test never moves the choice
    assert choose_system(systems, rigged("dev", other)).name == other.name  # dev does


def test_a_stale_run_is_refused(run_dir, tmp_path):
    stale = tmp_path / "stale"
    shutil.copytree(run_dir, stale)
    lines = (stale / "corpus.jsonl").read_text().splitlines()
    (stale / "corpus.jsonl").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(IndexLoadError, match="corpus changed"):
        PromptRetriever.from_run(stale)
    res = CliRunner().invoke(app, ["search", "lighthouse", "--run", str(stale)])
    assert res.exit_code == 2 and "corpus changed" in res.output and "Traceback" not in res.output

    shutil.copy(run_dir / "corpus.jsonl", stale / "corpus.jsonl")
    info = json.loads((stale / "system.json").read_text())
    (stale / "system.json").write_text(json.dumps(info | {"model_fingerprint": "model@0000000000000000"}))
    with pytest.raises(IndexLoadError, match="model changed"):
        PromptRetriever.from_run(stale)
    (stale / "system.json").unlink()
    with pytest.raises(IndexLoadError, match="not a deployable run"):
        PromptRetriever.from_run(stale)


def test_api_info_says_which_system_answers(run_dir):
    info = json.loads((run_dir / "system.json").read_text())
    body = TestClient(create_app(PromptRetriever.from_run(run_dir))).get("/api/info").json()
    assert body["system"] == info["label"] and body["kind"] == info["kind"]
    assert body["test_ndcg@10"] == info["test_ndcg@10"] and body["dev_ndcg@10"] == info["dev_ndcg@10"]
    assert body["prompts"] == 12 and body["corpus_fingerprint"] == info["corpus_fingerprint"]
    plain = TestClient(create_app(PromptRetriever(system="bm25").index(GoldenSet.load(run_dir / "golden").corpus)))
    body = plain.get("/api/info").json()
    assert body["kind"] == "bm25" and body["system"] == "BM25" and body["test_ndcg@10"] is None


def test_search_cli_from_a_run_json_document_and_the_system_line(run_dir):
    runner = CliRunner()
    res = runner.invoke(app, ["search", "lighthouse keeper", "--run", str(run_dir), "-k", "3", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    api = TestClient(create_app(PromptRetriever.from_run(run_dir))).get(
        "/api/search", params={"q": "lighthouse keeper", "k": 3}
    )
    assert set(doc) == set(api.json()) and len(doc["results"]) == 3
    assert set(doc["results"][0]) == set(api.json()["results"][0])
    assert set(doc["results"][0]["prompt"]) == set(api.json()["results"][0]["prompt"])
    assert [x["prompt"]["id"] for x in doc["results"]] == [x["prompt"]["id"] for x in api.json()["results"]]
    label = json.loads((run_dir / "system.json").read_text())["label"]
    text = runner.invoke(app, ["search", "lighthouse keeper", "--run", str(run_dir), "-k", "2"]).stdout
    assert text.splitlines()[0].startswith(label) and text.count(label) == 1
    lines = runner.invoke(app, ["search", "lighthouse", "--run", str(run_dir), "-k", "2", "--jsonl"]).stdout
    assert [json.loads(x)["rank"] for x in lines.splitlines()] == [1, 2]
    by_hand = runner.invoke(app, ["search", "lighthouse", "--system", "bm25", "--corpus", str(DATA / "golden12.txt")])
    assert by_hand.exit_code == 0 and by_hand.stdout.splitlines()[0].startswith("BM25")
