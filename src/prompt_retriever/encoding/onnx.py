"""ONNX Runtime inference for CPU: export once from the local weights (no download), optionally int8.

The exported graph contains the transformer, mean pooling and L2 normalisation, so its output is the
sentence embedding. Models are cached per weights fingerprint under `<cache>/onnx/`; the int8 variant
is made with ONNX Runtime's dynamic quantisation (weights int8 per output channel, activations quantised
at run time).
Only mean-pooling BERT-style sentence-transformers models are supported (what the registry ships).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..fileio import cache_root, sha256_text
from .models import load_model, model_fingerprint

_lock = threading.Lock()
# Part of the cache keys: a changed export replaces cached files and vectors (2: plain attention;
# 3: per-channel int8 weights, as fast and closer to fp32, see benchmarks/bench_int8_variants.py).
EXPORT_VERSION = "3"


def _check_pooling(model) -> None:
    pooling = model[1] if len(model) > 1 else None
    mode = getattr(pooling, "pooling_mode", None)
    mean = mode == "mean" or (isinstance(mode, (list, tuple)) and list(mode) == ["mean"])
    mean = mean or getattr(pooling, "pooling_mode_mean_tokens", None) is True  # older sentence-transformers
    if not mean or len(model) > 3:
        raise InputError("the ONNX backend supports mean-pooling sentence-transformers models only")


def export_onnx(model_name: str, quantized: bool = False, allow_download: bool | None = None) -> Path:
    """Path of the ONNX file for `model_name` (exported and cached on first use)."""
    fp = model_fingerprint(model_name)
    folder = cache_root() / "onnx" / sha256_text(f"{fp}|{EXPORT_VERSION}")[:16]
    target = folder / ("model-int8.onnx" if quantized else "model.onnx")
    with _lock:
        if target.exists():
            return target
        fp32 = folder / "model.onnx"
        if not fp32.exists():
            _export_fp32(model_name, fp32, allow_download)
        if quantized:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            work = Path(tempfile.mkdtemp(prefix=".quant-", dir=folder))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    quantize_dynamic(str(fp32), str(work / "q.onnx"), weight_type=QuantType.QInt8, per_channel=True)
                (work / "q.onnx").replace(target)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        (folder / "source.json").write_text(json.dumps({"model": model_name, "fingerprint": fp}))
        return target


def _export_fp32(model_name: str, target: Path, allow_download: bool | None = None) -> None:
    model = load_model(model_name, allow_download=allow_download)
    _check_pooling(model)
    transformer = model[0].auto_model
    # Plain (eager) attention exports as MatMul/Softmax with an additive mask. The SDPA path exports
    # extra Where/IsNaN nodes (a visible share of int8 run time in ORT's profiler).
    previous = transformer.config._attn_implementation
    try:
        _set_attention(transformer, "eager")
        _export_embedder(model, transformer, target)
    finally:
        _set_attention(transformer, previous)


def _set_attention(transformer, name: str) -> None:
    if hasattr(transformer, "set_attn_implementation"):
        transformer.set_attn_implementation(name)
    else:
        transformer.config._attn_implementation = name


def _export_embedder(model, transformer, target: Path) -> None:
    import torch

    class Embedder(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    sample = model.tokenizer(
        ["a haunted lighthouse", "a memoir about food and family"], padding=True, return_tensors="pt"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.onnx")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Embedder(transformer).eval(),
            tuple(sample[n] for n in names),
            str(tmp),
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "sentence_embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    tmp.replace(target)


def inference_session(path: str | Path, threads: int, **options: object):
    """An ONNX Runtime CPU session with `threads` intra-op threads (and any other `SessionOptions` set)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    for key, value in options.items():
        setattr(opts, key, value)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def batch_feed(tokens, names, idx) -> dict[str, np.ndarray]:
    """The session inputs `names` for the texts at `idx` of a tokeniser's output (one equal-length group)."""
    return {n: np.array([tokens[n][i] for i in idx], dtype=np.int64) for n in names}


def equal_length_groups(token_ids, batch_size: int) -> list[list[int]]:
    """Indices of the texts in batches of equal token length (longest first, at most `batch_size`
    each), so that no batch needs padding."""
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(token_ids):
        by_length.setdefault(len(ids), []).append(i)
    return [
        idx[start : start + batch_size]
        for _, idx in sorted(by_length.items(), reverse=True)
        for start in range(0, len(idx), batch_size)
    ]


class OnnxEncoder:
    """Drop-in for the part of SentenceTransformer that `Encoder` uses: `encode(texts, batch_size=...)`."""

    def __init__(
        self,
        model_name: str,
        quantized: bool = False,
        threads: int | None = None,
        allow_download: bool | None = None,
    ):
        st = load_model(model_name, allow_download=allow_download)
        self.tokenizer = st.tokenizer
        self.max_length = st.max_seq_length
        self.dim = int(
            st.get_embedding_dimension()
            if hasattr(st, "get_embedding_dimension")
            else st.get_sentence_embedding_dimension()
        )
        self.path = export_onnx(model_name, quantized, allow_download)
        # transformers may reconfigure a fast tokenizer's truncation/padding on a call, which fails
        # ("Already borrowed") if another thread is inside it: one tokenising call at a time.
        self._tokenizer_lock = threading.Lock()
        self.set_threads(threads)

    def set_threads(self, threads: int | None) -> None:
        """Use `threads` cores per `encode` call (None: all). A call's batches run one per core, each on a
        one-thread session, which outpaces one session spreading every batch over the cores; a call with a
        single batch (a query) uses a session with `threads` intra-op threads instead, for latency."""
        self.threads = max(1, threads or os.cpu_count() or 1)
        self.session = inference_session(self.path, self.threads)
        self._per_core = inference_session(self.path, 1) if self.threads > 1 else self.session
        self.inputs = {i.name for i in self.session.get_inputs()}

    def get_embedding_dimension(self) -> int:
        return self.dim

    def encode(self, texts, batch_size: int = 32, show_progress_bar: bool = False, **_: object) -> np.ndarray:
        """Embeddings in input order. Texts are tokenised once and run in groups of equal token length
        (at most `batch_size` each), so no batch carries padding: for short queries in a server batch
        that is less work than padding to the longest."""
        texts = list(texts)
        out = np.empty((len(texts), self.dim), np.float32)
        if not texts:
            return out
        with self._tokenizer_lock:
            tokens = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in self.inputs and n in tokens]
        groups = equal_length_groups(tokens["input_ids"], batch_size)

        def run(idx: list[int], session) -> int:
            out[idx] = session.run(None, batch_feed(tokens, names, idx))[0]
            return 1

        progress = None
        if show_progress_bar:
            from tqdm.auto import tqdm

            progress = tqdm(total=len(groups), desc="Batches", unit="batch")
        if len(groups) == 1 or self.threads == 1:
            for idx in groups:
                run(idx, self.session)
                if progress is not None:
                    progress.update()
        else:
            with ThreadPoolExecutor(self.threads) as pool:  # ONNX Runtime releases the GIL while it runs
                for done in pool.map(lambda idx: run(idx, self._per_core), groups):
                    if progress is not None:
                        progress.update(done)
        if progress is not None:
            progress.close()
        return out
