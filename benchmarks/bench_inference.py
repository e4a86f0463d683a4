"""Texts/s of each inference backend (torch, onnx, onnx-int8) and the NDCG@10 of each on the test split,
in one run, as ratios to torch.

    python benchmarks/bench_inference.py
"""

from __future__ import annotations

import os
import tempfile
import time

from _common import emit


def main() -> None:
    os.environ.setdefault("PROMPT_RETRIEVER_CACHE_DIR", tempfile.mkdtemp(prefix="bench-cache-"))
    from prompt_retriever.corpus import load_corpus
    from prompt_retriever.embedding import Encoder, prompt_document
    from prompt_retriever.evaluation import evaluate_systems
    from prompt_retriever.onnx_backend import use_onnx
    from prompt_retriever.querygen import generate_heuristic
    from prompt_retriever.splits import split_by_prompt
    from prompt_retriever.systems import DenseSystem

    prompts = load_corpus()
    texts = [prompt_document(p) for p in prompts]
    gs = split_by_prompt(generate_heuristic(prompts))
    out = {}
    for backend in ("torch", "onnx", "onnx-int8"):
        enc = Encoder("all-MiniLM-L6-v2", use_cache=False)
        if backend != "torch":
            use_onnx(enc, quantized=backend == "onnx-int8")
        enc.encode_queries(texts[:32])  # warm-up
        t = time.perf_counter()
        enc.encode_queries(texts)
        docs_s = time.perf_counter() - t
        system = DenseSystem.__new__(DenseSystem)
        system.encoder, system.name, system.ids = enc, backend, [p.id for p in prompts]
        system.matrix = enc.encode_queries(texts)
        rep = evaluate_systems(gs, [system], split="test", n_bootstrap=200, n_permutations=200)
        single = []
        for q in [q.text for q in gs.queries[:100]]:
            t1 = time.perf_counter()
            enc.encode_queries([q])
            single.append((time.perf_counter() - t1) * 1000)
        single.sort()
        out[backend] = {
            "texts_per_second": round(len(texts) / docs_s, 1),
            "query_ms_p50": round(single[len(single) // 2], 2),
            "ndcg@10_test": round(rep.systems[0].estimates["ndcg@10"].mean, 4),
        }
    base = out["torch"]
    for v in out.values():
        v["throughput_ratio_to_torch"] = round(v["texts_per_second"] / base["texts_per_second"], 2)
        v["ndcg@10_delta_to_torch"] = round(v["ndcg@10_test"] - base["ndcg@10_test"], 4)
    emit(
        "bench_inference",
        {"prompts": len(prompts), "backends": out, "bar": "int8 >= 2x torch throughput with NDCG@10 within 0.01"},
    )


if __name__ == "__main__":
    main()
