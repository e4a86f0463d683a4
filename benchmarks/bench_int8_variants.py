"""Which int8 ONNX variant is fastest on this CPU, and how close each stays to fp32: the measurements
behind the shipped choice (plain-attention export, dynamic int8, per-channel int8 weights).

For each variant: texts/s on the bundled prompts (batch 32, 2 threads, equal-length groups as the ONNX
encoder runs them), mean cosine to the fp32 embeddings, and the overlap of the top-10 prompts for 500
golden queries with fp32's top-10. The variants include weight-only MatMulNBits (8- and 4-bit blocked
weights, int8 compute; needs `onnx-ir`, in the dev extra).

Last, the ceiling: the shipped int8 model on one core alone, and on both cores at once from two
processes (no tokenising or batching in the timed loop), against torch in the same run; and where the
shipped model's time goes (ONNX Runtime's profiler, share of kernel time by op type).

    python benchmarks/bench_int8_variants.py
"""

from __future__ import annotations

import inspect
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _common import emit


def main() -> None:
    os.environ.setdefault("PROMPT_RETRIEVER_CACHE_DIR", tempfile.mkdtemp(prefix="bench-cache-"))
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    from prompt_retriever.corpus import load_corpus
    from prompt_retriever.encoding import onnx as onnx_backend
    from prompt_retriever.encoding.encoder import prompt_document
    from prompt_retriever.encoding.models import load_model
    from prompt_retriever.golden.heuristic import generate_heuristic

    warnings.simplefilter("ignore")
    work = Path(tempfile.mkdtemp(prefix="int8-variants-"))
    model = load_model("all-MiniLM-L6-v2")
    tok = model.tokenizer
    prompts = load_corpus()
    docs = [prompt_document(p) for p in prompts]
    queries = [q.text for q in generate_heuristic(prompts).queries][:500]

    fp32 = onnx_backend.export_onnx("all-MiniLM-L6-v2")  # plain attention (the shipped export)
    sdpa = work / "sdpa.onnx"
    onnx_backend._export_embedder(model, model[0].auto_model, sdpa)  # the model's default (SDPA) attention

    def dynamic(src: Path, name: str, **kw) -> Path:
        out = work / f"{name}.onnx"
        quantize_dynamic(str(src), str(out), **kw)
        return out

    def fused(name: str, **flags) -> Path:
        out = work / f"{name}.onnx"
        options = FusionOptions("bert")
        for key, value in flags.items():
            setattr(options, key, value)
        optimizer.optimize_model(
            str(fp32), model_type="bert", num_heads=12, hidden_size=384, optimization_options=options
        ).save_model_to_file(str(out))
        return out

    class Calibration(CalibrationDataReader):
        def __init__(self):
            texts = docs[::10] + queries[::10]
            encoded = [tok(texts[i : i + 16], padding=True, return_tensors="np") for i in range(0, len(texts), 16)]
            self.batches = iter([{k: v.astype(np.int64) for k, v in e.items()} for e in encoded])

        def get_next(self):
            return next(self.batches, None)

    static = work / "static.onnx"
    quantize_static(
        str(fp32),
        str(static),
        Calibration(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
    )

    def weight_only(bits: int, block: int) -> Path:
        """MatMulNBits: 8- or 4-bit blocked weights, int8 compute (accuracy level 4)."""
        out = work / f"nbits{bits}-{block}.onnx"
        q = MatMulNBitsQuantizer(onnx.load(str(fp32)), bits=bits, block_size=block, is_symmetric=True, accuracy_level=4)
        q.process()
        q.model.save_model_to_file(str(out), use_external_data_format=False)
        return out

    variants = {
        "fp32 (plain attention)": fp32,
        "int8 dynamic, per-channel (shipped)": onnx_backend.export_onnx("all-MiniLM-L6-v2", quantized=True),
        "int8 dynamic, per-tensor": dynamic(fp32, "pt", weight_type=QuantType.QInt8),
        "int8 dynamic, SDPA export": dynamic(sdpa, "sdpa-int8", weight_type=QuantType.QInt8),
        "int8 dynamic, uint8 weights": dynamic(fp32, "u8", weight_type=QuantType.QUInt8),
        "int8 dynamic after ORT transformer fusions": dynamic(
            fused("fused"),
            "fused-int8",
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        ),
        "int8 MatMuls around fp32 MultiHeadAttention (ORT fusions)": dynamic(
            fused("mha", use_multi_head_attention=True),
            "mha-int8",
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        ),
        "int8 static (calibrated, QDQ)": static,
    }
    try:  # needs onnx-ir (dev extra) and an ONNX Runtime whose quantizer has 8-bit MatMulNBits
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        if "bits" not in inspect.signature(MatMulNBitsQuantizer).parameters:
            raise ImportError("this ONNX Runtime's MatMulNBits quantizer has no `bits` option")
    except ImportError as exc:
        print(f"MatMulNBits variants skipped: {exc} (pip install onnx-ir, onnxruntime>=1.20)", flush=True)
    else:
        variants["MatMulNBits 8-bit weights, block 128, int8 compute"] = weight_only(8, 128)
        variants["MatMulNBits 4-bit weights, block 32, int8 compute"] = weight_only(4, 32)

    def embed(session, texts: list[str]) -> np.ndarray:
        tokens = tok(texts, truncation=True, max_length=model.max_seq_length)
        out = np.empty((len(texts), 384), np.float32)
        names = [i.name for i in session.get_inputs()]
        for part in onnx_backend.equal_length_groups(tokens["input_ids"], 32):
            out[part] = session.run(None, onnx_backend.batch_feed(tokens, names, part))[0]
        return out

    results = {}
    ref_docs = ref_queries = None
    for name, path in variants.items():
        session = onnx_backend.inference_session(path, 2)
        embed(session, docs[:64])  # warm-up
        t = time.perf_counter()
        d = embed(session, docs)
        seconds = time.perf_counter() - t
        q = embed(session, queries)
        if ref_docs is None:
            ref_docs, ref_queries = d, q
        ref_top = np.argsort(-(ref_queries @ ref_docs.T), axis=1)[:, :10]
        top = np.argsort(-(q @ d.T), axis=1)[:, :10]
        overlap = [len(set(a) & set(b)) / 10 for a, b in zip(ref_top, top, strict=True)]
        results[name] = {
            "texts_per_second": round(len(docs) / seconds, 1),
            "mean_cosine_to_fp32": round(float(np.mean(np.sum(d * ref_docs, axis=1))), 4),
            "top10_overlap_with_fp32": round(float(np.mean(overlap)), 3),
        }
        print(name, results[name], flush=True)
    t = time.perf_counter()
    tok(docs, truncation=True, max_length=model.max_seq_length)
    tokenise_ms = round((time.perf_counter() - t) * 1000, 1)
    ceiling = per_core_ceiling()
    torch_rate = torch_texts_per_second(docs)
    ceiling["torch_texts_per_second"] = torch_rate
    ceiling["both_cores_ratio_to_torch"] = round(ceiling["both_cores_texts_per_second"] / torch_rate, 2)
    ceiling["tokenising_the_prompts_ms"] = tokenise_ms
    print("ceiling", ceiling, flush=True)
    profile = op_time_shares(variants["int8 dynamic, per-channel (shipped)"], lambda session: embed(session, docs))
    print("shipped int8, share of kernel time by op", profile, flush=True)
    emit(
        "bench_int8_variants",
        {
            "prompts": len(docs),
            "threads": 2,
            "variants": results,
            "int8_ceiling": ceiling,
            "shipped_int8_kernel_time_share_by_op": profile,
        },
    )


def op_time_shares(path: Path, run) -> dict[str, float]:
    """ONNX Runtime's profiler over one `run(session)`: each op type's share of all kernel time (top 8)."""
    import json
    from collections import Counter

    from prompt_retriever.encoding import onnx as onnx_backend

    prefix = str(Path(tempfile.mkdtemp(prefix="ort-profile-")) / "profile")
    session = onnx_backend.inference_session(path, 2, enable_profiling=True, profile_file_prefix=prefix)
    run(session)
    events = json.loads(Path(session.end_profiling()).read_text())
    by_op: Counter[str] = Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_op[e["args"]["op_name"]] += e["dur"]
    total = sum(by_op.values())
    return {op: round(us / total, 3) for op, us in by_op.most_common(8)}


def per_core_ceiling() -> dict:
    """The shipped int8 model on one core alone, then on both cores at once (one process per core, one
    ONNX Runtime thread each; no tokenising, thread pool or per-call batching in the timed loop): the most
    any int8 encoder on this machine gets. The workers start on a handshake, once both are warm, and the
    rate on both cores is all texts over the span from the first start to the last end."""
    import subprocess
    import sys

    def run(n: int) -> tuple[float, list[float]]:
        cmd = [sys.executable, __file__, "--per-core-worker"]
        procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(n)]
        try:
            for p in procs:  # wait until every worker has loaded and warmed up
                line = p.stdout.readline()
                if line.strip() != "READY":
                    raise RuntimeError(f"per-core worker failed before it was ready (said {line!r})")
            for p in procs:
                p.stdin.write("GO\n")
                p.stdin.flush()
            results = []
            for p in procs:
                out, _ = p.communicate()
                lines = [x for x in out.splitlines() if x.startswith("RESULT ")]
                if p.returncode != 0 or not lines:
                    raise RuntimeError(f"per-core worker exited with {p.returncode} and no result")
                texts, start, end = (float(x) for x in lines[-1].split()[1:])
                results.append((texts, start, end))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        span = max(r[2] for r in results) - min(r[1] for r in results)
        return sum(r[0] for r in results) / span, [r[0] / (r[2] - r[1]) for r in results]

    alone, _ = run(1)
    both, per_worker = run(2)
    return {
        "one_core_alone_texts_per_second": round(alone, 1),
        "both_cores_texts_per_second": round(both, 1),
        "both_cores_per_worker": [round(x, 1) for x in per_worker],
    }


def per_core_worker() -> None:
    """One process, one ONNX Runtime thread: after "READY" and the parent's "GO", run the bundled prompts
    three times through the shipped int8 model and print `RESULT texts start end` (wall-clock seconds)."""
    import sys

    from prompt_retriever.corpus import load_corpus
    from prompt_retriever.encoding import onnx as onnx_backend
    from prompt_retriever.encoding.encoder import prompt_document
    from prompt_retriever.encoding.models import load_model

    model = load_model("all-MiniLM-L6-v2")
    docs = [prompt_document(p) for p in load_corpus()]
    tokens = model.tokenizer(docs, truncation=True, max_length=model.max_seq_length)
    session = onnx_backend.inference_session(onnx_backend.export_onnx("all-MiniLM-L6-v2", quantized=True), 1)
    names = [i.name for i in session.get_inputs()]
    feeds = [
        onnx_backend.batch_feed(tokens, names, part)
        for part in onnx_backend.equal_length_groups(tokens["input_ids"], 32)
    ]
    for feed in feeds:  # warm-up
        session.run(None, feed)
    print("READY", flush=True)
    sys.stdin.readline()
    start = time.time()
    for _ in range(3):
        for feed in feeds:
            session.run(None, feed)
    print(f"RESULT {3 * len(docs)} {start} {time.time()}", flush=True)


def torch_texts_per_second(docs: list[str]) -> float:
    from prompt_retriever.encoding.encoder import Encoder

    enc = Encoder("all-MiniLM-L6-v2", use_cache=False, backend="torch")
    enc.encode_queries(docs[:32])
    rates = []
    for _ in range(3):
        t = time.perf_counter()
        enc.encode_queries(docs)
        rates.append(len(docs) / (time.perf_counter() - t))
    return round(sorted(rates)[1], 1)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--per-core-worker"]:
        per_core_worker()
    else:
        main()
