"""The one-command pipeline: corpus -> queries -> split -> base evaluation -> fine-tune -> comparison -> report.

Every stage writes its outputs atomically and then a state file `stages/<name>.json` holding a hash of
its inputs. A stage whose inputs are unchanged and whose outputs exist is skipped, so an interrupted
run resumes at the first unfinished stage and a second run is fast. `--force` reruns everything.

Each stage is a top-level function `stage_<name>(cfg, ctx)` returning its record, with `<name>_key(cfg,
ctx)`, its inputs, next to it; `PIPELINE` lists them in order with their outputs, and `run_pipeline`
runs that list.
"""

from __future__ import annotations

import functools
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
from .golden.goldenset import GoldenSet, bundled_handwritten_path, load_query_set
from .training import TrainConfig

STAGES = ("corpus", "queries", "llm-queries", "split", "base-eval", "train", "compare", "report")  # PIPELINE's names
COMPARE_DIR = "reports/compare"  # the comparison's folder in a run


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


@dataclass
class Context:
    """What the stages of one run share: its folder, the records of the stages so far, the golden sets."""

    out: Path
    console: Console
    files: list[Path]  # the corpus files
    records: dict[str, dict] = field(default_factory=dict)  # stage name -> the record it returned
    golden: GoldenSet | None = None  # the split golden set, loaded after the split stage
    second: GoldenSet | None = None  # the comparison's second query set (None: there is none)
    second_name: str | None = None

    @property
    def queries_dir(self) -> Path:
        return self.out / "queries"

    @property
    def llm_dir(self) -> Path:
        return self.out / "queries-llm"

    @property
    def golden_dir(self) -> Path:
        return self.out / "golden"

    @property
    def model_dir(self) -> Path:
        return self.out / "model"


@dataclass(frozen=True)
class Stage:
    """A pipeline stage: its cache key (inputs), its outputs (paths in the run folder) and its work."""

    name: str
    key: Callable[[PipelineConfig, Context], dict]
    outputs: tuple[str, ...]
    run: Callable[[PipelineConfig, Context], dict]  # does the work, returns the stage's record
    disabled: Callable[[PipelineConfig], str | None] | None = None  # why the stage is not run at all, if so
    then: Callable[[PipelineConfig, Context], None] | None = None  # after the stage, whether it ran or was skipped


def run_pipeline(cfg: PipelineConfig, console: Console | None = None) -> dict:
    console = console or Console()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.until is not None and cfg.until not in STAGES:
        raise InputError(f"unknown stage {cfg.until!r}; stages: {', '.join(STAGES)}")
    r = Runner(out, console, cfg.force, cfg.until)
    ctx = Context(out, console, [Path(p) for p in (cfg.corpus or bundled_corpus_paths())])
    try:
        return _run(cfg, r, ctx)
    except StopPipeline as stop:
        console.print(f"stopped after stage {stop.args[0]} (--until)")
        return {"stopped_after": stop.args[0], "ran": r.ran, "skipped": r.skipped}


def _run(cfg: PipelineConfig, r: Runner, ctx: Context) -> dict:
    for stage in PIPELINE:
        reason = stage.disabled(cfg) if stage.disabled else None
        if reason:
            ctx.console.print(f"[dim]{STAGES.index(stage.name) + 1}/{len(STAGES)} {stage.name}: {reason}, skipped[/]")
            continue
        outputs = [ctx.out / p for p in stage.outputs]
        ctx.records[stage.name] = r.stage(
            stage.name, stage.key(cfg, ctx), outputs, functools.partial(stage.run, cfg, ctx)
        )
        if stage.then:
            stage.then(cfg, ctx)
    headline = ctx.records["report"]
    ctx.console.print(f"\n[bold]report:[/] {ctx.out / 'REPORT.md'}")
    for line in headline["lines"]:
        ctx.console.print("  " + line)
    return {"ran": r.ran, "skipped": r.skipped, "headline": headline, "report": str(ctx.out / "REPORT.md")}


# ----------------------------------------------------------------------------- the stages


def corpus_key(cfg: PipelineConfig, ctx: Context) -> dict:
    return {"files": [(str(f), sha256_file(f)) for f in ctx.files], "skip_invalid": cfg.skip_invalid}


def stage_corpus(cfg: PipelineConfig, ctx: Context) -> dict:
    report = read_corpus(ctx.files)
    if report.errors and not cfg.skip_invalid:
        raise CorpusError(report)
    write_corpus(report.prompts, ctx.out / "corpus.jsonl")
    return {
        "prompts": len(report.prompts),
        "fingerprint": corpus_fingerprint(report.prompts),
        "errors": len(report.errors),
        "warnings": len(report.warnings),
    }


def _prompts(ctx: Context):
    from .corpus import load_corpus

    return load_corpus(ctx.out / "corpus.jsonl")


def queries_key(cfg: PipelineConfig, ctx: Context) -> dict:
    return {"corpus": ctx.records["corpus"]["fingerprint"], "seed": cfg.seed, "generator": "heuristic/1"}


def stage_queries(cfg: PipelineConfig, ctx: Context) -> dict:
    from .golden.heuristic import HeuristicConfig, generate_heuristic

    gs = generate_heuristic(_prompts(ctx), HeuristicConfig(seed=cfg.seed))
    gs.save(ctx.queries_dir)
    return {"fingerprint": gs.fingerprint(), **gs.counts()}


def llm_disabled(cfg: PipelineConfig) -> str | None:
    if cfg.llm_base_url and cfg.llm_model:
        return None
    return "no endpoint configured (--llm-base-url, --llm-model)"


def llm_queries_key(cfg: PipelineConfig, ctx: Context) -> dict:
    return {
        "corpus": ctx.records["corpus"]["fingerprint"],
        "model": cfg.llm_model,
        "url": cfg.llm_base_url,
        "per_prompt": cfg.llm_per_prompt,
        "seed": cfg.seed,
    }


def stage_llm_queries(cfg: PipelineConfig, ctx: Context) -> dict:
    from .golden.llm_queries import LLMConfig, LLMQueryGenerator

    gen = LLMQueryGenerator(
        LLMConfig(cfg.llm_base_url, cfg.llm_model, queries_per_prompt=cfg.llm_per_prompt, seed=cfg.seed)
    )
    gs, rep = gen.generate(_prompts(ctx), progress=True)
    gs.save(ctx.llm_dir)
    return {"fingerprint": gs.fingerprint(), "kept": rep.kept, "dropped": dict(rep.dropped)}


def split_key(cfg: PipelineConfig, ctx: Context) -> dict:
    return {"queries": ctx.records["queries"]["fingerprint"], "test": cfg.test, "dev": cfg.dev, "seed": cfg.seed}


def stage_split(cfg: PipelineConfig, ctx: Context) -> dict:
    from .golden.splits import split_by_prompt

    gs = split_by_prompt(GoldenSet.load(ctx.queries_dir), test=cfg.test, dev=cfg.dev, seed=cfg.seed)
    gs.save(ctx.golden_dir)
    gs.export_pairs_csv(ctx.golden_dir / "pairs.csv")
    return {"fingerprint": gs.fingerprint(), **{k: len(v) for k, v in gs.splits.items()}}


def load_golden(cfg: PipelineConfig, ctx: Context) -> None:
    """After the split: the golden set, and the second query set of the comparison, which is the LLM
    queries of the held-out test prompts when generated, else a hand-judged set that fits this corpus."""
    ctx.golden = GoldenSet.load(ctx.golden_dir)
    if "llm-queries" in ctx.records:
        ctx.second = load_query_set(ctx.llm_dir, ctx.golden.corpus, test_prompts_of=ctx.golden)
        ctx.second_name = f"LLM queries of test prompts ({ctx.llm_dir})"
    else:
        ctx.second = load_query_set(cfg.judged, ctx.golden.corpus)  # None: the bundled set does not fit
        path = cfg.judged or bundled_handwritten_path()
        ctx.second_name = f"hand-written queries ({path.name})" if ctx.second else None


def base_eval_key(cfg: PipelineConfig, ctx: Context) -> dict:
    return {
        "golden": ctx.records["split"]["fingerprint"],
        "base": model_fingerprint(cfg.base),
        "systems": cfg.systems,
        "seed": cfg.seed,
        "boot": cfg.n_bootstrap,
        "perm": cfg.n_permutations,
    }


def stage_base_eval(cfg: PipelineConfig, ctx: Context) -> dict:
    from .evaluation.evaluate import PRIMARY, evaluate_systems
    from .evaluation.report import write_report
    from .evaluation.systems import build_systems

    gs = ctx.golden
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
        golden_dir=str(ctx.golden_dir),
    )
    write_report(rep, ctx.out / "reports" / "base", make_plots=cfg.plots)
    return {"ndcg@10": {x.name: x.estimates[PRIMARY].mean for x in rep.systems}}


def train_key(cfg: PipelineConfig, ctx: Context) -> dict:
    golden = ctx.records["split"]["fingerprint"]
    key = {"golden": golden, "config": asdict(cfg.train), "base": model_fingerprint(cfg.base)}
    return key | ({"soup_keywords": cfg.soup_keywords} if cfg.soup_keywords else {})  # old runs keep their key


def stage_train(cfg: PipelineConfig, ctx: Context) -> dict:
    from .training import train, train_soup

    tcfg = TrainConfig(**asdict(cfg.train))
    if cfg.soup_keywords:
        soup = train_soup(
            ctx.golden,
            ctx.model_dir,
            tcfg,
            cfg.soup_keywords,
            ingredients_dir=ctx.out / "ingredients",
            reuse=not cfg.force,
            golden_dir=str(ctx.golden_dir),
            log=ctx.console.print,
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
    res = train(ctx.golden, ctx.model_dir, tcfg, progress=True, golden_dir=str(ctx.golden_dir))
    return {
        "rows": res.rows,
        "steps": res.steps,
        "seconds": round(res.seconds, 1),
        "dev_ndcg@10_base": res.base_dev_ndcg,
        "dev_ndcg@10_best": res.best_dev_ndcg,
    }


def compare_key(cfg: PipelineConfig, ctx: Context) -> dict:
    return {
        "golden": ctx.records["split"]["fingerprint"],
        "model": model_fingerprint(str(ctx.model_dir)),
        "second": ctx.second.fingerprint() if ctx.second else None,
        "systems": cfg.systems,
        "seed": cfg.seed,
        "boot": cfg.n_bootstrap,
        "perm": cfg.n_permutations,
    }


def stage_compare(cfg: PipelineConfig, ctx: Context) -> dict:
    from .evaluation.compare import compare
    from .training import update_card_with_test

    res = compare(
        ctx.golden,
        baseline=cfg.base,
        candidate=str(ctx.model_dir),
        extras=cfg.systems,
        split="test",
        second=ctx.second,
        second_name=ctx.second_name,
        out_dir=ctx.out / COMPARE_DIR,
        seed=cfg.seed,
        n_bootstrap=cfg.n_bootstrap,
        n_permutations=cfg.n_permutations,
        golden_dir=str(ctx.golden_dir),
        make_plots=cfg.plots,
    )
    cand = res.primary.system(res.names.candidate)
    update_card_with_test(
        ctx.model_dir, {m: cand.estimates[m].mean for m in ("ndcg@10", "mrr@10", "recall@10", "map@10", "precision@5")}
    )
    return res.summary


def report_key(cfg: PipelineConfig, ctx: Context) -> dict:
    return {"summary": ctx.records["compare"], "train": ctx.records["train"]}


def stage_report(cfg: PipelineConfig, ctx: Context) -> dict:
    c, s, t, summary = (ctx.records[name] for name in ("corpus", "split", "train", "compare"))
    atomic_write_text(ctx.out / "REPORT.md", final_report(cfg, c, s, t, summary))
    headline = headline_numbers(summary)
    atomic_write_json(
        ctx.out / "summary.json", {"corpus": c, "split": s, "train": t, "compare": summary, "headline": headline}
    )
    return headline


PIPELINE = (
    Stage("corpus", corpus_key, ("corpus.jsonl",), stage_corpus),
    Stage("queries", queries_key, ("queries/manifest.json",), stage_queries),
    Stage("llm-queries", llm_queries_key, ("queries-llm/manifest.json",), stage_llm_queries, disabled=llm_disabled),
    Stage("split", split_key, ("golden/manifest.json", "golden/qrels/test.tsv"), stage_split, then=load_golden),
    Stage("base-eval", base_eval_key, ("reports/base/report.json",), stage_base_eval),
    Stage("train", train_key, ("model/training_manifest.json", "model/model.safetensors"), stage_train),
    Stage("compare", compare_key, (f"{COMPARE_DIR}/summary.json",), stage_compare),
    Stage("report", report_key, ("REPORT.md",), stage_report),
)


# ----------------------------------------------------------------------------- the report


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
            summary_markdown(summary, title="##", reports=f"{COMPARE_DIR}/"),
            "Base systems alone: `reports/base/report.md`. The fine-tuned model: `model/` (model card in "
            "`model/README.md`).",
            "",
        ]
    )
