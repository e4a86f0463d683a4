"""A pipeline run is deployable: the system it chose on dev is what `search`/`serve --run` answer with,
and the serving path reproduces the evaluation's numbers exactly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from server_util import free_port
from typer.testing import CliRunner

from prompt_retriever.cli import app
from prompt_retriever.errors import IndexLoadError
from prompt_retriever.evaluation.choose import choose_system
from prompt_retriever.evaluation.metrics import evaluate
from prompt_retriever.evaluation.systems import build_systems
from prompt_retriever.golden import GoldenSet
from prompt_retriever.pipeline import PipelineConfig, primary_golden, run_pipeline
from prompt_retriever.search import PromptRetriever, SearchRequest
from prompt_retriever.search.runs import filter_mask, rank
from prompt_retriever.search.systems import SystemSpec
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
        reference_corpus=[DATA / "reference20.txt"],  # a small reference collection (the default: the bundled one)
        reference_queries=DATA / "reference20.jsonl",
    )
    run_pipeline(cfg, Console(quiet=True))
    return tmp / "run"


def ndcg_of(hits_by_query, gs: GoldenSet, queries) -> float:
    """NDCG@10 of served hits, ranked as served (scores only carry the order)."""
    run = {q.id: {h.prompt.id: -float(h.rank) for h in hits} for q, hits in zip(queries, hits_by_query, strict=True)}
    return evaluate(run, {q.id: gs.qrels[q.id] for q in queries}, ["ndcg@10"])["ndcg@10"]


def test_the_run_records_its_choice_and_the_report_says_what_to_do(run_dir):
    info = json.loads((run_dir / "system.json").read_text())
    # no natural queries of its own: the reference's held-out genres stand in for writers' requests on dev
    assert info["chosen_on"]["split"] == "dev" and info["chosen_on"]["families"] == ["natural-reference", "template"]
    assert info["reference"]["proxy"]["genres"] and info["reference"]["replay"]["queries"] > 0
    base = info["chosen_on"]["candidates"][info["chosen_on"]["base"]]["natural-reference"]
    assert info["chosen_on"]["candidates"][info["name"]]["natural-reference"] >= base  # never below the base model
    best = max(info["chosen_on"]["candidates"].items(), key=lambda kv: kv[1]["mean"])
    assert best[0] == info["name"] and best[1]["mean"] == info["dev_ndcg@10"]
    assert info["kind"] in ("dense", "bm25", "hybrid", "hybrid-rrf")
    assert (run_dir / "index" / "manifest.json").exists()
    report = (run_dir / "REPORT.md").read_text()
    first = report.split("\n\n")[1]
    # the verdict opens the report, names the families measured, and never says "helped" from templates alone
    assert first.startswith("Measured on template queries only; how writers ask was not measured for this collection")
    assert "--llm-base-url" in first and "--judged" in first and info["label"] in first
    assert "Fine-tuning helped" not in report and "not a measurement of this one" in first
    assert f"serve --run {run_dir}" in report and f'search "haunted lighthouse" --run {run_dir}' in report
    lines = report.splitlines()
    headings = [i for i, line in enumerate(lines) if line.startswith("#")]
    for i, j in zip(headings, headings[1:], strict=False):
        assert any(line.strip() for line in lines[i + 1 : j]), f"empty heading {lines[i]!r}"


@pytest.mark.parametrize("engine", ["exact", "edge"])
def test_the_served_system_reproduces_the_reported_test_ndcg(run_dir, engine):
    info = json.loads((run_dir / "system.json").read_text())
    gs = GoldenSet.load(run_dir / "golden")
    queries = primary_golden(gs).split_queries("test")  # the report's test split
    r = PromptRetriever.from_run(run_dir, engine=engine)
    assert r.system.kind == info["kind"] and r.describe()["engine"] == engine
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
    (system,) = build_systems([spec], gs.corpus, dev=gs.dev_judged())
    served_spec, used = system.servable()
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
    systems = build_systems([model, "bm25", f"hybrid:{model}"], gs.corpus, dev=gs.dev_judged())
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
    # the API's shape; a query_id (and whether feedback is on) belongs to served answers only
    assert set(doc) == set(api.json()) - {"query_id", "feedback"} and len(doc["results"]) == 3
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


def evaluate_cli(*args: str):
    return CliRunner().invoke(
        app, ["evaluate", *args, "--bootstrap", "200", "--permutations", "200", "--no-plots"], catch_exceptions=False
    )


def family_means(by_kind: dict) -> dict[str, float]:
    """A report's per-kind NDCG@10 means pooled into query families (weighted by their query counts)."""
    from prompt_retriever.evaluation.choose import family_of

    sums: dict[str, list[float]] = {}
    for kind, metrics in by_kind.items():
        m = metrics["ndcg@10"]
        s = sums.setdefault(family_of(kind), [0.0, 0.0])
        s[0] += m["mean"] * m["n"]
        s[1] += m["n"]
    return {f: total / n for f, (total, n) in sums.items()}


def test_evaluate_run_reproduces_the_runs_own_test_numbers(run_dir, tmp_path):
    info = json.loads((run_dir / "system.json").read_text())
    res = evaluate_cli("--run", str(run_dir), "--out", str(tmp_path / "rep"))  # the run's own golden set
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert list(rep["systems"]) == [info["label"]]  # the served system, under the run's label
    served = rep["systems"][info["label"]]
    assert served["extra"]["kind"] == info["kind"] and served["extra"]["run"] == str(run_dir)
    by_family = family_means(served["by_kind"])
    for family, want in info["test"].items():
        assert by_family[family] == pytest.approx(want, abs=1e-9), family
    gs = GoldenSet.load(run_dir / "golden")
    primary = {q.id for q in primary_golden(gs).split_queries("test")}
    if primary == set(gs.splits["test"]):  # the report's test split is every test query
        assert served["metrics"]["ndcg@10"]["mean"] == pytest.approx(info["test_ndcg@10"], abs=1e-9)
    else:
        assert by_family["template"] == pytest.approx(info["test_ndcg@10"], abs=1e-9)

    # any query set `evaluate` accepts, over the run's corpus: here the run's pairs.csv, imported on the fly
    res = evaluate_cli("--run", str(run_dir), "--pairs", str(run_dir / "golden" / "pairs.csv"), "-s", "bm25",
                       "--out", str(tmp_path / "pairs"))  # fmt: skip
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "pairs" / "report.json").read_text())
    assert list(rep["systems"]) == [info["label"], "bm25"] and rep["baseline"] == info["label"]


def test_evaluate_run_scores_the_runs_own_bucket_weights(run_dir, tmp_path):
    gs = GoldenSet.load(run_dir / "golden")
    alphas = (0.0, 1.0, 0.2, 0.9)
    adaptive = tmp_path / "adaptive"
    PromptRetriever(system=SystemSpec("hybrid-adaptive", alphas=alphas)).index(gs.corpus).save_run(
        adaptive, {"label": "my adaptive run"}
    )
    res = evaluate_cli("--run", str(adaptive), "--golden", str(run_dir / "golden"), "-s", "hybrid-adaptive",
                       "-s", "hybrid", "--out", str(tmp_path / "rep"))  # fmt: skip
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert list(rep["systems"]) == ["my adaptive run", "hybrid-adaptive", "hybrid"]
    served = rep["systems"]["my adaptive run"]
    assert served["extra"]["alphas"] == list(alphas)
    (by_hand,) = build_systems(["hybrid-adaptive"], gs.corpus)
    by_hand.alphas = alphas
    queries = gs.split_queries("test")
    run = by_hand.search([(q.id, q.text) for q in queries], 10)
    want = evaluate(run, {q.id: gs.qrels[q.id] for q in queries}, ["ndcg@10"])["ndcg@10"]
    assert served["metrics"]["ndcg@10"]["mean"] == pytest.approx(want, abs=1e-9)
    # without a run, hybrid-adaptive is tuned on the golden set's dev split, as hybrid is
    assert rep["systems"]["hybrid-adaptive"]["extra"]["tuned_on"] == "dev"
    assert rep["systems"]["hybrid"]["extra"]["tuned_on"] == "dev"


def test_evaluate_run_refuses_a_query_set_of_another_corpus(run_dir, tmp_path):
    other = tmp_path / "other"
    res = CliRunner().invoke(
        app, ["queries", "generate", "--corpus", str(DATA / "small_corpus.txt"), "--out", str(other)]
    )
    assert res.exit_code == 0, res.output
    res = evaluate_cli("--run", str(run_dir), "--golden", str(other), "--split", "all", "--out", str(tmp_path / "x"))
    assert res.exit_code == 2 and "corpus" in res.output and str(run_dir) in res.output.replace("\n", "")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "extra",
    [
        ["--corpus", str(DATA / "golden12.txt")],
        ["--model", "all-MiniLM-L6-v2"],
        ["--system", "bm25"],
        ["--skip-invalid"],
    ],
)
def test_search_refuses_options_a_run_would_ignore(run_dir, extra):
    res = CliRunner().invoke(app, ["search", "ghost", "--run", str(run_dir), *extra])
    assert res.exit_code == 2, res.output
    assert f"--run and {extra[0]} cannot be used together" in res.output.replace("\n", " ")


def test_evaluate_run_refuses_a_corpus(run_dir, tmp_path):
    res = evaluate_cli("--run", str(run_dir), "--corpus", str(DATA / "golden12.txt"), "--out", str(tmp_path / "x"))
    assert res.exit_code == 2 and "--run and --corpus cannot be used together" in res.output.replace("\n", " ")


def test_serve_refuses_options_a_run_would_ignore(run_dir):
    for extra in (["--corpus", str(DATA / "golden12.txt")], ["--model", "all-MiniLM-L6-v2"]):
        cmd = [sys.executable, "-m", "prompt_retriever.cli", "serve", "--port", str(free_port()), "--run", str(run_dir)]
        done = subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=120)  # a server would hang
        assert done.returncode == 2, done.stderr
        assert f"--run and {extra[0]} cannot be used together" in done.stderr.replace("\n", " ")
