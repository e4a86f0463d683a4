"""Write an evaluation report: report.json, report.md, PNG plots and a TREC run file per system."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ..fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, versions
from .evaluate import PRIMARY, RECALL_CURVE_KS, EvaluationReport, SystemResult
from .metrics import rank

HEADLINE = ("ndcg@10", "mrr@10", "recall@10", "precision@5", "map@10", "hit@1")


def file_name_part(name: str) -> str:
    """`name` (a system's name, possibly a model path) as part of a file name: `/` and other characters
    outside letters, digits, `-_.` become `_`, at most 80 characters."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]


def trec_run(result: SystemResult, tag: str) -> str:
    """The run in TREC format, ranked as the report ranks it. The score column is the rank as a descending
    whole number (depth - rank + 1): trec_eval reads scores as 32-bit floats and orders ties by document id,
    so real scores closer than about 1e-7 (common in fused and BM25 runs) would reorder and change the
    metrics. With these scores trec_eval reproduces the report exactly (the real scores are what the system
    returns when it searches)."""
    lines = []
    for qid in sorted(result.run):
        ranking = rank(result.run[qid])
        for r, pid in enumerate(ranking, 1):
            lines.append(f"{qid} Q0 {pid} {r} {len(ranking) - r + 1} {tag}")
    return "\n".join(lines) + "\n"


def report_dict(rep: EvaluationReport) -> dict:
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "golden": rep.golden_dir,
        "golden_manifest": rep.golden_manifest,
        "split": rep.split,
        "queries": len(rep.queries),
        "metrics": rep.metrics,
        "baseline": rep.baseline,
        "best_system": rep.best.name,
        "statistics": {
            "ci": "95% percentile bootstrap over queries",
            "test": "paired randomization (sign-flip) test, two-sided",
            "correction": "Holm over all comparisons in this report",
            "seed": rep.seed,
            "n_bootstrap": rep.n_bootstrap,
            "n_permutations": rep.n_permutations,
        },
        "versions": versions(),
        "systems": {
            s.name: {
                "fingerprint": s.fingerprint,
                "metrics": {m: s.estimates[m].to_dict() for m in rep.metrics},
                "by_kind": s.by_kind,
                "by_genre": s.by_genre,
                "recall_curve": {str(k): v for k, v in s.recall_curve.items()},
                "search_seconds": s.search_seconds,
                "queries_per_second": s.queries_per_second,
                **({"extra": s.extra} if s.extra else {}),
            }
            for s in rep.systems
        },
        "comparisons": [c.to_dict() for c in rep.comparisons],
    }


def _fmt(est: dict) -> str:
    return f"{est['mean']:.3f} [{est['ci_low']:.3f}, {est['ci_high']:.3f}]"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def markdown(rep: EvaluationReport, data: dict, plots: list[str]) -> str:
    headline = [m for m in HEADLINE if m in rep.metrics]
    systems = sorted(rep.systems, key=lambda s: -s.estimates[PRIMARY].mean)
    best = {m: max(s.estimates[m].mean for s in rep.systems) for m in headline}
    out = [
        f"# Retrieval evaluation: {rep.split} split",
        "",
        f"{len(rep.queries)} queries from `{rep.golden_dir}`, searched over the full corpus of "
        f"{len(rep.titles)} prompts. Mean with 95% bootstrap CI over queries; best per column in bold. "
        f"Baseline: **{rep.baseline}**.",
        "",
        "| system | " + " | ".join(headline) + " | queries/s |",
        "|---|" + "---|" * (len(headline) + 1),
    ]
    for s in systems:
        cells = []
        for m in headline:
            text = _fmt(s.estimates[m].to_dict())
            cells.append(f"**{text}**" if abs(s.estimates[m].mean - best[m]) < 1e-12 else text)
        out.append(f"| {s.name} | " + " | ".join(cells) + f" | {s.queries_per_second:.0f} |")
    judged = [(s.name, key, v) for s in systems for key, v in s.extra.items() if key.startswith("llm_context")]
    if judged:
        out += [
            "",
            "## LLM-judged context relevance",
            "",
            "Share of each query's top results an LLM judge called relevant (no qrels involved; cached).",
            "",
            "| system | metric | mean [95% CI] | queries judged |",
            "|---|---|---|---|",
        ]
        out += [f"| {n} | {key} | {_fmt(v)} | {v['queries_judged']} |" for n, key, v in judged]
    if rep.comparisons:
        out += [
            "",
            "## Comparisons",
            "",
            "Mean paired difference (system − reference) with 95% bootstrap CI; p from a paired randomization "
            "test, Holm-corrected over all rows.",
            "",
            "| system | reference | metric | difference | p | p (Holm) |",
            "|---|---|---|---|---|---|",
        ]
        for c in rep.comparisons:
            d = c.diff
            out.append(
                f"| {c.system} | {c.baseline} | {c.metric} | {d.mean:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}] | "
                f"{_p(c.p_value)} | {_p(c.p_holm)}{' ✓' if c.p_holm < 0.05 else ''} |"
            )
    for title, attr in (("By query kind", "by_kind"), ("By genre", "by_genre")):
        groups = sorted({g for s in rep.systems for g in getattr(s, attr)})
        out += [
            "",
            f"## {title} ({PRIMARY})",
            "",
            "| " + attr[3:] + " | n | " + " | ".join(s.name for s in systems) + " |",
            "|---|---|" + "---|" * len(systems),
        ]
        for g in groups:
            n = next(getattr(s, attr)[g][PRIMARY]["n"] for s in systems if g in getattr(s, attr))
            cells = [_fmt(getattr(s, attr)[g][PRIMARY]) if g in getattr(s, attr) else "" for s in systems]
            out.append(f"| {g} | {n} | " + " | ".join(cells) + " |")
    out += [
        "",
        "## Recall@k (mean over queries)",
        "",
        "| system | " + " | ".join(f"@{k}" for k in RECALL_CURVE_KS) + " |",
        "|---|" + "---|" * len(RECALL_CURVE_KS),
    ]
    for s in systems:
        out.append(f"| {s.name} | " + " | ".join(f"{s.recall_curve[k]:.3f}" for k in RECALL_CURVE_KS) + " |")
    out += _worst_queries(rep, rep.best)
    if plots:
        out += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    out += [
        "",
        "## Provenance",
        "",
        "```json",
        json.dumps(
            {
                "versions": data["versions"],
                "fingerprints": {s.name: s.fingerprint for s in rep.systems},
                "golden": rep.golden_manifest.get("fingerprint"),
                "statistics": data["statistics"],
            },
            indent=2,
        ),
        "```",
        "",
    ]
    return "\n".join(out)


def _worst_queries(rep: EvaluationReport, best: SystemResult, n: int = 10) -> list[str]:
    qmap = {q.id: q for q in rep.queries}
    worst = sorted(best.per_query[PRIMARY].items(), key=lambda kv: (kv[1], kv[0]))[:n]
    out = ["", f"## The {n} worst queries of {best.name} ({PRIMARY})", ""]
    for qid, v in worst:
        q = qmap[qid]
        returned = rank(best.run.get(qid, {}))[:5]
        out.append(f"- **{q.text}** ({q.kind}, {PRIMARY} {v:.3f})")
        out.append(f"  - returned: {', '.join(_title(rep, pid) for pid in returned) or 'nothing'}")
        rel = sorted(((pid, g) for pid, g in rep.qrels[qid].items() if g > 0), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{_title(rep, pid)} ({g})" for pid, g in rel[:5])
        more = f" and {len(rel) - 5} more" if len(rel) > 5 else ""
        out.append(f"  - relevant: {shown}{more}")
    return out


def _title(rep: EvaluationReport, pid: str) -> str:
    return rep.titles.get(pid, pid)


def plots(rep: EvaluationReport, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    made = []
    systems = sorted(rep.systems, key=lambda s: -s.estimates[PRIMARY].mean)
    headline = [m for m in HEADLINE if m in rep.metrics]

    def save(fig, name):
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        atomic_write_bytes(out_dir / name, buf.getvalue())
        made.append(name)

    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(systems)
    for i, s in enumerate(systems):
        means = [s.estimates[m].mean for m in headline]
        err = [
            [s.estimates[m].mean - s.estimates[m].lo for m in headline],
            [s.estimates[m].hi - s.estimates[m].mean for m in headline],
        ]
        xs = [j + i * width for j in range(len(headline))]
        ax.bar(xs, means, width, yerr=err, capsize=3, label=s.name)
    ax.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(headline))], headline)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean (95% CI)")
    ax.set_title(f"Metrics on the {rep.split} split ({len(rep.queries)} queries)")
    ax.legend(fontsize=8)
    save(fig, "metrics.png")

    genres = sorted({g for s in systems for g in s.by_genre})
    fig, ax = plt.subplots(figsize=(10, max(4, 0.3 * len(genres) + 1)))
    height = 0.8 / len(systems)
    for i, s in enumerate(systems):
        vals = [s.by_genre.get(g, {}).get(PRIMARY, {}).get("mean", 0) for g in genres]
        ax.barh([j + i * height for j in range(len(genres))], vals, height, label=s.name)
    ax.set_yticks([j + height * (len(systems) - 1) / 2 for j in range(len(genres))], genres, fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel(PRIMARY)
    ax.set_title(f"{PRIMARY} per genre")
    ax.legend(fontsize=8)
    save(fig, "ndcg_by_genre.png")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in systems:
        ax.plot(RECALL_CURVE_KS, [s.recall_curve[k] for k in RECALL_CURVE_KS], marker="o", label=s.name)
    ax.set_xscale("log")
    ax.set_xticks(RECALL_CURVE_KS, [str(k) for k in RECALL_CURVE_KS])
    ax.set_ylim(0, 1)
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_title("Recall@k")
    ax.legend(fontsize=8)
    save(fig, "recall_at_k.png")
    return made


def write_report(rep: EvaluationReport, out_dir: str | Path, make_plots: bool = True) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = report_dict(rep)
    for s in rep.systems:
        atomic_write_text(out / "runs" / f"{file_name_part(s.name)}.trec", trec_run(s, file_name_part(s.name)))
    made = plots(rep, out) if make_plots else []
    atomic_write_text(out / "report.md", markdown(rep, data, made))
    atomic_write_json(out / "report.json", data)  # last: its presence means the report is complete
    return out
