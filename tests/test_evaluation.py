from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prompt_retriever.cli import app
from prompt_retriever.corpus import load_corpus
from prompt_retriever.evaluation.evaluate import evaluate_systems, query_genre
from prompt_retriever.evaluation.report import write_report
from prompt_retriever.golden.goldenset import GoldenSet, Query

DATA = Path(__file__).parent / "data"


class FixedRun:
    """Deterministic rankings per query: a stand-in system for checking the arithmetic end to end."""

    def __init__(self, name, rankings):
        self.name, self.rankings = name, rankings

    def search(self, queries, k):
        return {qid: {pid: 10.0 - i for i, pid in enumerate(self.rankings[qid][:k])} for qid, _ in queries}


@pytest.fixture(scope="module")
def tiny():
    prompts = load_corpus(DATA / "golden12.txt")
    ids = {p.title: p.id for p in prompts}
    lamp, doll, widower, chair = (
        ids[t] for t in ("The Keeper's Lamp", "Mourning Doll", "Widower's Garden", "The Empty Chair")
    )
    teeth = ids["Teeth in a Jar"]
    queries = [Query("qa", "grief stories", "theme"), Query("qb", "lighthouse horror", "keywords", lamp)]
    qrels = {"qa": {lamp: 1, doll: 1, widower: 1, chair: 1}, "qb": {lamp: 2}}
    gs = GoldenSet(prompts, queries, qrels, {"test": ["qa", "qb"]}, [], {"generator": "hand"})
    good = FixedRun("good", {"qa": [lamp, doll, teeth, widower, chair], "qb": [lamp, doll]})
    bad = FixedRun("bad", {"qa": [teeth, lamp], "qb": [doll, teeth, lamp]})
    return gs, good, bad, ids


def test_hand_worked_numbers(tiny):
    gs, good, bad, _ = tiny
    rep = evaluate_systems(gs, [bad, good], split="test", n_bootstrap=200, n_permutations=200)
    g, b = rep.system("good"), rep.system("bad")
    # good, qa: relevant at ranks 1, 2, 4, 5 of 4 relevant
    dcg = 1 + 1 / math.log2(3) + 1 / math.log2(5) + 1 / math.log2(6)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(5)
    assert g.per_query["ndcg@10"]["qa"] == pytest.approx(dcg / idcg)
    assert g.per_query["map@10"]["qa"] == pytest.approx((1 + 1 + 3 / 4 + 4 / 5) / 4)
    assert g.per_query["precision@3"]["qa"] == pytest.approx(2 / 3)
    assert g.per_query["ndcg@10"]["qb"] == 1.0
    # bad, qb: the only relevant prompt at rank 3
    assert b.per_query["mrr@10"]["qb"] == pytest.approx(1 / 3)
    assert b.per_query["ndcg@10"]["qb"] == pytest.approx(1 / math.log2(4))
    assert b.per_query["recall@1"]["qa"] == 0.0 and b.per_query["hit@3"]["qa"] == 1.0
    assert g.estimates["ndcg@10"].mean == pytest.approx((dcg / idcg + 1) / 2)
    assert rep.baseline == "bad" and rep.best.name == "good"
    comp = next(c for c in rep.comparisons if c.metric == "ndcg@10")
    assert comp.diff.mean == pytest.approx(g.estimates["ndcg@10"].mean - b.estimates["ndcg@10"].mean)
    assert len(rep.comparisons) == 3 and all(c.p_holm >= c.p_value for c in rep.comparisons)
    assert set(g.by_kind) == {"theme", "keywords"}
    assert g.by_kind["keywords"]["ndcg@10"]["mean"] == 1.0 and g.by_kind["keywords"]["ndcg@10"]["n"] == 1


def test_query_genre(tiny):
    gs, *_ = tiny
    assert query_genre(gs.query_by_id["qb"], gs) == "Horror"
    assert query_genre(gs.query_by_id["qa"], gs) == "(several genres)"


def test_report_files_agree_with_json(tmp_path, tiny):
    gs, good, bad, ids = tiny
    rep = evaluate_systems(gs, [bad, good], split="test", n_bootstrap=200, n_permutations=200)
    out = write_report(rep, tmp_path / "r")
    data = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    for name in ("good", "bad"):
        m = data["systems"][name]["metrics"]["ndcg@10"]
        assert m["mean"] == pytest.approx(rep.system(name).estimates["ndcg@10"].mean)
        cell = f"{m['mean']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
        row = next(line for line in md.splitlines() if line.startswith(f"| {name} |"))
        assert cell in row
    assert "**" in next(line for line in md.splitlines() if line.startswith("| good |"))
    assert data["best_system"] == "good" and data["comparisons"][0]["baseline"] == "bad"
    assert data["versions"]["torch"].startswith("2.13.0")
    for png in ("metrics.png", "ndcg_by_genre.png", "recall_at_k.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # TREC run: qid Q0 docid rank score tag, ranks from 1, in score order
    lines = (out / "runs" / "bad.trec").read_text().splitlines()
    first = lines[0].split()
    assert first[:4] == ["qa", "Q0", ids["Teeth in a Jar"], "1"] and first[5] == "bad"
    assert len(lines) == 5
    assert "Teeth in a Jar" in md  # worst-queries section names what was returned


def test_cli_evaluate_on_small_golden_set(tmp_path):
    r = CliRunner()
    g = tmp_path / "g"
    assert (
        r.invoke(app, ["queries", "generate", "--corpus", str(DATA / "golden12.txt"), "--out", str(g)]).exit_code == 0
    )
    assert r.invoke(app, ["queries", "split", str(g), "--test", "0.25", "--dev", "0.25"]).exit_code == 0
    res = r.invoke(
        app,
        [
            "evaluate",
            "--golden",
            str(g),
            "--split",
            "test",
            "-s",
            "bm25",
            "-s",
            "all-MiniLM-L6-v2",
            "-s",
            "hybrid",
            "--out",
            str(tmp_path / "rep"),
            "--bootstrap",
            "200",
            "--permutations",
            "200",
            "--no-plots",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert set(data["systems"]) == {"bm25", "all-MiniLM-L6-v2", "hybrid"}
    assert data["systems"]["hybrid"]["extra"]["tuned_on"] == "dev"
    assert data["golden_manifest"]["split"]["by"] == "prompt"
    assert data["systems"]["all-MiniLM-L6-v2"]["fingerprint"].startswith("sentence-transformers/all-MiniLM-L6-v2@")
    for s in data["systems"].values():
        assert (
            0
            <= s["metrics"]["ndcg@10"]["ci_low"]
            <= s["metrics"]["ndcg@10"]["mean"]
            <= s["metrics"]["ndcg@10"]["ci_high"]
            <= 1
        )
    res = r.invoke(app, ["evaluate", "--golden", str(g), "--split", "nope", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "no split 'nope'" in res.output


def test_judged_queries_file(tmp_path):
    from prompt_retriever.golden.goldenset import bundled_handwritten_path, load_judged_queries

    prompts = load_corpus()
    gs = load_judged_queries(bundled_handwritten_path(), prompts)
    assert len(gs.queries) >= 50 and all(q.kind == "handwritten" for q in gs.queries)
    assert all(any(g == 2 for g in gs.qrels[q.id].values()) for q in gs.queries)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "x", "relevant": {"No Such Title": 2}}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: relevant prompt 'No Such Title' is not in the corpus"):
        load_judged_queries(bad, prompts)


def test_trec_run_files_reproduce_the_report_under_trec_eval(tmp_path):
    """Scored by pytrec_eval (trec_eval's code), each system's run file gives the report's NDCG@10 exactly:
    scores are written in full, so rounding creates no ties that trec_eval would order by id."""
    import pytrec_eval

    from prompt_retriever.evaluation.systems import build_systems
    from prompt_retriever.golden import generate_heuristic, split_by_prompt
    from prompt_retriever.golden.heuristic import HeuristicConfig

    prompts = load_corpus(DATA / "golden12.txt")
    gs = split_by_prompt(generate_heuristic(prompts, HeuristicConfig(seed=5)), test=0.5, dev=0.25, seed=5)
    specs = ["all-MiniLM-L6-v2", "bm25", "hybrid", "hybrid-rrf"]
    ids = sorted(p.id for p in prompts)

    class CloseScores:  # scores that differ only past the sixth decimal, best first by ascending id
        name = "close"

        def search(self, queries, k):
            return {q: {pid: 0.5 + (len(ids) - i) * 1e-8 for i, pid in enumerate(ids[:k])} for q, _ in queries}

    systems = [*build_systems(specs, prompts, dev=gs.dev_judged()), CloseScores()]
    rep = evaluate_systems(gs, systems, split="test", n_bootstrap=50, n_permutations=50)
    write_report(rep, tmp_path / "rep", make_plots=False)
    qrels = {q.id: gs.qrels[q.id] for q in gs.split_queries("test")}
    for s in rep.systems:
        run: dict[str, dict[str, float]] = {}
        text = (tmp_path / "rep" / "runs" / f"{s.name}.trec").read_text()
        for line in text.splitlines():
            qid, _, pid, _, score, _ = line.split()
            run.setdefault(qid, {})[pid] = float(score)
        per = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
        trec = sum(per.get(q, {}).get("ndcg_cut_10", 0.0) for q in qrels) / len(qrels)
        assert trec == pytest.approx(s.estimates["ndcg@10"].mean, abs=1e-12), s.name


def test_the_comparison_summary_is_typed_and_its_json_form_reads_back_equal():
    from prompt_retriever.evaluation.stats import Comparison, Estimate
    from prompt_retriever.evaluation.summary import (
        GOLDEN_SPLIT,
        INDEPENDENT_SET,
        SPLIT_FAMILY,
        ComparisonSummary,
        FamilyComparison,
        headline_numbers,
        summary_markdown,
    )

    def block(key, source, name, base, cand):
        delta = Comparison("ndcg@10", "tuned", "base", Estimate(cand - base, -0.01, 0.2), 0.01, 0.03)
        ndcg = {"base": Estimate(base, base - 0.1, base + 0.1), "tuned": Estimate(cand, cand - 0.1, cand + 0.1)}
        return FamilyComparison(key, source, name, 40, ndcg, (delta,))

    summary = ComparisonSummary(
        "base",
        "tuned",
        "test",
        (
            block(GOLDEN_SPLIT, GOLDEN_SPLIT, None, 0.5, 0.6),
            block(INDEPENDENT_SET, INDEPENDENT_SET, "hand-written queries", 0.4, 0.3),
            block("natural", SPLIT_FAMILY, "natural-language queries", 0.2, 0.45),
        ),
    )
    data = json.loads(json.dumps(summary.to_json()))
    assert list(data) == ["baseline", "candidate", "split", "primary", "second", "more"]  # the file format
    assert "name" not in data["primary"] and data["second"]["name"] == "hand-written queries"
    assert ComparisonSummary.from_json(data) == summary
    assert summary.golden_split.key == "primary" and summary.independent_set.name == "hand-written queries"
    assert [b.key for b in summary.split_families] == ["natural"]
    assert summary.families[1].comparison("tuned", "base").p_holm == 0.03
    assert summary.families[1].comparison("base", "tuned") is None
    assert [name for name, _ in summary.families[1].ranked()] == ["base", "tuned"]

    lines = headline_numbers(summary)["lines"]
    assert lines[0] == "test split: NDCG@10 tuned 0.600, base 0.500"
    assert lines[1] == "  tuned vs base: +0.100 [-0.010, +0.200], Holm p=0.0300"
    assert lines[2].startswith("hand-written queries: NDCG@10 base 0.400") and lines[4].startswith("natural-language")
    md = summary_markdown(summary, reports="r/")
    assert "## Golden set, test split: 40 queries" in md and "## Second query set (hand-written queries)" in md
    assert "Full reports: `r/primary/report.md`, `r/second/report.md`, `r/natural/report.md`" in md

    without = ComparisonSummary("base", "tuned", "test", summary.families[:1])
    assert without.to_json()["second"] is None and "more" not in without.to_json()
    assert ComparisonSummary.from_json(without.to_json()) == without and without.independent_set is None
