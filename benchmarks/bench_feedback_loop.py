"""The feedback loop end to end, with simulated writers going through a real server's HTTP API.

    python benchmarks/bench_feedback_loop.py                     # all three parts (~60 min on 2 cores)
    python benchmarks/bench_feedback_loop.py --quick             # a smoke run (small sizes, own work folder)
    python benchmarks/bench_feedback_loop.py --parts recover     # one part (recover, experiment, loop), or
    python benchmarks/bench_feedback_loop.py --parts merge       # only gather the parts' result files

Writers are simulated (benchmarks/simwriters.py): each session types one query, reads the answer and
opens, copies and uses results following a position-based click model (examination 1/rank**eta, click
by the result's TRUE grade, 0.05/0.4/0.8 by default, copy/use after a click by grade, 5% of examined
results misjudged); the true judgments are known to the simulator only. Every session is seeded by
(seed, its number). Servers are real `prompt-retriever serve` processes on free 127.0.0.1 ports with
`--feedback DB` (SQLite) and the event rate lifted (every client is on 127.0.0.1).

1. recover: how well the implicit judgments (`feedback.judgments.store_judgments`) recover the true ones
   as sessions grow (`--sizes`, default 500, 2,000, 10,000). Queries: the fully judged ones over the
   bundled corpus (natural queries judged against the whole corpus, and the hand-written ones, relevant
   by title). A single fixed ranking shows every (query, prompt) pair at one rank only, from which the
   click model cannot tell examination from attractiveness (it then leaves theta at 1); so sessions go,
   in turn, to three servers of three systems over the same corpus and one store (`--recover-systems`,
   default dense base model, BM25, hybrid), as a log spanning several served runs would. At each size the
   store is copied (SQLite backup) once the servers have written their queues, and judged with and
   without position-bias correction. Measured over the (query, prompt) pairs the judgments grade:
   precision and recall of inferred grade 2 against true grade 2 (recall also against every true grade-2
   pair shown at least once), the same for "relevant" (grade >= 1), Kendall tau-b of the click model's
   score and of the inferred grade against the true grade, and theta against the true 1/rank**eta.
2. experiment: how many impressions an interleaving experiment needs to prefer the offline-better of two
   runs at p < 0.05, against an A/B test on click-through rate for the same decision. The two runs are
   real pipeline runs on the stranger's collection of part 3 (made here): `run-base` (template queries +
   the reference collection's natural queries, the default pipeline) and `run-noref` (`reference=False`,
   the pipeline as it was), whose NDCG@10 on the simulated queries (every natural query of the
   collection's prompts) is computed offline here. Served as `serve --runs R --candidate R/<better>
   --share S --mode interleave|ab --experiment-seed N`, sessions in rounds of `--round`; after each round
   `GET /api/experiments` gives the test's p and direction: recorded, per seed (`--seeds`), the first
   impressions (searches in the experiment) at which p < 0.05 for the right winner, and whether p < 0.05
   ever pointed to the wrong one (up to `--max-impressions`).
3. loop: what a pipeline run with the feedback family gains over the run without it, on held-out natural
   queries, after 2,000 and 10,000 sessions (`--loop-sizes`). Protocol: the stranger's collection of
   benchmarks/bench_collection.py (fold `--fold` of 3 leave-genres-out folds, seed 42: its prompts are
   the collection, the other genres the reference; the pipeline runs with `natural=False`, knowing none
   of the collection's natural queries). The collection's prompts are split by the seed into a writers
   half and a held-out half (`--writers-share`). Simulated writers search the baseline run's served
   system (`serve --run run-base --feedback DB`) with the natural queries of the writers' prompts (judged
   ones: their judgments restricted to the collection; others: their source prompt, grade 2); the store
   is copied at each size; `PipelineConfig(feedback=copy)`, otherwise the baseline's settings and seed,
   trains with the feedback family. Both runs' served systems (`PromptRetriever.from_run`, what `serve
   --run` answers) are evaluated on the natural queries of the held-out prompts (never typed by the
   simulated writers; relevance as above: judged queries against the whole collection, others their
   source prompt): paired per-query NDCG@10 differences, bootstrap CI and paired randomization test,
   Holm-corrected over the comparisons (one per size). The judged subset is reported beside it. Why this
   protocol: the writers' queries and the held-out queries share no source prompt, so a gain is
   generalisation, not memorised (query, prompt) pairs; the baseline is what the run would have been
   without feedback, same seed and settings; the held-out prompts may still be shown (and clicked) in
   writers' sessions, as in a real collection, but their own queries never are.
3b. future (`--parts future`, after loop: it reads loop's runs): the writers' own later requests. Each
   feedback run's feedback family is split by time as the pipeline splits it (the queries last typed
   after every query it trained on go to test; their texts are never trained on, though other requests
   for the same prompts are: that is what learning from one's writers means). Both runs are scored on
   that test split with the simulator's true judgments (not the click-made ones), paired as in 3, Holm
   over the sizes. The simulated writers draw their queries from one fixed set at random, so "later" is
   a random share of the texts here; real writers' later requests may differ more from their earlier ones.
3c. oracle (`--parts oracle`, after loop): the ceiling of part 3. The feedback family is every writers'
   query with its TRUE judgments (a judged file, `--feedback-judged`: no clicks, no noise, the base run's
   misses included), the pipeline otherwise the baseline's; scored on part 3's held-out queries against
   the baseline and part 3's feedback runs. If even this run cannot beat the baseline there, no click
   model can make part 3's runs do so: the headroom is not in the writers' queries.

3d. seed (`--parts seed`, after loop): the noise floor. The baseline pipeline again with another seed
   (`--other-seed`, 43) and no feedback, against the baseline, on part 3's held-out queries and on each
   feedback run's later requests (3b's test splits): how far one training run moves these numbers when
   nothing was learnt from the writers.

Results: `results/bench_feedback_loop_<part>.json` per part as it finishes, and
`results/bench_feedback_loop.json` (all parts present), each printed as one JSON line, with the CPU model
and SIMD flags. Runs, stores and server logs live under `--work` (default runs/bench_feedback_loop,
git-ignored), and finished runs are reused by a second call.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import simwriters as sw
from _common import RESULTS, cpu_info, emit

PARTS = ("recover", "experiment", "loop")
FEEDBACK_ARGS = ["--feedback-rate", "1000000"]  # every simulated client is on 127.0.0.1
NICE = 5


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- part 1


def score_judgments(result, truth: dict[tuple[str, str], int]) -> dict:
    from scipy.stats import kendalltau

    from prompt_retriever.feedback.clickmodel import query_key

    inferred: dict[tuple[str, str], tuple[int, float]] = {}
    for jq in result.queries:
        key = query_key(jq.query)
        for pid, ev in jq.evidence.items():
            if ev["grade"] is not None:
                inferred[(key, pid)] = (ev["grade"], ev.get("score", 0.0))  # 0: never shown, judged by chains
    pairs = [p for p in inferred if p in truth]
    true = [truth[p] for p in pairs]
    grade = [inferred[p][0] for p in pairs]
    score = [inferred[p][1] for p in pairs]

    def pr(level: int) -> dict:
        hits = sum(1 for t, g in zip(true, grade, strict=True) if t >= level and g >= level)
        called = sum(g >= level for g in grade)
        actual = sum(t >= level for t in true)
        shown = sum(g >= level for g in truth.values())
        return {
            "precision": round(hits / called, 4) if called else None,
            "recall_judged": round(hits / actual, 4) if actual else None,
            "recall_shown": round(hits / shown, 4) if shown else None,
            "inferred": called,
            "true_judged": actual,
            "true_shown": shown,
        }

    def tau(x) -> float | None:
        return round(float(kendalltau(x, true).statistic), 4) if len(set(true)) > 1 and len(set(x)) > 1 else None

    return {
        "queries_judged": len(result.queries),
        "pairs_judged": len(pairs),
        "pairs_shown": len(truth),
        "grade2": pr(2),
        "relevant": pr(1),
        "kendall_tau_score": tau(score),
        "kendall_tau_grade": tau(grade),
        "theta": [round(t, 3) for t in result.theta[:10]],
        "converged": result.converged,
    }


def score_store(path: Path, size: int, queries: list[sw.SimQuery], session_log: dict | None) -> dict:
    """The judgments of one store copy, with and without position-bias correction, against the truth."""
    from prompt_retriever.feedback import open_store
    from prompt_retriever.feedback.clickmodel import query_key
    from prompt_retriever.feedback.judgments import store_judgments

    truth_of = {q.text: q.truth for q in queries}
    store = open_store(path)
    try:
        truth, searches = {}, 0
        for q, _client in store.iter_queries():  # every pair shown, from the store's own record of answers
            searches += 1
            for pid in q.object_ids:
                truth[(query_key(q.user_query), pid)] = truth_of[" ".join(q.user_query.split())].get(pid, 0)
        actions = Counter(e.action_name for e in store.iter_events())
        row = {"sessions": size, "log": session_log or {"searches": searches, "events": dict(sorted(actions.items()))}}
        for corrected in (True, False):
            t0 = time.perf_counter()
            res = store_judgments(store, correct_bias=corrected)
            scored = score_judgments(res, truth) | {"seconds": round(time.perf_counter() - t0, 2)}
            row["corrected" if corrected else "uncorrected"] = scored
    finally:
        store.close()
    log(f"recover {size}: {json.dumps(row)}")
    return row


def part_recover(args, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    queries = sw.judged_queries(sw.bundled_prompts())
    model = sw.ClickModel(eta=args.eta, noise=args.noise)
    systems = [s.split() for s in args.recover_systems.split(";")]
    db = work / "recover.db"
    if not args.rescore:
        for f in work.glob("recover.db*"):
            f.unlink()
    sizes, rows, slog = sorted(args.sizes), [], sw.SessionLog()
    servers = [  # entered only when sessions are to run
        sw.server([*s, "--feedback", str(db), *FEEDBACK_ARGS], work / f"recover-server-{i}.log", nice=NICE)
        for i, s in enumerate(systems)
    ]
    from contextlib import ExitStack

    snapshots = {n: work / f"recover-{n}.db" for n in sizes}
    if args.rescore and all(p.exists() for p in snapshots.values()):  # judge the stores kept, no new sessions
        log("recover: --rescore, judging the stores kept")
        for size in sizes:
            rows.append(score_store(snapshots[size], size, queries, None))
    else:
        with ExitStack() as stack:
            bases = [stack.enter_context(s) for s in servers]
            done = 0
            for size in sizes:
                log(f"recover: sessions {done}..{size}")
                sw.run_sessions(bases, queries, done, size, seed=args.seed, model=model, log=slog)
                done = size
                for b in bases:
                    sw.wait_written(b)
                rows.append(score_store(sw.snapshot(db, snapshots[size]), size, queries, slog.summary()))
    return {
        "queries": len(queries),
        "query_sources": {s: sum(q.source == s for q in queries) for s in {q.source for q in queries}},
        "corpus_prompts": len(sw.bundled_prompts()),
        "servers": [" ".join(["serve", *s]) for s in systems],
        "click_model": model.to_dict(),
        "true_examination": [round(model.examine(r), 3) for r in range(1, 11)],
        "sizes": rows,
    }


# ---------------------------------------------------------------------------------------------- part 3 files


def loop_files(work: Path, seed: int, folds: int, fold: int, writers_share: float) -> dict:
    """The stranger's collection (bench_collection's fold), its reference files, and the writers/held-out
    split of its prompts (split.json)."""
    from bench_collection import fold_genres, write_fold

    from prompt_retriever.fileio import atomic_write_text

    if (work / "split.json").exists():  # written by an earlier call (the same seed and fold): reused
        return json.loads((work / "split.json").read_text())["files"]
    prompts = sw.bundled_prompts()
    natural = sw.natural_rows()
    held = set(fold_genres(sorted({p.genre for p in prompts}), folds, seed)[fold])
    files = write_fold(work, prompts, natural, held)
    mine = sorted(p.id for p in prompts if p.genre in held)
    random.Random(seed).shuffle(mine)
    cut = round(len(mine) * writers_share)
    files |= {"genres": sorted(held), "writers_prompts": cut, "heldout_prompts": len(mine) - cut}
    split = {"writers": sorted(mine[:cut]), "heldout": sorted(mine[cut:]), "files": files}
    atomic_write_text(work / "split.json", json.dumps(split, indent=1))
    return files


def loop_pipeline(
    work: Path,
    out: Path,
    seed: int,
    *,
    feedback: Path | None = None,
    judged: Path | None = None,
    reference: bool = True,
    max_rows=None,
) -> float:
    """One pipeline run on the collection (the baseline's settings; `feedback`: with the feedback family
    judged from that store; `judged`: from that judged file). A finished run (system.json) is reused."""
    from rich.console import Console

    from prompt_retriever.pipeline import PipelineConfig, run_pipeline
    from prompt_retriever.training import TrainConfig

    if (out / "system.json").exists():
        log(f"pipeline: {out} exists, reused")
        return 0.0
    extra: dict = {"feedback": str(feedback)} if feedback is not None else {}
    if judged is not None:
        extra["feedback_judged"] = [judged]
    train = TrainConfig() if max_rows is None else TrainConfig(max_rows=max_rows)
    cfg = PipelineConfig(
        corpus=[work / "collection.txt"],
        out=out,
        seed=seed,
        natural=False,
        reference=reference,
        reference_corpus=[work / "reference.txt"],
        reference_queries=work / "reference.jsonl",
        train=train,
        plots=False,
        **extra,
    )
    with (work / "pipeline.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one pipeline at a time (parts started side by side wait here)
        if (out / "system.json").exists():
            return 0.0
        log(f"pipeline: {out} ...")
        t0 = time.perf_counter()
        run_pipeline(cfg, Console(stderr=True))
        return time.perf_counter() - t0


def collection_ids(work: Path) -> tuple[set[str], set[str]]:
    split = json.loads((work / "split.json").read_text())
    return set(split["writers"]), set(split["heldout"])


def served_rankings(run: Path, queries: list[sw.SimQuery], k: int = 10) -> list[tuple[str, ...]]:
    from prompt_retriever.search.retriever import PromptRetriever, SearchRequest

    served = PromptRetriever.from_run(run)
    hits = served.search_requests([SearchRequest(q.text, k=k) for q in queries])
    return [tuple(h.prompt.id for h in hs) for hs in hits]


def compare_runs(scores: dict[str, list[float]], base: str, others: list[str]) -> list[dict]:
    from prompt_retriever.evaluation.stats import bootstrap_ci, holm, paired_randomization_test

    pvalues = [paired_randomization_test(scores[o], scores[base]) for o in others]
    rows = []
    for o, p, p_holm in zip(others, pvalues, holm(pvalues), strict=True):
        diff = bootstrap_ci([x - y for x, y in zip(scores[o], scores[base], strict=True)])
        rows.append(
            {"run": o, "vs": base, "diff": round(diff.mean, 4), "ci": [round(diff.lo, 4), round(diff.hi, 4)],
             "p": round(p, 4), "p_holm": round(p_holm, 4)}
        )  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------- part 3


def spawn_feedback_pipeline(args, n: int) -> subprocess.Popen:
    """This script, in the background, running the feedback pipeline of size `n` (it waits for the lock)."""
    cmd = [sys.executable, __file__, *args.argv, "--parts", f"feedback-pipeline-{n}"]
    log_file = args.work_dir / f"pipeline-feedback-{n}.log"
    return subprocess.Popen(["nice", "-n", "10", *cmd], stdout=log_file.open("w"), stderr=subprocess.STDOUT)


def chain_check(result, truth: dict[tuple[str, str], int]) -> dict:
    """The pairs query chains made grade 2, against the simulator's true grades."""
    from prompt_retriever.feedback.clickmodel import query_key

    true = Counter()
    for jq in result.queries:
        for pid, ev in jq.evidence.items():
            if ev.get("chain_grade") == 2 and ev["grade"] == 2 and ev["click_grade"] != 2:
                true[truth.get((query_key(jq.query), pid), 0)] += 1
    return {"raised": result.pairs_by_chains, "raised_by_true_grade": {str(g): true[g] for g in sorted(true)}}


def part_loop(args, work: Path) -> dict:
    from prompt_retriever.feedback import open_store
    from prompt_retriever.feedback.clickmodel import query_key
    from prompt_retriever.feedback.judgments import store_judgments

    files = loop_files(work, 42, 3, args.fold, args.writers_share)
    with_ref = args.loop_baseline == "base"  # noref: the baseline and its feedback runs without the reference
    base_name = "run-base" if with_ref else "run-noref"
    seconds = {
        base_name: round(
            loop_pipeline(work, work / base_name, args.seed, reference=with_ref, max_rows=args.max_rows), 1
        )
    }
    writers, heldout = collection_ids(work)
    corpus = writers | heldout
    typed = sw.natural_queries_of(writers, corpus)
    model = sw.ClickModel(eta=args.eta, noise=args.noise, reformulate=args.loop_reformulate, switch=args.loop_switch)
    sizes = sorted(args.loop_sizes)
    stores = {n: work / f"loop-{n}.db" for n in sizes}
    sessions_file = work / "loop-sessions.json"
    if all(p.exists() for p in stores.values()) and sessions_file.exists():
        sessions = json.loads(sessions_file.read_text())
        log("loop: stores exist, reused")
    else:
        db = work / "loop.db"
        for f in work.glob("loop.db*"):
            f.unlink()
        slog, sessions, done, children = sw.SessionLog(), {}, 0, []
        serve = ["--run", str(work / base_name), "--feedback", str(db), *FEEDBACK_ARGS, *explore_args(args)]
        with sw.server(serve, work / "loop-server.log", nice=NICE) as base:
            for n in sizes:
                log(f"loop: sessions {done}..{n}")
                sw.run_sessions(base, typed, done, n, seed=args.seed, model=model, log=slog)
                done = n
                sw.wait_written(base)
                sw.snapshot(db, stores[n])
                children.append(spawn_feedback_pipeline(args, n))  # trains while the sessions go on
                sessions[str(n)] = slog.summary() | {
                    "distinct_queries_typed": len({t for t, _, _ in slog.shown.values()})
                }
        sessions_file.write_text(json.dumps(sessions))
        for child in children:
            child.wait()
    runs = {base_name: work / base_name}
    for n in sizes:
        out = feedback_run(work, n, with_ref)
        seconds[out.name] = round(
            loop_pipeline(work, out, args.seed, feedback=stores[n], reference=with_ref, max_rows=args.max_rows), 1
        )
        runs[out.name] = out
    judged = {}
    truth = {(query_key(q.text), pid): g for q in typed for pid, g in q.truth.items()}
    for n in sizes:
        store = open_store(stores[n])
        try:
            result = store_judgments(store)
        finally:
            store.close()
        checks = {"vs_truth": score_judgments(result, truth), "chains": chain_check(result, truth)}
        judged[str(n)] = result.to_json() | checks
    held_queries = sw.natural_queries_of(heldout, corpus)
    scores = {
        name: [sw.ndcg10(ids, q.truth) for ids, q in zip(served_rankings(run, held_queries), held_queries, strict=True)]
        for name, run in runs.items()
    }
    judged_idx = [i for i, q in enumerate(held_queries) if q.source == "natural_judged"]
    scores_judged = {name: [s[i] for i in judged_idx] for name, s in scores.items()}
    others = [name for name in runs if name != base_name]
    systems = {name: json.loads((run / "system.json").read_text()) for name, run in runs.items()}
    return {
        "protocol": f"bench_collection fold {args.fold} of 3 (seed 42); collection prompts split "
        f"{args.writers_share:g} writers / held-out by seed {args.seed}; writers search the served system of "
        f"{'(explored: ' + ' '.join(explore_args(args)) + ') ' if args.loop_explore else ''}"
        f"{f'(writers reformulate: {args.loop_reformulate:g}) ' if args.loop_reformulate else ''}"
        f"{f'(writers switch needs: {args.loop_switch:g}) ' if args.loop_switch else ''}"
        f"{'run-base' if sessions_file.exists() else base_name} (the stores are reused when they exist); baseline "
        f"{base_name}; pipelines seed {args.seed}",
        "files": files,
        "writers_queries": len(typed),
        "heldout_queries": len(held_queries),
        "heldout_judged_queries": len(judged_idx),
        "sessions": sessions,
        "judgments": judged,
        "pipeline_seconds": seconds,
        "max_rows": args.max_rows,
        "served": {
            name: {"label": s["label"], "dev": s.get("dev"), "test": s.get("test")} for name, s in systems.items()
        },
        "heldout_ndcg10": {name: round(sum(s) / len(s), 4) for name, s in scores.items()},
        "heldout_judged_ndcg10": {name: round(sum(s) / len(s), 4) for name, s in scores_judged.items()},
        "comparisons": compare_runs(scores, base_name, others),
        "comparisons_judged_subset": compare_runs(scores_judged, base_name, others),
        "click_model": model.to_dict(),
    }


def explore_args(args) -> list[str]:
    """The writers' server's exploration (`--loop-explore`): adjacent swaps in a share of searches, seeded."""
    if not args.loop_explore:
        return []
    depth = ["--explore-depth", str(args.loop_explore_depth)] if args.loop_explore_depth else []
    return ["--explore", format(args.loop_explore, "g"), "--explore-seed", str(args.seed), *depth]


def feedback_run(work: Path, n: int, with_ref: bool) -> Path:
    """Part 3's feedback run after `n` sessions (of the default baseline, or of the noref one)."""
    return work / (f"run-feedback-{n}" if with_ref else f"run-noref-feedback-{n}")


def feedback_family(run: Path, kinds: tuple[str, ...] = ("feedback",)) -> tuple[list[str], list[str]]:
    """(the texts of every query of the feedback family in a run's golden set, those of its test split: the
    writers' newest requests, never trained on); `kinds`: owner_judged for a judged file's family."""
    from prompt_retriever.golden import GoldenSet

    gs = GoldenSet.load(run / "golden")
    test = set(gs.splits.get("test", []))
    family = [q for q in gs.queries if q.kind in kinds]
    return [q.text for q in family], [q.text for q in family if q.id in test]


def family_selection(base: dict[str, float], families: dict[int, list[str]]) -> dict:
    """Which of the writers' queries the feedback family holds, against how the baseline (the run they
    searched) answers them (`base`: its NDCG@10 by casefolded query text): on all of them, on those in the
    family and on the others, and how many it missed entirely (no relevant prompt in its top 10)."""

    def mean(xs: list[float]) -> float | None:
        return round(sum(xs) / len(xs), 4) if xs else None

    scores = list(base.values())
    out = {"writers_queries": len(scores), "baseline_ndcg10_all": mean(scores),
           "baseline_missed_all": sum(s == 0 for s in scores)}  # fmt: skip
    for n, texts in families.items():
        family = {t.casefold() for t in texts}
        inside = [s for t, s in base.items() if t in family]
        outside = [s for t, s in base.items() if t not in family]
        out[str(n)] = {"in_family": len(inside), "baseline_ndcg10_in_family": mean(inside),
                       "baseline_ndcg10_not_in_family": mean(outside),
                       "baseline_missed_in_family": sum(s == 0 for s in inside)}  # fmt: skip
    return out


def found_missed(scores: dict[str, list[float]], base: str, run: str) -> dict:
    """The comparison on the queries the baseline found (NDCG@10 > 0) and on those it missed (no p-value
    correction: a breakdown, not a test of its own)."""
    out = {}
    for name, keep in (("found", lambda x: x > 0), ("missed", lambda x: x == 0)):
        idx = [i for i, x in enumerate(scores[base]) if keep(x)]
        pair = {r: [scores[r][i] for i in idx] for r in (base, run)}
        means = {r: round(sum(v) / len(v), 4) if v else None for r, v in pair.items()}
        out[name] = {"queries": len(idx), "ndcg10": means} | (compare_runs(pair, base, [run])[0] if idx else {})
    return out


def part_future(args, work: Path) -> dict:
    """Part 3b, the writers' later requests: for each feedback run of part 3, its feedback family's test
    split (the queries last typed after every query it trained on; their texts never trained on), scored
    with the simulator's true judgments, the baseline against that run; Holm over the session counts.
    Reads the runs part 3 made (run it first)."""
    from prompt_retriever.evaluation.stats import bootstrap_ci, holm, paired_randomization_test

    def ndcgs(run: Path, queries: list[sw.SimQuery]) -> list[float]:
        return [sw.ndcg10(ids, q.truth) for ids, q in zip(served_rankings(run, queries), queries, strict=True)]

    writers, heldout = collection_ids(work)
    typed = {q.text.casefold(): q for q in sw.natural_queries_of(writers, writers | heldout)}
    with_ref = args.loop_baseline == "base"
    base_name = "run-base" if with_ref else "run-noref"
    base = dict(zip(typed, ndcgs(work / base_name, list(typed.values())), strict=True))  # searched once
    rows, pvalues, families = [], [], {}
    for n in args.loop_sizes:
        run = feedback_run(work, n, with_ref)
        families[n], test = feedback_family(run)
        queries = [typed[t.casefold()] for t in test]
        scores = {base_name: [base[q.text.casefold()] for q in queries], run.name: ndcgs(run, queries)}
        diff = bootstrap_ci([x - y for x, y in zip(scores[run.name], scores[base_name], strict=True)])
        pvalues.append(paired_randomization_test(scores[run.name], scores[base_name]))
        rows.append(
            {"sessions": n, "run": run.name, "vs": base_name, "queries": len(queries),
             "prompts": len({q.prompt_id for q in queries}),
             "ndcg10": {r: round(sum(v) / len(v), 4) for r, v in scores.items()},
             "diff": round(diff.mean, 4), "ci": [round(diff.lo, 4), round(diff.hi, 4)],
             "by_baseline": found_missed(scores, base_name, run.name)}
        )  # fmt: skip
    for row, p, p_holm in zip(rows, pvalues, holm(pvalues), strict=True):
        row |= {"p": round(p, 4), "p_holm": round(p_holm, 4)}
    return {
        "selection": family_selection(base, families),
        "protocol": "each feedback run's feedback-family test split (time split: the queries last typed after "
        "every query it trained on, texts never trained on), scored with the simulator's true judgments "
        "(each natural query's source prompt, 2; or its full judgments); baseline = the run the writers searched",
        "comparisons": rows,
    }


def part_seed(args, work: Path) -> dict:
    """Part 3d, the noise floor: the baseline pipeline again with another seed (`--other-seed`) and no
    feedback, against the baseline, on part 3's held-out queries and on each feedback run's later requests
    (part 3b's test splits): how far one training run moves those numbers with no feedback at all. Reads
    the runs part 3 made."""
    writers, heldout = collection_ids(work)
    corpus = writers | heldout
    with_ref = args.loop_baseline == "base"
    base_name = "run-base" if with_ref else "run-noref"
    other = work / f"{base_name}-seed{args.other_seed}"
    seconds = loop_pipeline(work, other, args.other_seed, reference=with_ref, max_rows=args.max_rows)
    typed = {q.text.casefold(): q for q in sw.natural_queries_of(writers, corpus)}
    sets = {"heldout": sw.natural_queries_of(heldout, corpus)}
    for n in args.loop_sizes:
        sets[f"later_{n}"] = [typed[t.casefold()] for t in feedback_family(feedback_run(work, n, with_ref))[1]]
    rows = {}
    for name, queries in sets.items():
        scores = {
            run: [sw.ndcg10(ids, q.truth) for ids, q in zip(served_rankings(work / run, queries), queries, strict=True)]
            for run in (base_name, other.name)
        }
        rows[name] = {"queries": len(queries)} | compare_runs(scores, base_name, [other.name])[0]
    return {
        "protocol": f"{other.name}: the baseline pipeline with seed {args.other_seed} instead of {args.seed}, no "
        "feedback; scored like parts 3 and 3b (each comparison on its own, no correction across them)",
        "pipeline_seconds": round(seconds, 1),
        "comparisons": rows,
    }


def oracle_judged(path: Path, queries: list[sw.SimQuery], seed: int) -> Path:
    """Every writers' query with its TRUE judgments as a judged-feedback file (`source` owner: as if the
    owner had judged them all), last searched in a seeded random order one minute apart (the time split)."""
    from datetime import UTC, datetime, timedelta

    from prompt_retriever.fileio import atomic_write_jsonl

    order = list(range(len(queries)))
    random.Random(seed).shuffle(order)
    start, rows, seen = datetime(2026, 12, 1, tzinfo=UTC), [], set()
    for minute, i in enumerate(order):
        q = queries[i]
        if q.truth and q.text.casefold() not in seen:
            seen.add(q.text.casefold())
            when = (start + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
            rows.append({"query": q.text, "relevant": q.truth, "timestamp": when, "source": "owner"})
    return atomic_write_jsonl(path, rows)


def part_oracle(args, work: Path) -> dict:
    """Part 3c, the ceiling of part 3: the feedback family made of every writers' query with its TRUE
    judgments (no clicks, no noise, every query judged, misses included), the pipeline otherwise the
    baseline's; its served system against the baseline's and part 3's feedback runs on the same held-out
    natural queries, Holm over the comparisons. Reads the runs part 3 made (run it first)."""
    writers, heldout = collection_ids(work)
    corpus = writers | heldout
    judged = oracle_judged(work / "oracle-judged.jsonl", sw.natural_queries_of(writers, corpus), args.seed)
    seconds = loop_pipeline(work, work / "run-oracle", args.seed, judged=judged, max_rows=args.max_rows)
    runs = {"run-base": work / "run-base"}
    runs |= {feedback_run(work, n, True).name: feedback_run(work, n, True) for n in args.loop_sizes}
    runs["run-oracle"] = work / "run-oracle"
    held = sw.natural_queries_of(heldout, corpus)
    scores = {
        name: [sw.ndcg10(ids, q.truth) for ids, q in zip(served_rankings(run, held), held, strict=True)]
        for name, run in runs.items()
    }
    system = json.loads((work / "run-oracle" / "system.json").read_text())
    # the oracle's own later requests: its feedback family's test split (never trained on), as part 3b
    typed = {q.text.casefold(): q for q in sw.natural_queries_of(writers, corpus)}
    later = [typed[t.casefold()] for t in feedback_family(work / "run-oracle", kinds=("owner_judged",))[1]]

    def ndcgs(run: Path) -> list[float]:
        return [sw.ndcg10(ids, q.truth) for ids, q in zip(served_rankings(run, later), later, strict=True)]

    base_later, oracle_later = ndcgs(runs["run-base"]), ndcgs(runs["run-oracle"])
    found = [i for i, x in enumerate(base_later) if x > 0]
    missed = [i for i, x in enumerate(base_later) if x == 0]
    later_rows = {}
    for name, idx in (("all", range(len(later))), ("baseline_found", found), ("baseline_missed", missed)):
        pair = {"run-base": [base_later[i] for i in idx], "run-oracle": [oracle_later[i] for i in idx]}
        later_rows[name] = {"queries": len(pair["run-base"])} | (
            compare_runs(pair, "run-base", ["run-oracle"])[0] if pair["run-base"] else {}
        )
    return {
        "protocol": "part 3's collection, split and held-out queries; run-oracle: the pipeline with "
        "--feedback-judged of every writers' query and its true judgments (oracle-judged.jsonl), otherwise "
        "run-base's settings and seed",
        "judged_queries": sum(1 for _ in judged.open()),
        "pipeline_seconds": round(seconds, 1),
        "oracle_served": {"label": system["label"], "dev": system.get("dev"), "test": system.get("test")},
        "heldout_queries": len(held),
        "heldout_ndcg10": {name: round(sum(s) / len(s), 4) for name, s in scores.items()},
        "comparisons": compare_runs(scores, "run-base", [n for n in runs if n != "run-base"]),
        "later_requests": later_rows,
    }


# ---------------------------------------------------------------------------------------------- part 2


def experiment_runs(args, work: Path) -> tuple[Path, dict]:
    """A runs folder with the collection's two runs (base: with the reference, noref: without), and their
    offline NDCG@10 on the simulated queries (every natural query of the collection's prompts)."""
    loop_files(work, 42, 3, args.fold, args.writers_share)
    loop_pipeline(work, work / "run-base", args.seed, max_rows=args.max_rows)
    loop_pipeline(work, work / "run-noref", args.seed, reference=False, max_rows=args.max_rows)
    writers, heldout = collection_ids(work)
    queries = sw.natural_queries_of(writers | heldout, writers | heldout)
    offline = {}
    for name in ("run-base", "run-noref"):
        scores = [
            sw.ndcg10(ids, q.truth) for ids, q in zip(served_rankings(work / name, queries), queries, strict=True)
        ]
        offline[name] = round(sum(scores) / len(scores), 4)
    runs_dir = work / "experiment-runs"
    for name in ("run-base", "run-noref"):
        if not (runs_dir / name).exists():
            runs_dir.mkdir(parents=True, exist_ok=True)
            shutil.copytree(work / name, runs_dir / name, symlinks=True)
    worse = min(offline, key=offline.get)
    cmd = [sys.executable, "-m", "prompt_retriever.cli", "promote", str(runs_dir / worse)]
    done = subprocess.run(cmd, capture_output=True, text=True)  # the worse run is served, the better the candidate
    if done.returncode != 0 and "already the current run" not in done.stderr + done.stdout:
        raise RuntimeError(f"promote {runs_dir / worse} failed: {done.stderr.strip()}")
    return runs_dir, {"queries": len(queries), "offline_ndcg10": offline}


def experiment_state(base: str) -> dict:
    return httpx.get(base + "/api/experiments", timeout=60).json()


def part_experiment(args, work: Path) -> dict:
    from prompt_retriever.fileio import atomic_write_json

    runs_dir, offline = experiment_runs(args, work)
    better = max(offline["offline_ndcg10"], key=offline["offline_ndcg10"].get)
    worse = "run-noref" if better == "run-base" else "run-base"
    writers, heldout = collection_ids(work)
    queries = sw.natural_queries_of(writers | heldout, writers | heldout)
    model = sw.ClickModel(eta=args.eta, noise=args.noise)
    trials = []
    for mode in ("interleave", "ab"):  # every interleaving trial first: the cheaper answer comes first
        for seed in args.seeds:
            trials.append(run_trial(args, work, runs_dir, current=worse, candidate=better, mode=mode, seed=seed,
                                    queries=queries, model=model))  # fmt: skip
            log(f"experiment {mode} seed {seed}: {json.dumps(trials[-1])[:400]}")
            partial = RESULTS / f"bench_feedback_loop_experiment_partial{'_quick' if args.quick else ''}.json"
            atomic_write_json(partial, {"offline": offline, "better": better, "trials": trials})
    summary = {}
    for mode in ("interleave", "ab"):
        rows = [t for t in trials if t["mode"] == mode]
        reached = [t["first_significant_right"] for t in rows if t["first_significant_right"] is not None]
        summary[mode] = {
            "seeds": len(rows),
            "reached": len(reached),
            "impressions_to_p05": sorted(reached),
            "median_impressions": sorted(reached)[len(reached) // 2] if reached else None,
            "ever_wrong": sum(t["first_significant_wrong"] is not None for t in rows),
            "final": [
                {
                    "seed": t["seed"],
                    "impressions": t["curve"][-1]["impressions"],
                    "p": t["curve"][-1]["p"],
                    "direction": t["curve"][-1]["direction"],
                    "advice": final_advice(t["final"]),
                }
                for t in rows
            ],  # fmt: skip
        }
    return {
        "current": worse,
        "candidate": better,
        **offline,
        "simulated_queries": len(queries),
        "share": {"interleave": args.share, "ab": args.ab_share},
        "round": {"interleave": args.round, "ab": args.ab_round},
        "max_impressions": {"interleave": args.max_impressions, "ab": args.ab_max_impressions},
        "click_model": model.to_dict(),
        "summary": summary,
        "trials": trials,
    }


def final_advice(state: dict) -> dict | None:
    return state["experiments"][-1].get("recommendation") if state.get("experiments") else None


def read_test(state: dict, mode: str) -> tuple[int, float | None, str | None]:
    """(searches in the experiment, p, direction 'candidate'|'current'|None) from /api/experiments."""
    if not state.get("experiments"):
        return 0, None, None
    exp = state["experiments"][-1]
    p = exp.get("p_value")
    if mode == "interleave":
        credit = exp["interleave"]
        wins, losses = credit["wins"], credit["losses"]
        direction = "candidate" if wins > losses else "current" if losses > wins else None
        return credit["searches"], p, direction
    arms = {a["arm"]: a for a in exp["arms"]}
    cand, cur = arms["candidate"], arms["current"]
    c1, c0 = cand.get("ctr") or 0.0, cur.get("ctr") or 0.0
    direction = "candidate" if c1 > c0 else "current" if c0 > c1 else None
    return cand["searches"] + cur["searches"], p, direction


def run_trial(args, work, runs_dir, *, current, candidate, mode, seed, queries, model) -> dict:
    db = work / f"experiment-{mode}-{seed}.db"
    for f in work.glob(db.name + "*"):
        f.unlink()
    # the runs folder's current run is `current` (promote); the candidate is served beside it
    share = args.share if mode == "interleave" else args.ab_share
    serve = ["--runs", str(runs_dir), "--candidate", str(runs_dir / candidate), "--share", f"{share:g}",
             "--mode", mode, "--experiment-seed", str(seed), "--feedback", str(db), *FEEDBACK_ARGS]  # fmt: skip
    curve, right, wrong, slog = [], None, None, sw.SessionLog()
    with sw.server(serve, work / f"experiment-{mode}-{seed}.log", nice=NICE) as base:
        done = 0
        impressions = 0
        step = args.round if mode == "interleave" else args.ab_round
        limit = args.max_impressions if mode == "interleave" else args.ab_max_impressions
        while impressions < limit:
            # one session at a time: the server draws the arm and the coin flips in the order searches
            # arrive, so a trial is deterministic only when they arrive in session order
            sw.run_sessions(base, queries, done, done + step, seed=1000 + seed, model=model, log=slog, concurrency=1)
            done += step
            sw.wait_written(base)
            impressions, p, direction = read_test(experiment_state(base), mode)
            curve.append({"sessions": done, "impressions": impressions, "p": p, "direction": direction})
            if p is not None and p < 0.05:
                if direction == "candidate" and right is None:
                    right = impressions
                elif direction == "current" and wrong is None:
                    wrong = impressions
            if right is not None and done >= args.min_sessions:
                break
        final = experiment_state(base)
    return {
        "mode": mode,
        "seed": seed,
        "first_significant_right": right,
        "first_significant_wrong": wrong,
        "sessions": done,
        "curve": curve,
        "final": final,
        "log": slog.summary(),
    }


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--parts",
        default="recover,experiment,loop",
        help="comma-separated: recover, experiment, loop, future (3b: reads loop's runs), oracle (3c: the same), "
        "seed (3d: the same)",
    )
    ap.add_argument("--quick", action="store_true", help="small sizes and a small training budget (smoke run)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--work", type=Path, default=None, help="default runs/bench_feedback_loop[-quick]")
    ap.add_argument("--eta", type=float, default=1.0, help="examination 1/rank**eta")
    ap.add_argument("--noise", type=float, default=0.05, help="share of examined results misjudged")
    ap.add_argument("--sizes", default="500,2000,10000", help="recover: sessions at which to judge")
    ap.add_argument("--rescore", action="store_true", help="recover: judge the stores of an earlier call again")
    ap.add_argument("--recover-systems", default=";--system bm25;--system hybrid", help="';'-separated serve args")
    ap.add_argument("--seeds", default="1,2,3", help="experiment: one interleaving and one A/B trial per seed")
    ap.add_argument("--round", type=int, default=20, help="experiment: sessions between two looks (interleave)")
    ap.add_argument("--max-impressions", type=int, default=2000, help="experiment: stop an interleaving trial here")
    ap.add_argument("--ab-max-impressions", type=int, default=1500, help="experiment: stop an A/B trial here")
    ap.add_argument("--ab-round", type=int, default=100, help="experiment: sessions between two looks (A/B)")
    ap.add_argument("--min-sessions", type=int, default=0, help="experiment: go on this long after p < 0.05")
    ap.add_argument("--share", type=float, default=1.0, help="experiment: share of searches interleaved")
    ap.add_argument("--ab-share", type=float, default=0.5, help="experiment: share of searches to the A/B candidate")
    ap.add_argument("--loop-sizes", default="2000,10000", help="loop: sessions before each feedback pipeline")
    ap.add_argument("--fold", type=int, default=0, help="loop/experiment: bench_collection's fold (of 3)")
    ap.add_argument("--writers-share", type=float, default=0.5)
    ap.add_argument(
        "--loop-baseline",
        choices=("base", "noref"),
        default="base",
        help="loop: the baseline pipeline, the default (base) or without the reference collection (noref; "
        "its feedback runs too); results go to bench_feedback_loop_loop_noref.json",
    )
    ap.add_argument("--max-rows", type=int, default=None, help="training rows of every pipeline (default its own)")
    ap.add_argument(
        "--loop-explore",
        type=float,
        default=0.0,
        help="loop: the writers' server explores this share of searches (serve --explore: one adjacent pair "
        "swapped), so the click model can tell examination from attractiveness; results get _explore (use "
        "another --work: the stores differ)",
    )
    ap.add_argument(
        "--loop-explore-depth",
        type=int,
        default=0,
        help="with --loop-explore: an explored search shows one of the DEPTH results below the page instead "
        "of a swap (serve --explore-depth), so prompts the baseline ranks below 10 can be clicked",
    )
    ap.add_argument(
        "--loop-reformulate",
        type=float,
        default=0.0,
        help="loop: a writer who copied or used nothing types another request for the same need with this "
        "probability (up to 3 searches a session), so the judgments get query chains; results get "
        "_reformulate (use another --work: the stores differ)",
    )
    ap.add_argument(
        "--loop-switch",
        type=float,
        default=0.0,
        help="loop: a writer done with one need (found or given up) searches for another, unrelated one in the "
        "same session with this probability (what makes query chains wrong); results get _switch",
    )
    ap.add_argument("--other-seed", type=int, default=43, help="seed: the baseline's other training seed")
    args = ap.parse_args()
    argv = sys.argv[1:]
    if "--parts" in argv:  # what a child started by this run repeats: every option but --parts
        i = argv.index("--parts")
        argv = argv[:i] + argv[i + 2 :]
    args.argv = [a for a in argv if not a.startswith("--parts=")]
    if args.quick:
        args.sizes = "100,300" if args.sizes == "500,2000,10000" else args.sizes
        args.seeds = "1" if args.seeds == "1,2,3" else args.seeds
        args.max_impressions = min(args.max_impressions, 300)
        args.ab_max_impressions = min(args.ab_max_impressions, 300)
        args.loop_sizes = "300" if args.loop_sizes == "2000,10000" else args.loop_sizes
        args.max_rows = args.max_rows or 200
    args.sizes = [int(x) for x in args.sizes.split(",")]
    args.seeds = [int(x) for x in args.seeds.split(",")]
    args.loop_sizes = [int(x) for x in args.loop_sizes.split(",")]
    work = args.work or Path("runs/bench_feedback_loop" + ("-quick" if args.quick else ""))
    work.mkdir(parents=True, exist_ok=True)
    args.work_dir = work
    suffix = "_quick" if args.quick else ""
    parts = [p for p in args.parts.split(",") if p]
    funcs = {
        "recover": part_recover,
        "experiment": part_experiment,
        "loop": part_loop,
        "future": part_future,
        "oracle": part_oracle,
        "seed": part_seed,
    }
    for part in parts:
        if part == "merge":
            continue
        if part == "runs":  # only the two pipeline runs of the collection (experiment and loop use them)
            experiment_runs(args, work)
            continue
        if part.startswith("feedback-pipeline-"):  # one feedback run of part 3 (its store must exist)
            n = int(part.removeprefix("feedback-pipeline-"))
            loop_pipeline(
                work, work / f"run-feedback-{n}", args.seed, feedback=work / f"loop-{n}.db", max_rows=args.max_rows
            )
            continue
        if part not in funcs:
            raise SystemExit(f"unknown part {part!r}: one of {', '.join(funcs)}, merge")
        t0 = time.perf_counter()
        res = funcs[part](args, work / part if part == "recover" else work)
        res["seconds"] = round(time.perf_counter() - t0, 1)
        res["command"] = " ".join(["python", *sys.argv])
        variant = "_noref" if part in ("loop", "future", "oracle") and args.loop_baseline == "noref" else ""
        variant += "_explore" if part in ("loop", "future") and args.loop_explore else ""
        if variant.endswith("_explore") and args.loop_explore_depth:
            variant += f"_depth{args.loop_explore_depth}"
        variant += "_reformulate" if part in ("loop", "future", "seed") and args.loop_reformulate else ""
        variant += "_switch" if part in ("loop", "future", "seed") and args.loop_switch else ""
        emit(f"bench_feedback_loop_{part}{variant}{suffix}", res)
    found = {p: RESULTS / f"bench_feedback_loop_{p}{suffix}.json" for p in PARTS}
    if any(p in PARTS or p == "merge" for p in parts) and all(f.exists() for f in found.values()):
        merged = {p: {k: v for k, v in json.loads(f.read_text()).items() if k not in ("env", "cpu", "benchmark")}
                  for p, f in found.items()}  # fmt: skip
        emit(f"bench_feedback_loop{suffix}", {"parts": merged, "cpu": cpu_info()})


if __name__ == "__main__":
    main()
