"""Which int8 ONNX variant is fastest on this CPU, and how close each stays to fp32: the measurements
behind the shipped choice (plain-attention export, dynamic int8, per-channel int8 weights).

For each variant: texts/s on the bundled prompts (batch 32, 2 threads, equal-length groups as the
ONNX encoder runs them), mean cosine to the fp32 embeddings, and the overlap of the top-10 prompts for
500 golden queries with fp32's top-10.

    python benchmarks/bench_int8_variants.py
"""

from __future__ import annotations

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
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    from prompt_retriever import onnx_backend
    from prompt_retriever.corpus import load_corpus
    from prompt_retriever.embedding import prompt_document
    from prompt_retriever.models import load_model
    from prompt_retriever.querygen import generate_heuristic

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

    fused = work / "fused.onnx"
    optimizer.optimize_model(
        str(fp32), model_type="bert", num_heads=12, hidden_size=384, optimization_options=FusionOptions("bert")
    ).save_model_to_file(str(fused))

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
    variants = {
        "fp32 (plain attention)": fp32,
        "int8 dynamic, per-channel (shipped)": onnx_backend.export_onnx("all-MiniLM-L6-v2", quantized=True),
        "int8 dynamic, per-tensor": dynamic(fp32, "pt", weight_type=QuantType.QInt8),
        "int8 dynamic, SDPA export": dynamic(sdpa, "sdpa-int8", weight_type=QuantType.QInt8),
        "int8 dynamic, uint8 weights": dynamic(fp32, "u8", weight_type=QuantType.QUInt8),
        "int8 dynamic after ORT transformer fusions": dynamic(
            fused,
            "fused-int8",
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        ),
        "int8 static (calibrated, QDQ)": static,
    }

    def embed(session, texts: list[str]) -> np.ndarray:
        tokens = tok(texts, truncation=True, max_length=model.max_seq_length)
        out = np.empty((len(texts), 384), np.float32)
        names = [i.name for i in session.get_inputs()]
        for part in onnx_backend.equal_length_groups(tokens["input_ids"], 32):
            out[part] = session.run(None, {n: np.array([tokens[n][i] for i in part], np.int64) for n in names})[0]
        return out

    results = {}
    ref_docs = ref_queries = None
    for name, path in variants.items():
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
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
    emit("bench_int8_variants", {"prompts": len(docs), "threads": 2, "variants": results})


if __name__ == "__main__":
    main()
