"""A run's REPORT.md: the verdict that opens it, the data and training, the comparison, the served system,
the plots and how to search and serve the run.

The prose is made from the stages' records: the corpus, split and training records, the comparison
summary (`evaluation.summary.ComparisonSummary`) and the chosen system (the run's system.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..evaluation.summary import GOLDEN_SPLIT, INDEPENDENT_SET, ComparisonSummary, delta_text, summary_markdown
from .config import COMPARE_DIR, PipelineConfig

TEMPLATE_WORDS = "template queries (made from the prompts' own genre, theme, title and words)"
NO_NATURAL = (
    "Measured on template queries only; how writers ask was not measured for this collection. To measure "
    "it, give the pipeline an LLM endpoint (`--llm-base-url`, `--llm-model`) to write natural-language "
    "queries of your prompts, a file of your own judged requests (`--judged FILE`), or writers' feedback "
    "(`--feedback STORE`, `--feedback-judged FILE`)."
)


def measured_families(summary: ComparisonSummary) -> list[str]:
    """The families a run's test numbers measured, in words, for the report's first sentence."""
    return [TEMPLATE_WORDS if b.source == GOLDEN_SPLIT else (b.name or b.key) for b in summary.families]


def verdict(summary: ComparisonSummary, chosen: dict[str, Any]) -> list[str]:
    """The report's opening: which query families were measured, whether fine-tuning helped on them (never
    "helped" from template queries alone), what is served and why."""
    cand, base = summary.candidate, summary.baseline
    parts, helped = [], False
    for block in summary.families:
        c = block.comparison(cand, base)
        if not c:
            continue
        where = "the template test split" if block.source == GOLDEN_SPLIT else (block.name or "the second query set")
        sig = c.p_holm < 0.05
        helped |= block.source != GOLDEN_SPLIT and sig and c.diff.mean > 0
        if c.diff.mean == 0:
            parts.append(f"on {where} ({block.queries} queries) it left NDCG@10 at {block.ndcg[base].mean:.3f}")
            continue
        moved = "raised" if c.diff.mean > 0 else "lowered"
        parts.append(
            f"on {where} ({block.queries} queries) it {moved} NDCG@10 from {block.ndcg[base].mean:.3f} to "
            f"{block.ndcg[cand].mean:.3f} ({delta_text(c)}{'' if sig else ', not significant'})"
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


def _served_sentence(chosen: dict[str, Any]) -> str:
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


def _reference_sentence(chosen: dict[str, Any]) -> str:
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
        (f"{COMPARE_DIR}/{GOLDEN_SPLIT}/metrics.png", "Test split: metrics per system"),
        (f"{COMPARE_DIR}/{GOLDEN_SPLIT}/recall_at_k.png", "Test split: recall at k"),
        (f"{COMPARE_DIR}/{GOLDEN_SPLIT}/ndcg_by_genre.png", "Test split: NDCG@10 by genre"),
        (f"{COMPARE_DIR}/{INDEPENDENT_SET}/metrics.png", "Second query set: metrics per system"),
        ("model/training_curves.png", "Fine-tuning: loss and dev NDCG@10"),
    ):
        if (out / rel).exists():
            lines += [f"![{caption}]({rel})", ""]
    return lines


def _training_sentence(cfg: PipelineConfig, training: dict[str, Any]) -> str:
    t = training
    return (
        f"Fine-tuning: base `{cfg.base}`, {t['rows']} training rows, {t['steps']} steps in {t['seconds']} s; "
        f"dev NDCG@10 {t['dev_ndcg@10_base'] or 0:.3f} -> {t['dev_ndcg@10_best'] or 0:.3f} "
        + (
            f"(a model soup: the weight average of {len(t['soup'])} fine-tunes, "
            + ", ".join(f"`{Path(p).name}`" for p in t["soup"])
            + ", each with its checkpoint chosen on dev)."
            if t.get("soup")
            else "(checkpoint chosen on dev)."
        )
    )


def _feedback_sentence(family: dict[str, Any], click_positive_grade: int = 2) -> str:
    """The feedback family (the split record's `feedback`, golden/feedback_family.py) in words."""
    n = family["splits"]
    words = {"feedback": "judged from clicks", "owner_judged": "judged by the owner"}
    kinds = ", ".join(f"{v} {words.get(k, k)}" for k, v in family["by_kind"].items()) or "none"
    left = {
        said: family[key]
        for key, said in (
            ("replaced", "older lines of a request judged again"),
            ("already_present", "requests already among the golden set's queries"),
            ("unknown_prompts", "judgments of prompts not in the corpus"),
            ("no_relevant", "requests left with no relevant prompt"),
        )
        if family.get(key)
    }
    out = (
        f"Writers' feedback: {family['queries']} judged requests ({kinds}) in those splits, split by time, not by "
        f"prompt: the oldest {n['train']} to train, the next {n['dev']} to dev, the newest {n['test']} to test"
        + (f" (test from {family['test_from']})" if family.get("test_from") else "")
        + "; no test request's text is trained on."
    )
    if left:
        out += " Left out: " + "; ".join(f"{v} {said}" for said, v in left.items()) + "."
    if family.get("pairs_by_chains"):
        out += (
            f" Query chains judged {family['pairs_by_chains']} of the relevant prompts (writers who found nothing, "
            "rephrased and took that prompt: prompts the clicks on a request's own answers never graded)."
        )
    if click_positive_grade > 1 and family.get("train_clicks_grade1_only"):
        out += (
            f" Not trained on: {family['train_clicks_grade1_only']} train requests judged from clicks whose best "
            "prompt is grade 1 (click-judged grade 1 is often wrong: requests from clicks train on grade 2 only)."
        )
    return out + (f" Warning: {family['warning']}." if family.get("warning") else "")


def _served_section(chosen: dict[str, Any]) -> list[str]:
    families = chosen["chosen_on"]["families"]
    lines = [
        "## The system this run serves",
        "",
        "| system | " + " | ".join(families) + " | mean (dev) |",
        "|---|" + "---|" * (len(families) + 1),
    ]
    for name, v in sorted(chosen["chosen_on"]["candidates"].items(), key=lambda kv: -kv[1]["mean"]):
        excluded = chosen["chosen_on"].get("excluded", {})
        mark = f" (not eligible: {excluded[name]})" if name in excluded else ""
        mark = " (chosen)" if name == chosen["name"] else mark
        scores = " | ".join(f"{v.get(f, 0):.3f}" for f in families)
        lines.append(f"| {name}{mark} | {scores} | {v['mean']:.3f} |")
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
    return lines


def final_report(
    cfg: PipelineConfig,
    corpus: dict[str, Any],
    split: dict[str, Any],
    training: dict[str, Any],
    summary: ComparisonSummary,
    chosen: dict[str, Any] | None = None,
) -> str:
    """REPORT.md from the records of the corpus, split and train stages, the comparison summary and the
    chosen system (system.json; None: a report without the verdict and the served system)."""
    out = Path(cfg.out)
    lines = ["# prompt-retriever pipeline report", ""]
    if chosen:
        lines += [" ".join(verdict(summary, chosen)), ""]
    lines += [
        "## Data and training",
        "",
        f"Corpus: {corpus['prompts']} prompts (fingerprint `{corpus['fingerprint']}`). Queries split by prompt: "
        f"train {split.get('train', 0)}, dev {split.get('dev', 0)}, test {split.get('test', 0)} queries "
        f"(test {cfg.test:.0%} / dev {cfg.dev:.0%} of prompts held out, seed {cfg.seed}).",
        "",
        *([_feedback_sentence(split["feedback"], cfg.train.click_positive_grade), ""] if split.get("feedback") else []),
        _training_sentence(cfg, training),
        "",
        summary_markdown(summary, title="##", reports=f"{COMPARE_DIR}/"),
        "Base systems alone: `reports/base/report.md`. The fine-tuned model: `model/` (model card in "
        "`model/README.md`).",
        "",
    ]
    if chosen:
        lines += _served_section(chosen)
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
