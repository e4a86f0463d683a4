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
from rich.markup import escape

from .corpus import (
    CorpusError,
    bundled_corpus_paths,
    corpus_fingerprint,
    read_corpus,
    read_corpus_bytes,
    write_corpus,
)
from .encoding.models import DEFAULT_MODEL, model_fingerprint
from .errors import InputError
from .fileio import atomic_write_json, atomic_write_text, check_out_dir, sha256_bytes, sha256_file, sha256_text
from .golden.goldenset import GoldenSet, bundled_handwritten_path, load_query_set
from .golden.reference import Reference
from .progress import display, task
from .search.systems import SystemSpec
from .training import TrainConfig

STAGES = (
    "corpus",
    "queries",
    "llm-queries",
    "split",
    "base-eval",
    "train",
    "compare",
    "choose",
    "report",
)  # PIPELINE's names
COMPARE_DIR = "reports/compare"  # the comparison's folder in a run
# the query families a report shows beside the template test split (see evaluation/choose.py)
FAMILY_NAMES = {"natural": "natural-language queries of the test prompts, judged against the whole corpus"}


@dataclass
class PipelineConfig:
    corpus: list[Path] | None = None  # None: the bundled corpus
    out: Path = Path("runs/bundled")
    seed: int = 42
    test: float = 0.2
    dev: float = 0.1
    base: str = DEFAULT_MODEL
    systems: tuple[str, ...] = ("bm25", "hybrid", "hybrid-adaptive")
    train: TrainConfig = field(default_factory=TrainConfig)
    natural: bool = True  # add the natural-language queries of the corpus's prompts (see golden/natural.py)
    natural_queries: Path | None = None  # a natural-query file; None: the bundled one
    # A collection without natural-language queries of its own trains with a reference collection's (replay)
    # and chooses its system on the reference's held-out genres too (see golden/reference.py).
    reference: bool = True
    reference_corpus: list[Path] | None = None  # None: the bundled corpus
    reference_queries: Path | None = None  # None: the bundled natural queries
    soup_keywords: int = 0  # > 0: train a second model with this many extra keyword queries and average the two
    skip_invalid: bool = False
    llm_base_url: str | None = None
    llm_model: str | None = None
    judged: Path | None = None  # a second, hand-judged query set; default: the bundled one when it fits
    n_bootstrap: int = 2000
    n_permutations: int = 10000
    until: str | None = None  # stop after this stage
    force: bool = False
    plots: bool = True


class StopPipeline(Exception):
    pass


def stage_path(out: Path, name: str) -> Path:
    """Where a run records a finished stage: its input key, inputs and result."""
    return out / "stages" / f"{name}.json"


def other_corpus_run(out: Path, files: Sequence[Path]) -> str | None:
    """The corpus of the pipeline run in `out` (its corpus stage record) when it is made from other files
    than `files`, in words; None when there is no run there yet or it is a run of `files` (even edited since:
    the same paths) or of copies of them (the same contents)."""
    try:
        recorded = json.loads(stage_path(out, "corpus").read_text(encoding="utf-8"))["inputs"]["files"]
        old = [(Path(path), digest) for path, digest in recorded]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no run, or a record the pipeline itself will not trust either
    if {p.resolve() for p, _ in old} == {Path(f).resolve() for f in files}:
        return None
    if sorted(d for _, d in old) == sorted(sha256_file(f) for f in files if Path(f).is_file()):
        return None
    bundled = {p.resolve() for p in bundled_corpus_paths()}
    return "the bundled corpus" if {p.resolve() for p, _ in old} == bundled else ", ".join(p.name for p, _ in old)


class Runner:
    def __init__(self, out: Path, console: Console, force: bool = False, until: str | None = None):
        self.out = out
        self.console = console
        self.force = force
        self.until = until
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def stage(self, name: str, key: dict, outputs: Sequence[Path], fn: Callable[[], dict]) -> dict:
        state_path = stage_path(self.out, name)
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
    reference: Reference | None = None  # the reference collection, when the golden set has no natural queries
    progress: bool = False  # progress bars (one per stage, on `console`)
    corpus_data: list[bytes] | None = None  # the corpus files' bytes, read once (`corpus_key`)

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


def run_pipeline(cfg: PipelineConfig, console: Console | None = None, *, progress: bool = False) -> dict:
    """Run the stages in order. `progress`: a progress bar inside the slow stages (training steps, texts
    embedded), drawn on `console`; without it only the stage lines are printed."""
    console = console or Console(emoji=False)  # nothing printed is read as an emoji code
    out = Path(cfg.out)
    check_out_dir(out, "run", force=cfg.force)  # a non-empty folder that is not a run: refused unless --force
    out.mkdir(parents=True, exist_ok=True)
    if cfg.until is not None and cfg.until not in STAGES:
        raise InputError(f"unknown stage {cfg.until!r}; stages: {', '.join(STAGES)}")
    r = Runner(out, console, cfg.force, cfg.until)
    ctx = Context(out, console, [Path(p) for p in (cfg.corpus or bundled_corpus_paths())], progress=progress)
    try:
        with display(console):
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
    ctx.console.print(f"\n[bold]report:[/] {escape(str(ctx.out / 'REPORT.md'))}")
    for line in headline["lines"]:
        ctx.console.print("  " + line, soft_wrap=True, markup=False, emoji=False)  # names and paths, as written
    return {"ran": r.ran, "skipped": r.skipped, "headline": headline, "report": str(ctx.out / "REPORT.md")}


# ----------------------------------------------------------------------------- the stages


def corpus_key(cfg: PipelineConfig, ctx: Context) -> dict:
    """The files' paths and contents. Each file is read here once and its bytes kept for `stage_corpus`:
    a pipe (`--corpus /dev/stdin`) can be read only once, so hashing it and then parsing it read nothing."""
    if ctx.corpus_data is None:
        ctx.corpus_data = [read_corpus_bytes(f) for f in ctx.files]
    return {
        "files": [(str(f), sha256_bytes(data)) for f, data in zip(ctx.files, ctx.corpus_data, strict=True)],
        "skip_invalid": cfg.skip_invalid,
    }


def stage_corpus(cfg: PipelineConfig, ctx: Context) -> dict:
    if ctx.corpus_data is None:
        corpus_key(cfg, ctx)
    report = read_corpus(ctx.files, data=ctx.corpus_data)
    if report.errors and not cfg.skip_invalid:
        raise CorpusError(report)
    if not report.prompts:  # nothing to run on: refused here, not recorded as a finished stage
        names = ", ".join(str(f) for f in ctx.files)
        raise InputError(f"{names}: no prompts to run the pipeline on ({report.summary()})")
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


def _natural_path(cfg: PipelineConfig) -> Path | None:
    from .golden.natural import bundled_natural_path

    return None if not cfg.natural else Path(cfg.natural_queries or bundled_natural_path())


def queries_key(cfg: PipelineConfig, ctx: Context) -> dict:
    key = {"corpus": ctx.records["corpus"]["fingerprint"], "seed": cfg.seed, "generator": "heuristic/1"}
    natural = _natural_path(cfg)
    return key | ({"natural": sha256_file(natural)} if natural else {})


def stage_queries(cfg: PipelineConfig, ctx: Context) -> dict:
    from .golden.heuristic import HeuristicConfig, generate_heuristic

    gs = generate_heuristic(_prompts(ctx), HeuristicConfig(seed=cfg.seed))
    natural = _natural_path(cfg)
    if natural:  # natural-language queries of the corpus's prompts (the bundled ones fit the bundled corpus)
        from .golden.natural import add_natural_queries, read_natural_queries

        gs = add_natural_queries(gs, read_natural_queries(natural), source=natural.name)
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
        "generator": "natural/1",
        "seed": cfg.seed,
    }


def stage_llm_queries(cfg: PipelineConfig, ctx: Context) -> dict:
    """Natural-language queries of the collection's own prompts, in the six styles of the bundled set,
    written by the LLM endpoint and checked (see golden/llm_natural.py); the split adds them to the golden
    set as its natural family (train, dev, test)."""
    from .golden.llm_natural import generate_natural
    from .golden.llm_queries import LLMConfig

    gs, rep = generate_natural(
        _prompts(ctx), LLMConfig(cfg.llm_base_url, cfg.llm_model, seed=cfg.seed), progress=ctx.progress
    )
    gs.save(ctx.llm_dir)
    return {
        "fingerprint": gs.fingerprint(),
        "kept": rep.kept,
        "dropped": dict(rep.dropped),
        "by_style": dict(rep.by_style),
    }


def split_key(cfg: PipelineConfig, ctx: Context) -> dict:
    key = {"queries": ctx.records["queries"]["fingerprint"], "test": cfg.test, "dev": cfg.dev, "seed": cfg.seed}
    return key | ({"llm": ctx.records["llm-queries"]["fingerprint"]} if "llm-queries" in ctx.records else {})


def stage_split(cfg: PipelineConfig, ctx: Context) -> dict:
    from .golden.natural import add_generated_queries
    from .golden.splits import split_by_prompt

    gs = GoldenSet.load(ctx.queries_dir)
    if "llm-queries" in ctx.records:  # the LLM's natural-language queries: a family of train, dev and test
        gs = add_generated_queries(gs, GoldenSet.load(ctx.llm_dir), source=str(ctx.llm_dir))
    gs = split_by_prompt(gs, test=cfg.test, dev=cfg.dev, seed=cfg.seed)
    gs.save(ctx.golden_dir)
    gs.export_pairs_csv(ctx.golden_dir / "pairs.csv")
    return {"fingerprint": gs.fingerprint(), **{k: len(v) for k, v in gs.splits.items()}}


def load_golden(cfg: PipelineConfig, ctx: Context) -> None:
    """After the split: the golden set, the second query set of the comparison (a hand-judged set that fits
    this corpus, if any) and the reference collection (when the golden set has no natural queries)."""
    ctx.golden = GoldenSet.load(ctx.golden_dir)
    ctx.second = load_query_set(cfg.judged, ctx.golden.corpus)  # None: the bundled set does not fit
    path = cfg.judged or bundled_handwritten_path()
    ctx.second_name = f"hand-written queries ({path.name})" if ctx.second else None
    try:
        ctx.reference = reference_for(cfg, ctx.golden)
    except InputError as e:
        if cfg.reference_corpus or cfg.reference_queries:
            raise  # the reference the user named must work
        ctx.console.print(f"[yellow]warning:[/] no reference collection for this run: {escape(str(e))}")


def has_natural(gs: GoldenSet) -> bool:
    """Whether the golden set holds natural-language queries of its own (in any split)."""
    from .evaluation.choose import NATURAL_KINDS

    return any(q.kind in NATURAL_KINDS for q in gs.queries)


def reference_for(cfg: PipelineConfig, gs: GoldenSet) -> Reference | None:
    """The reference collection for a golden set without natural queries (None when it has its own, when
    `cfg.reference` is off, or when the reference holds nothing beyond the collection's own prompts)."""
    from .golden.natural import bundled_natural_path
    from .golden.reference import load_reference

    if not cfg.reference or has_natural(gs):
        return None
    files = cfg.reference_corpus or bundled_corpus_paths()
    queries = cfg.reference_queries or bundled_natural_path()
    return load_reference(files, queries, seed=cfg.seed, exclude=[p.id for p in gs.corpus])


def _reference_key(cfg: PipelineConfig, ctx: Context) -> dict:
    ref = ctx.reference
    if ref is None:
        return {}
    return {"reference": {"replay": ref.replay.fingerprint(), "proxy": ref.proxy.fingerprint()}}


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
    with task("embedding", unit="texts", enabled=ctx.progress):  # one bar for the stage's encode calls
        systems = build_systems(list(dict.fromkeys(specs)), gs.corpus, dev=gs.dev_pairs(), show_progress=ctx.progress)
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
    key |= _reference_key(cfg, ctx)  # runs without a reference keep their key
    return key | ({"soup_keywords": cfg.soup_keywords} if cfg.soup_keywords else {})  # old runs keep their key


def training_golden(ctx: Context) -> GoldenSet:
    """What the model trains on: the split golden set, plus the reference's replay part when there is one."""
    from .golden.reference import merge_replay

    assert ctx.golden is not None
    return merge_replay(ctx.golden, ctx.reference.replay) if ctx.reference else ctx.golden


def stage_train(cfg: PipelineConfig, ctx: Context) -> dict:
    from .training import train, train_soup

    tcfg = TrainConfig(**asdict(cfg.train))
    if cfg.soup_keywords:
        soup = train_soup(
            training_golden(ctx),
            ctx.model_dir,
            tcfg,
            cfg.soup_keywords,
            ingredients_dir=ctx.out / "ingredients",
            reuse=not cfg.force,
            progress=ctx.progress,
            golden_dir=str(ctx.golden_dir),
            log=functools.partial(ctx.console.print, markup=False, emoji=False),
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
    res = train(training_golden(ctx), ctx.model_dir, tcfg, progress=ctx.progress, golden_dir=str(ctx.golden_dir))
    return {
        **({"replay": ctx.reference.describe()["replay"]} if ctx.reference else {}),
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
        "families": "template+natural/1",
        "systems": cfg.systems,
        "seed": cfg.seed,
        "boot": cfg.n_bootstrap,
        "perm": cfg.n_permutations,
    }


def family_name(gs: GoldenSet, family: str) -> str:
    """How the report names a test family: the natural family is either judged against the whole corpus
    (the bundled set) or written by an LLM for the test prompts (each judging its own prompt only)."""
    if family == "natural" and not any(q.kind == "natural_judged" for q in gs.split_queries("test")):
        return "natural-language queries an LLM wrote for the test prompts (each judges its own prompt)"
    return FAMILY_NAMES.get(family, family)


def stage_compare(cfg: PipelineConfig, ctx: Context) -> dict:
    from .evaluation.choose import families, family_subset
    from .evaluation.compare import compare
    from .training import update_card_with_test

    test_families = families(ctx.golden, "test", judged_only=True)
    primary = primary_golden(ctx.golden)
    more = [
        (fam, family_name(ctx.golden, fam), family_subset(ctx.golden, "test", fam, judged_only=True))
        for fam in test_families
        if fam != "template" and len(test_families) > 1
    ]
    res = compare(
        primary,
        more=more,
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
        show_progress=ctx.progress,
        make_plots=cfg.plots,
    )
    cand = res.primary.system(res.names.candidate)
    update_card_with_test(
        ctx.model_dir, {m: cand.estimates[m].mean for m in ("ndcg@10", "mrr@10", "recall@10", "map@10", "precision@5")}
    )
    return res.summary


def choose_key(cfg: PipelineConfig, ctx: Context) -> dict:
    return {
        "golden": ctx.records["split"]["fingerprint"],
        "base": model_fingerprint(cfg.base),
        "model": model_fingerprint(str(ctx.model_dir)),
        "systems": cfg.systems,
        "format": "system/3",
    } | _reference_key(cfg, ctx)


def primary_golden(gs: GoldenSet) -> GoldenSet:
    """The golden set of the report's primary comparison: its test split holds the template family only
    when other families (natural-language, LLM) have test queries of their own, else every test query."""
    from .evaluation.choose import families, family_subset

    return family_subset(gs, "test", "template") if len(families(gs, "test", judged_only=True)) > 1 else gs


def _system_spec(system) -> tuple[SystemSpec, str | None]:
    """The servable spec of an evaluated system, and the model it embeds with (None for BM25)."""
    if system.kind == "dense":
        return SystemSpec("dense"), system.model
    if system.kind == "bm25":
        return SystemSpec("bm25"), None
    if system.kind == "hybrid":
        return SystemSpec("hybrid", alpha=system.alpha), system.dense.model
    if system.kind == "hybrid-adaptive":
        spec = SystemSpec("hybrid-adaptive", alphas=system.alphas, bounds=system.bounds)
        return spec, system.dense.model
    dense = next(s for s in system.systems if s.kind == "dense")
    return SystemSpec("hybrid-rrf", k_rrf=system.k_rrf, depth=system.depth), dense.model


def stage_choose(cfg: PipelineConfig, ctx: Context) -> dict:
    """Choose the system to serve on dev (mean NDCG@10 over the query families), measure it on test,
    and write it into the run: `index/` and `system.json`, which `search/serve --run` load."""
    with task("embedding", unit="texts", enabled=ctx.progress):  # one bar for the stage's encode calls
        return _choose(cfg, ctx)


def _choose(cfg: PipelineConfig, ctx: Context) -> dict:
    from .evaluation.choose import choose_system, family_scores
    from .evaluation.compare import comparison_plan
    from .evaluation.metrics import evaluate
    from .evaluation.systems import build_systems
    from .search.retriever import PromptRetriever

    gs = ctx.golden
    model = str(ctx.model_dir)
    extras = list(dict.fromkeys(["bm25", *cfg.systems]))
    specs, names, _, _ = comparison_plan(cfg.base, model, extras)
    proxy = None
    if ctx.reference is None:
        systems = build_systems(specs, gs.corpus, dev=gs.dev_pairs(), names=names, show_progress=ctx.progress)
    else:  # fusion weights tuned on the collection's dev queries and the reference's natural ones jointly
        from .evaluation.choose import Proxy
        from .evaluation.systems import tune_jointly

        ref = ctx.reference.proxy
        systems = build_systems(specs, gs.corpus, names=names, show_progress=ctx.progress)
        proxy = Proxy(build_systems(specs, ref.corpus, names=names, show_progress=ctx.progress), ref)
        tune_jointly(list(zip(systems, proxy.systems, strict=True)), gs.dev_pairs(), ref.dev_pairs())
    choice = choose_system(systems, gs, proxy=proxy, base=cfg.base)
    chosen = next(s for s in systems if s.name == choice.name)
    spec, used = _system_spec(chosen)
    tuned = Path(used or "").name == ctx.model_dir.name
    short = cfg.base.rstrip("/").split("/")[-1]
    dense_label = f"fine-tuned {short}" if tuned else f"{short} (base)"
    label = {
        "dense": dense_label,
        "bm25": "BM25",
        "hybrid": f"{dense_label} + BM25 hybrid",
        "hybrid-rrf": f"{dense_label} + BM25 rank fusion",
        "hybrid-adaptive": f"{dense_label} + BM25 query-adaptive hybrid",
    }[spec.kind]
    test_queries = primary_golden(gs).split_queries("test")  # the report's primary test split
    run = chosen.search([(q.id, q.text) for q in test_queries], 10)
    test_all = evaluate(run, {q.id: gs.qrels[q.id] for q in test_queries}, ["ndcg@10"])["ndcg@10"]
    info = {
        "label": label,
        "name": chosen.name,
        "chosen_on": {
            "split": "dev",
            "metric": "ndcg@10",
            "rule": "best mean over the query families with dev queries",
            "families": choice.families,
            "candidates": {n: {**v, "mean": choice.mean[n]} for n, v in choice.dev.items()},
            "excluded": choice.excluded,
            "base": cfg.base,
        },
        **({"reference": ctx.reference.describe()} if ctx.reference else {}),
        "dev_ndcg@10": choice.mean[chosen.name],
        "dev": choice.dev[chosen.name],
        "test_ndcg@10": test_all,
        "test": family_scores(chosen, gs, "test", judged_only=True),
    }
    retriever = PromptRetriever(used or cfg.base, system=spec, show_progress=ctx.progress).index(gs.corpus)
    retriever.save_run(ctx.out, info)
    return {
        "label": label,
        "name": chosen.name,
        "kind": spec.kind,
        **{k: info[k] for k in ("dev", "test")},
        "dev_ndcg@10": info["dev_ndcg@10"],
        "test_ndcg@10": test_all,
    }


def report_key(cfg: PipelineConfig, ctx: Context) -> dict:
    return {"summary": ctx.records["compare"], "train": ctx.records["train"], "choose": ctx.records["choose"]}


def stage_report(cfg: PipelineConfig, ctx: Context) -> dict:
    c, s, t, summary = (ctx.records[name] for name in ("corpus", "split", "train", "compare"))
    chosen = json.loads((ctx.out / "system.json").read_text(encoding="utf-8"))
    atomic_write_text(ctx.out / "REPORT.md", final_report(cfg, c, s, t, summary, chosen))
    headline = headline_numbers(summary)
    headline["lines"].append(
        f"serving: {chosen['label']} (chosen on dev, mean NDCG@10 {chosen['dev_ndcg@10']:.3f}; "
        f"test NDCG@10 {chosen['test_ndcg@10']:.3f}): prompt-retriever serve --run {ctx.out}"
    )
    atomic_write_json(
        ctx.out / "summary.json",
        {
            "corpus": c,
            "split": s,
            "train": t,
            "compare": summary,
            "system": ctx.records["choose"],
            "headline": headline,
        },
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
    Stage("choose", choose_key, ("system.json", "index/manifest.json"), stage_choose),
    Stage("report", report_key, ("REPORT.md",), stage_report),
)


# ----------------------------------------------------------------------------- the report


def headline_numbers(summary: dict) -> dict:
    lines = []
    out: dict = {"lines": lines}
    for key, block in _blocks(summary):
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


def _comparison(block: dict | None, system: str, baseline: str) -> dict | None:
    for c in (block or {}).get("comparisons", []):
        if c["system"] == system and c["baseline"] == baseline:
            return c
    return None


def _delta(c: dict) -> str:
    d = c["diff"]
    return f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}], Holm p = {c['p_holm']:.4f}"


TEMPLATE_WORDS = "template queries (made from the prompts' own genre, theme, title and words)"
NO_NATURAL = (
    "Measured on template queries only; how writers ask was not measured for this collection. To measure "
    "it, give the pipeline an LLM endpoint (`--llm-base-url`, `--llm-model`) to write natural-language "
    "queries of your prompts, or a file of your own judged requests (`--judged FILE`)."
)


def _blocks(summary: dict) -> list[tuple[str, dict]]:
    """The comparison's query families in report order: (key, block)."""
    more = summary.get("more") or {}
    keys = ["primary", "second", *more]
    return [(k, summary.get(k) or more.get(k)) for k in keys if summary.get(k) or more.get(k)]


def measured_families(summary: dict) -> list[str]:
    """The families a run's test numbers measured, in words, for the report's first sentence."""
    return [TEMPLATE_WORDS if k == "primary" else (block.get("name") or k) for k, block in _blocks(summary)]


def verdict(cfg: PipelineConfig, summary: dict, chosen: dict) -> list[str]:
    """The report's opening: which query families were measured, whether fine-tuning helped on them (never
    "helped" from template queries alone), what is served and why."""
    cand, base = summary["candidate"], summary["baseline"]
    parts, helped = [], False
    for key, block in _blocks(summary):
        c = _comparison(block, cand, base)
        if not c:
            continue
        nd = block["ndcg@10"]
        where = "the template test split" if key == "primary" else (block.get("name") or "the second query set")
        sig = c["p_holm"] < 0.05
        moved = "raised" if c["diff"]["mean"] > 0 else "lowered"
        helped |= key != "primary" and sig and c["diff"]["mean"] > 0
        parts.append(
            f"on {where} ({block['queries']} queries) it {moved} NDCG@10 from {nd[base]['mean']:.3f} to "
            f"{nd[cand]['mean']:.3f} ({_delta(c)}{'' if sig else ', not significant'})"
        )
    families = measured_families(summary)
    template_only = len(families) <= 1
    out = [
        NO_NATURAL
        if template_only
        else "Measured on " + "; ".join(families) + " (held-out queries: none was trained on or chosen on)."
    ]
    if template_only:
        lead = "On those template queries, fine-tuning"
    else:
        lead = "Fine-tuning helped" if helped else "Fine-tuning did not clearly help on natural-language requests"
    out.append(f"{lead}: " + "; ".join(parts) + "." if parts else f"{lead}.")
    out.append(_served_sentence(chosen))
    if chosen.get("reference"):
        out.append(_reference_sentence(chosen))
    return out


def _served_sentence(chosen: dict) -> str:
    ranked = sorted(chosen["chosen_on"]["candidates"].items(), key=lambda kv: -kv[1]["mean"])
    runner_up = next(((n, v) for n, v in ranked if n != chosen["name"]), None)
    fams = ", ".join(f"{f} {v:.3f}" for f, v in chosen["dev"].items())
    why = f"the best mean dev NDCG@10 over the query families ({chosen['dev_ndcg@10']:.3f}: {fams})"
    if runner_up:
        why += f"; next best {runner_up[0]} ({runner_up[1]['mean']:.3f})"
    tests = chosen.get("test", {})
    return (
        f"The run serves **{chosen['label']}** (`{chosen['name']}`), chosen on the dev split only by {why}; "
        f"on the test split it scores NDCG@10 {chosen['test_ndcg@10']:.3f}"
        + (" (" + ", ".join(f"{f} {v:.3f}" for f, v in tests.items()) + ")." if len(tests) > 1 else ".")
    )


def _reference_sentence(chosen: dict) -> str:
    ref = chosen["reference"]
    proxy = ref["proxy"]
    cands = chosen["chosen_on"]["candidates"]
    base = chosen["chosen_on"].get("base")
    fam = "natural-reference"
    mine = cands.get(chosen["name"], {}).get(fam)
    theirs = cands.get(base, {}).get(fam) if base else None
    scores = f" (dev NDCG@10 {mine:.3f}, base model {theirs:.3f})" if mine is not None and theirs is not None else ""
    return (
        f"This collection has no natural-language queries of its own, so the model also trained on "
        f"{ref['replay']['queries']} natural-language queries of {ref['replay']['prompts']} reference prompts "
        f"({ref['source']}), and the system and its fusion weights were chosen with, standing in for writers' "
        f"requests, the natural-language queries of {proxy['prompts']} other reference prompts in genres it never "
        f"trained on ({', '.join(proxy['genres'])}){scores}; no system below the base model there could be "
        "chosen. These are dev numbers on another collection, not a measurement of this one."
    )


def _plots(out: Path) -> list[str]:
    lines = []
    for rel, caption in (
        (f"{COMPARE_DIR}/primary/metrics.png", "Test split: metrics per system"),
        (f"{COMPARE_DIR}/primary/recall_at_k.png", "Test split: recall at k"),
        (f"{COMPARE_DIR}/primary/ndcg_by_genre.png", "Test split: NDCG@10 by genre"),
        (f"{COMPARE_DIR}/second/metrics.png", "Second query set: metrics per system"),
        ("model/training_curves.png", "Fine-tuning: loss and dev NDCG@10"),
    ):
        if (out / rel).exists():
            lines += [f"![{caption}]({rel})", ""]
    return lines


def final_report(cfg: PipelineConfig, c: dict, s: dict, t: dict, summary: dict, chosen: dict | None = None) -> str:
    from .evaluation.compare import summary_markdown

    out = Path(cfg.out)
    lines = ["# prompt-retriever pipeline report", ""]
    if chosen:
        lines += [" ".join(verdict(cfg, summary, chosen)), ""]
    lines += [
        "## Data and training",
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
    if chosen:
        lines += [
            "## The system this run serves",
            "",
            "| system | " + " | ".join(chosen["chosen_on"]["families"]) + " | mean (dev) |",
            "|---|" + "---|" * (len(chosen["chosen_on"]["families"]) + 1),
        ]
        for name, v in sorted(chosen["chosen_on"]["candidates"].items(), key=lambda kv: -kv[1]["mean"]):
            excluded = chosen["chosen_on"].get("excluded", {})
            mark = f" (not eligible: {excluded[name]})" if name in excluded else ""
            mark = " (chosen)" if name == chosen["name"] else mark
            lines.append(
                f"| {name}{mark} | "
                + " | ".join(f"{v.get(f, 0):.3f}" for f in chosen["chosen_on"]["families"])
                + f" | {v['mean']:.3f} |"
            )
        tests = ", ".join(f"{f} {v:.3f}" for f, v in chosen["test"].items())
        lines += ["", f"Test split, the chosen system: NDCG@10 {chosen['test_ndcg@10']:.3f} ({tests}).", ""]
        if chosen.get("reference"):
            lines += [
                "`natural-reference`: natural-language queries of reference prompts in genres the model never "
                "trained on (" + ", ".join(chosen["reference"]["proxy"]["genres"]) + "), searched among those "
                "prompts only, by the same systems with the same fusion weights: the stand-in for writers' "
                "requests on dev, for a collection without natural-language queries of its own.",
                "",
            ]
    plots = _plots(out)
    if plots:
        lines += ["## Plots", "", *plots]
    if chosen:
        lines += [
            "## Search and serve this system",
            "",
            "```bash",
            f'prompt-retriever search "haunted lighthouse" --run {out}',
            f"prompt-retriever serve --run {out}                 # http://127.0.0.1:8000/",
            f"prompt-retriever serve --run {out} --backend onnx-int8",
            "```",
            "",
            "From Python: `PromptRetriever.from_run(" + repr(str(out)) + ")`.",
            "",
        ]
    return "\n".join(lines)
