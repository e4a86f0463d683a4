"""The one-command pipeline: corpus -> queries -> split -> base evaluation -> fine-tune -> comparison -> report.

Every stage writes its outputs atomically and then a state file `stages/<name>.json` holding a hash of
its inputs. A stage whose inputs are unchanged and whose outputs exist is skipped, so an interrupted
run resumes at the first unfinished stage and a second run is fast. `--force` reruns everything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console

from .corpus import CorpusError, bundled_corpus_paths, corpus_fingerprint, read_corpus, write_corpus
from .encoding.models import DEFAULT_MODEL, model_fingerprint
from .errors import InputError
from .fileio import atomic_write_json, atomic_write_text, sha256_file, sha256_text
from .golden.goldenset import GoldenSet, bundled_handwritten_path, load_judged_queries
from .training.train import TrainConfig

STAGES = ("corpus", "queries", "llm-queries", "split", "base-eval", "train", "compare", "report")


@dataclass
class PipelineConfig:
    corpus: list[Path] | None = None  # None: the bundled corpus
    out: Path = Path("runs/bundled")
    seed: int = 42
    test: float = 0.2
    dev: float = 0.1
    base: str = DEFAULT_MODEL
    systems: tuple[str, ...] = ("bm25", "hybrid")
    train: TrainConfig = field(default_factory=TrainConfig)
    soup_keywords: int = 0  # > 0: train a second model with this many extra keyword queries and average the two
    skip_invalid: bool = False
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_per_prompt: int = 3
    judged: Path | None = None  # a second, hand-judged query set; default: the bundled one when it fits
    n_bootstrap: int = 2000
    n_permutations: int = 10000
    until: str | None = None  # stop after this stage
    force: bool = False
    plots: bool = True


class StopPipeline(Exception):
    pass


class Runner:
    def __init__(self, out: Path, console: Console, force: bool = False, until: str | None = None):
        self.out = out
        self.console = console
        self.force = force
        self.until = until
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def stage(self, name: str, key: dict, outputs: Sequence[Path], fn: Callable[[], dict]) -> dict:
        state_path = self.out / "stages" / f"{name}.json"
        key_hash = sha256_text(json.dumps(key, sort_keys=True, default=str))
        number = STAGES.index(name) + 1
        if not self.force and state_path.exists() and all(p.exists() for p in outputs):
            try:
                state = json.loads(state_path.read_text())
            except (OSError, ValueError):
                state = {}
            if state.get("key") == key_hash:
                self.console.print(f"[dim]{number}/{len(STAGES)} {name}: inputs unchanged, skipped[/]")
                self.skipped.append(name)
                return self._after(name, state["result"])
        self.console.print(f"[bold]{number}/{len(STAGES)} {name}[/] …")
        t0 = time.perf_counter()
        result = fn()
        secs = time.perf_counter() - t0
        atomic_write_json(
            state_path, {"stage": name, "key": key_hash, "inputs": key, "result": result, "seconds": round(secs, 2)}
        )
        self.console.print(f"  [green]done[/] in {secs:.1f} s")
        self.ran.append(name)
        return self._after(name, result)

    def _after(self, name: str, result: dict) -> dict:
        if self.until == name:
            raise StopPipeline(name)
        return result


def run_pipeline(cfg: PipelineConfig, console: Console | None = None) -> dict:
    console = console or Console()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.until is not None and cfg.until not in STAGES:
        raise InputError(f"unknown stage {cfg.until!r}; stages: {', '.join(STAGES)}")
    r = Runner(out, console, cfg.force, cfg.until)
    try:
        return _run(cfg, r, out, console)
    except StopPipeline as stop:
        console.print(f"stopped after stage {stop.args[0]} (--until)")
        return {"stopped_after": stop.args[0], "ran": r.ran, "skipped": r.skipped}


def _run(cfg: PipelineConfig, r: Runner, out: Path, console: Console) -> dict:
    files = [Path(p) for p in (cfg.corpus or bundled_corpus_paths())]
    corpus_file = out / "corpus.jsonl"

    def corpus_stage() -> dict:
        report = read_corpus(files)
        if report.errors and not cfg.skip_invalid:
            raise CorpusError(report)
        write_corpus(report.prompts, corpus_file)
        return {
            "prompts": len(report.prompts),
            "fingerprint": corpus_fingerprint(report.prompts),
            "errors": len(report.errors),
            "warnings": len(report.warnings),
        }

    c = r.stage(
        "corpus",
        {"files": [(str(f), sha256_file(f)) for f in files], "skip_invalid": cfg.skip_invalid},
        [corpus_file],
        corpus_stage,
    )

    def load_prompts():
        from .corpus import load_corpus

        return load_corpus(corpus_file)

    queries_dir = out / "queries"

    def queries_stage() -> dict:
        from .golden.heuristic import HeuristicConfig, generate_heuristic

        gs = generate_heuristic(load_prompts(), HeuristicConfig(seed=cfg.seed))
        gs.save(queries_dir)
        return {"fingerprint": gs.fingerprint(), **gs.counts()}

    q = r.stage(
        "queries",
        {"corpus": c["fingerprint"], "seed": cfg.seed, "generator": "heuristic/1"},
        [queries_dir / "manifest.json"],
        queries_stage,
    )

    llm_dir = out / "queries-llm"
    llm = None
    if cfg.llm_base_url and cfg.llm_model:

        def llm_stage() -> dict:
            from .golden.llm_queries import LLMConfig, LLMQueryGenerator

            gen = LLMQueryGenerator(
                LLMConfig(cfg.llm_base_url, cfg.llm_model, queries_per_prompt=cfg.llm_per_prompt, seed=cfg.seed)
            )
            gs, rep = gen.generate(load_prompts(), progress=True)
            gs.save(llm_dir)
            return {"fingerprint": gs.fingerprint(), "kept": rep.kept, "dropped": dict(rep.dropped)}

        llm = r.stage(
            "llm-queries",
            {
                "corpus": c["fingerprint"],
                "model": cfg.llm_model,
                "url": cfg.llm_base_url,
                "per_prompt": cfg.llm_per_prompt,
                "seed": cfg.seed,
            },
            [llm_dir / "manifest.json"],
            llm_stage,
        )
    else:
        console.print(
            f"[dim]{STAGES.index('llm-queries') + 1}/{len(STAGES)} llm-queries: no endpoint configured "
            "(--llm-base-url, --llm-model), skipped[/]"
        )

    golden_dir = out / "golden"

    def split_stage() -> dict:
        from .golden.splits import split_by_prompt

        gs = split_by_prompt(GoldenSet.load(queries_dir), test=cfg.test, dev=cfg.dev, seed=cfg.seed)
        gs.save(golden_dir)
        gs.export_pairs_csv(golden_dir / "pairs.csv")
        return {"fingerprint": gs.fingerprint(), **{k: len(v) for k, v in gs.splits.items()}}

    s = r.stage(
        "split",
        {"queries": q["fingerprint"], "test": cfg.test, "dev": cfg.dev, "seed": cfg.seed},
        [golden_dir / "manifest.json", golden_dir / "qrels" / "test.tsv"],
        split_stage,
    )
    gs = GoldenSet.load(golden_dir)
    second, second_name, second_fp = _second_set(cfg, gs, llm_dir if llm else None)

    base_dir = out / "reports" / "base"

    def base_stage() -> dict:
        from .evaluation.evaluate import PRIMARY, evaluate_systems
        from .evaluation.report import write_report
        from .evaluation.systems import build_systems

        specs = [
            "bm25",
            cfg.base,
            *[f"{x}:{cfg.base}" if x.startswith("hybrid") else x for x in cfg.systems if x != "bm25"],
        ]
        systems = build_systems(list(dict.fromkeys(specs)), gs.corpus, dev=gs.dev_pairs(), show_progress=True)
        rep = evaluate_systems(
            gs,
            systems,
            split="test",
            baseline="bm25",
            seed=cfg.seed,
            n_bootstrap=cfg.n_bootstrap,
            n_permutations=cfg.n_permutations,
            golden_dir=str(golden_dir),
        )
        write_report(rep, base_dir, make_plots=cfg.plots)
        return {"ndcg@10": {x.name: x.estimates[PRIMARY].mean for x in rep.systems}}

    r.stage(
        "base-eval",
        {
            "golden": s["fingerprint"],
            "base": model_fingerprint(cfg.base),
            "systems": cfg.systems,
            "seed": cfg.seed,
            "boot": cfg.n_bootstrap,
            "perm": cfg.n_permutations,
        },
        [base_dir / "report.json"],
        base_stage,
    )

    model_dir = out / "model"

    def train_stage() -> dict:
        from .training.train import train

        tcfg = TrainConfig(**asdict(cfg.train))
        if cfg.soup_keywords:
            from .training.soup import train_soup

            soup = train_soup(
                gs,
                model_dir,
                tcfg,
                cfg.soup_keywords,
                ingredients_dir=out / "ingredients",
                reuse=not cfg.force,
                golden_dir=str(golden_dir),
                log=console.print,
            )
            manifest = soup.manifest
            return {
                "rows": manifest["training_rows"],
                "steps": manifest["steps"],
                "seconds": manifest["seconds"],
                "dev_ndcg@10_base": manifest["dev"]["ndcg@10_base"],
                "dev_ndcg@10_best": soup.dev_ndcg,
                "soup": [i["path"] for i in manifest["soup"]["ingredients"]],
            }
        res = train(gs, model_dir, tcfg, progress=True, golden_dir=str(golden_dir))
        return {
            "rows": res.rows,
            "steps": res.steps,
            "seconds": round(res.seconds, 1),
            "dev_ndcg@10_base": res.base_dev_ndcg,
            "dev_ndcg@10_best": res.best_dev_ndcg,
        }

    t = r.stage(
        "train",
        {"golden": s["fingerprint"], "config": asdict(cfg.train), "base": model_fingerprint(cfg.base)}
        | ({"soup_keywords": cfg.soup_keywords} if cfg.soup_keywords else {}),  # old runs keep their key
        [model_dir / "training_manifest.json", model_dir / "model.safetensors"],
        train_stage,
    )

    compare_dir = out / "reports" / "compare"

    def compare_stage() -> dict:
        from .evaluation.compare import compare
        from .training.train import update_card_with_test

        res = compare(
            gs,
            baseline=cfg.base,
            candidate=str(model_dir),
            extras=cfg.systems,
            split="test",
            second=second,
            second_name=second_name,
            out_dir=compare_dir,
            seed=cfg.seed,
            n_bootstrap=cfg.n_bootstrap,
            n_permutations=cfg.n_permutations,
            golden_dir=str(golden_dir),
            make_plots=cfg.plots,
        )
        cand = next(x for x in res.primary.systems if x.name != cfg.base and "(" in x.name and "hybrid" not in x.name)
        update_card_with_test(
            model_dir, {m: cand.estimates[m].mean for m in ("ndcg@10", "mrr@10", "recall@10", "map@10", "precision@5")}
        )
        return res.summary

    summary = r.stage(
        "compare",
        {
            "golden": s["fingerprint"],
            "model": model_fingerprint(str(model_dir)),
            "second": second_fp,
            "systems": cfg.systems,
            "seed": cfg.seed,
            "boot": cfg.n_bootstrap,
            "perm": cfg.n_permutations,
        },
        [compare_dir / "summary.json"],
        compare_stage,
    )

    def report_stage() -> dict:
        text = final_report(cfg, c, s, t, summary)
        atomic_write_text(out / "REPORT.md", text)
        headline = headline_numbers(summary)
        atomic_write_json(
            out / "summary.json", {"corpus": c, "split": s, "train": t, "compare": summary, "headline": headline}
        )
        return headline

    headline = r.stage("report", {"summary": summary, "train": t}, [out / "REPORT.md"], report_stage)
    console.print(f"\n[bold]report:[/] {out / 'REPORT.md'}")
    for line in headline["lines"]:
        console.print("  " + line)
    return {"ran": r.ran, "skipped": r.skipped, "headline": headline, "report": str(out / "REPORT.md")}


def _second_set(
    cfg: PipelineConfig, gs: GoldenSet, llm_dir: Path | None
) -> tuple[GoldenSet | None, str | None, str | None]:
    """LLM queries of held-out test prompts when generated; else a hand-judged set that fits this corpus."""
    if llm_dir is not None:
        llm = GoldenSet.load(llm_dir)
        held = set(gs.manifest["split"]["prompts"]["test"])
        test_q = [x.id for x in llm.queries if x.source_id in held]
        llm.splits = {"test": test_q}
        return llm, f"LLM queries of test prompts ({llm_dir})", llm.fingerprint()
    path = cfg.judged or bundled_handwritten_path()
    try:
        judged = load_judged_queries(path, gs.corpus)
    except (ValueError, OSError):
        if cfg.judged:
            raise
        return None, None, None  # the bundled hand-written set does not fit a user's corpus
    return judged, f"hand-written queries ({path.name})", judged.fingerprint()


def headline_numbers(summary: dict) -> dict:
    lines = []
    out: dict = {"lines": lines}
    for key in ("primary", "second"):
        block = summary.get(key)
        if not block:
            continue
        label = "test split" if key == "primary" else block.get("name") or "second set"
        ndcg = block["ndcg@10"]
        out[key] = {"ndcg@10": {k: round(v["mean"], 4) for k, v in ndcg.items()}}
        lines.append(
            f"{label}: NDCG@10 "
            + ", ".join(f"{k} {v['mean']:.3f}" for k, v in sorted(ndcg.items(), key=lambda kv: -kv[1]["mean"]))
        )
        for comp in block["comparisons"]:
            d = comp["diff"]
            lines.append(
                f"  {comp['system']} vs {comp['baseline']}: {d['mean']:+.3f} "
                f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}], Holm p={comp['p_holm']:.4f}"
            )
    return out


def final_report(cfg: PipelineConfig, c: dict, s: dict, t: dict, summary: dict) -> str:
    from .evaluation.compare import summary_markdown

    return "\n".join(
        [
            "# prompt-retriever pipeline report",
            "",
            f"Corpus: {c['prompts']} prompts (fingerprint `{c['fingerprint']}`). Queries split by prompt: "
            f"train {s.get('train', 0)}, dev {s.get('dev', 0)}, test {s.get('test', 0)} queries "
            f"(test {cfg.test:.0%} / dev {cfg.dev:.0%} of prompts held out, seed {cfg.seed}).",
            "",
            f"Fine-tuning: base `{cfg.base}`, {t['rows']} training rows, {t['steps']} steps in {t['seconds']} s; "
            f"dev NDCG@10 {t['dev_ndcg@10_base'] or 0:.3f} -> {t['dev_ndcg@10_best'] or 0:.3f} "
            + (
                f"(a model soup: the weight average of {len(t['soup'])} fine-tunes, "
                + ", ".join(f"`{Path(p).name}`" for p in t["soup"])
                + ", each with its checkpoint chosen on dev)."
                if t.get("soup")
                else "(checkpoint chosen on dev)."
            ),
            "",
            summary_markdown(summary)
            .replace("# ", "## ", 1)
            .replace("Full reports: `primary/report.md`", "Full reports: `reports/compare/primary/report.md`")
            .replace(", `second/report.md`", ", `reports/compare/second/report.md`"),
            "Base systems alone: `reports/base/report.md`. The fine-tuned model: `model/` (model card in "
            "`model/README.md`).",
            "",
        ]
    )
