"""What one live change costs a served in-process index, the way `serve` applies it (copy the served
retriever, change the copy, swap it in), at several sizes; encoding excluded.

Per size: a synthetic corpus (`bench_engine.synthetic`: texts recombined from the bundled prompts' words)
with random unit vectors as its embeddings (the index work does not depend on their values; the encoder is
replaced by one that draws them, seeded), dense system (no BM25 index: `bench_live_bm25.py` measures that).
Then `--changes` rounds of: `copy()`, `add` one new prompt, `add` an update of an indexed id, `remove` one
id; each the median and the max in ms; `first_add_ms` is the first round's add (the buffer growing).

    python benchmarks/bench_live_updates.py [--sizes 10000 100000] [--changes 20]
    python benchmarks/bench_live_updates.py --vs /tmp/old/src   # also that source tree, alternating, ratios

With `--vs SRC`, each size runs in child processes, this tree's and SRC's in turn, twice (the second pair
kept), so the two are measured on the same machine in the same run. Prints one JSON line and writes
benchmarks/results/bench_live_updates.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _common import cpu_info, emit, machine

OPS = ("copy", "add", "update", "remove")
HERE = Path(__file__).resolve().parent


def measure(n: int, changes: int) -> dict:
    from bench_engine import synthetic

    from prompt_retriever.corpus import load_corpus
    from prompt_retriever.search.retriever import PromptRetriever

    base = load_corpus()
    prompts = synthetic(base, np.ones((len(base), 1), np.float32), n, 0.0)[0]
    rng = np.random.default_rng(0)

    def embed(ps):
        v = rng.standard_normal((len(ps), 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    served = PromptRetriever()
    served._embed = embed  # the instance's: copies share it
    t = time.perf_counter()
    served.index(prompts)
    built = time.perf_counter() - t
    times: dict[str, list[float]] = {op: [] for op in OPS}
    for i in range(changes):
        old = prompts[(i * 7919) % n]
        t = time.perf_counter()
        copy = served.copy()
        times["copy"].append(time.perf_counter() - t)
        for op, change in (
            ("add", lambda r, i=i: r.add([replace(base[i % len(base)], id=f"live-new-{i}")])),
            ("update", lambda r, old=old: r.add([replace(old, text=old.text + " Rewritten.")])),
            ("remove", lambda r, i=i: r.remove([prompts[(i * 104729 + 1) % n].id], missing_ok=True)),
        ):
            t = time.perf_counter()
            change(copy)
            times[op].append(time.perf_counter() - t)
        served = copy  # swapped in
    out = {"prompts": n, "index_s": round(built, 2), "first_add_ms": round(times["add"][0] * 1000, 2)}
    for op in OPS:
        ms = [x * 1000 for x in times[op][1:]]
        out[op] = {"median_ms": round(statistics.median(ms), 3), "max_ms": round(max(ms), 3)}
    return out


def child(src: str | None, n: int, changes: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(n), "--changes", str(changes)]
    done = subprocess.run([*cmd, "--src", src] if src else cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--vs", default=None, help="another source tree (its src/ folder) to measure alongside")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--src", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.vs and not (Path(args.vs) / "prompt_retriever").is_dir():
        ap.error(f"--vs {args.vs}: no prompt_retriever package there (give a source tree's src folder)")
    if args.child is not None:
        if args.src:
            sys.path.insert(0, args.src)  # before _common's src folder
        import prompt_retriever

        source = str(Path(prompt_retriever.__file__).parents[1])
        print(json.dumps(measure(args.child, args.changes) | {"src": source}))
        return
    rows = []
    for n in args.sizes:
        if not args.vs:
            rows.append({"this": child(None, n, args.changes)})
            continue
        for _ in range(2):  # the second pair is kept (the first warms the page cache and the files)
            this, other = child(None, n, args.changes), child(args.vs, n, args.changes)
        ratios = {op: round(other[op]["median_ms"] / max(this[op]["median_ms"], 1e-6), 1) for op in OPS}
        rows.append({"this": this, "vs": other, "median_ratio_vs_over_this": ratios})
    emit(
        "bench_live_updates",
        {
            "bench": "live_updates",
            "vs": args.vs,
            "changes": args.changes,
            "sizes": rows,
            "env": machine(),
            "cpu": cpu_info(),
        },
    )


if __name__ == "__main__":
    main()
