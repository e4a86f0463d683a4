"""`SystemSpec`: which system a `PromptRetriever` answers with and its fusion parameters, checked field
by field when read from a stored file (`system_problem`), and `system_label`, its human name.

>>> SystemSpec("hybrid-adaptive", alphas=(0.2, 0.5, 0.7, 0.9)).uses_bm25
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import InputError
from .candidates import ADAPTIVE_BOUNDS, DEFAULT_DEPTH

KINDS = ("dense", "bm25", "hybrid", "hybrid-rrf", "hybrid-adaptive")
# How the weighted hybrids fuse: `corpus`, every prompt (min-max over the whole corpus; candidates of each
# side's top `depth` only where they prove the same answer); `candidates`, the union of each side's top
# `depth` and nothing else (still normalised with the whole corpus's bounds): what an engine answers in one
# round at any size, so a run chosen and measured this way is served from the engine as measured. The
# union is taken at `depth` whatever k is asked (a k beyond it gets the union: fewer results), so a longer
# answer starts with the shorter one and the 10 that metrics at 10 score are the 10 served.
FUSIONS = ("corpus", "candidates")
WEIGHTED_KINDS = ("hybrid", "hybrid-adaptive")  # the kinds `fusion` applies to


@dataclass(frozen=True)
class SystemSpec:
    """Which system a `PromptRetriever` answers with, and its fusion parameters.

    `dense` (cosine over the model's embeddings), `bm25`, `hybrid` (alpha * dense + (1 - alpha) * BM25,
    min-max normalised), `hybrid-rrf` (reciprocal rank fusion of the two, k_rrf) or `hybrid-adaptive` (the
    weighted hybrid with one alpha per query-length bucket, `alphas` and `bounds`). `depth`: how many
    candidates each side of a hybrid gives its fusion (`candidates`); a stored system without it gets
    `DEFAULT_DEPTH`. `fusion`: what the weighted hybrids fuse (`FUSIONS`); a stored system without it
    fuses the whole corpus.
    """

    kind: str = "dense"
    alpha: float = 0.5
    k_rrf: int = 60
    depth: int = DEFAULT_DEPTH
    alphas: tuple[float, ...] = ()  # hybrid-adaptive: alpha per query-length bucket
    bounds: tuple[int, ...] = ADAPTIVE_BOUNDS
    fusion: str = "corpus"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"unknown system {self.kind!r}: use {', '.join(KINDS)}")
        if self.fusion not in FUSIONS:
            raise InputError(f"unknown fusion {self.fusion!r}: use {', '.join(FUSIONS)}")
        object.__setattr__(self, "alphas", tuple(float(a) for a in self.alphas))
        object.__setattr__(self, "bounds", tuple(int(b) for b in self.bounds))
        if not all(0.0 <= a <= 1.0 for a in (self.alpha, *self.alphas)):
            raise InputError(f"alpha must be in [0, 1], got {self.alpha} {self.alphas}")
        if self.kind == "hybrid-adaptive" and len(self.alphas) != len(self.bounds) + 1:
            object.__setattr__(self, "alphas", (self.alpha,) * (len(self.bounds) + 1))
        if self.k_rrf < 1 or self.depth < 1:
            raise InputError("k_rrf and depth must be at least 1")

    @classmethod
    def from_dict(cls, data: dict) -> SystemSpec:
        """A spec from stored JSON (a manifest, a run's system.json), every field's type and range checked
        first (`system_problem`): a forged `"depth": 1.5` or `"bounds": ["x"]` is one InputError here,
        never a TypeError at search time."""
        if not isinstance(data, dict):
            raise InputError(f"a system must be an object, got {type(data).__name__}")
        if problem := system_problem(data):
            raise InputError(problem)
        known = {"kind", "alpha", "k_rrf", "depth", "alphas", "bounds", "fusion"}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict:
        """The fields as stored; `fusion` only when it is not the default (files written before it existed
        read the same)."""
        out = asdict(self)
        if out["fusion"] == "corpus":
            del out["fusion"]
        return out

    @property
    def uses_bm25(self) -> bool:
        return self.kind != "dense"

    @property
    def fuses_candidates(self) -> bool:
        """A weighted hybrid whose fusion is the union's best (`FUSIONS`), answered in one round."""
        return self.fusion == "candidates" and self.kind in WEIGHTED_KINDS


MAX_K_RRF = 1_000_000
MAX_DEPTH = 1_000_000
MAX_BUCKETS = 32
MAX_BOUND = 100_000  # words in a query


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_unit(value: object) -> bool:
    """A real number in [0, 1] (finite; not a bool, not a string)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def system_problem(data: dict) -> str | None:
    """What is wrong with a stored system's fields (None: nothing): `kind` one of `KINDS`, `alpha` and
    each of `alphas` a number in [0, 1], `k_rrf` and `depth` integers from 1, `bounds` increasing
    integers, one alpha per bucket, `fusion` one of `FUSIONS`."""
    kind = data.get("kind", "dense")
    if not isinstance(kind, str) or kind not in KINDS:
        return f"kind {kind!r:.40}: use one of {', '.join(KINDS)}"
    fusion = data.get("fusion", "corpus")
    if not isinstance(fusion, str) or fusion not in FUSIONS:
        return f"fusion {fusion!r:.40}: use one of {', '.join(FUSIONS)}"
    if "alpha" in data and not _is_unit(data["alpha"]):
        return f"alpha {data['alpha']!r:.40}: a number in [0, 1] expected"
    for name, top in (("k_rrf", MAX_K_RRF), ("depth", MAX_DEPTH)):
        if name in data and not (_is_int(data[name]) and 1 <= data[name] <= top):
            return f"{name} {data[name]!r:.40}: an integer in 1..{top:,} expected"
    bounds = data.get("bounds", ADAPTIVE_BOUNDS)
    if (
        not isinstance(bounds, (list, tuple))
        or not 1 <= len(bounds) <= MAX_BUCKETS
        or not all(_is_int(b) and 0 <= b <= MAX_BOUND for b in bounds)
        or any(a >= b for a, b in zip(bounds, bounds[1:], strict=False))
    ):
        return f"bounds {bounds!r:.60}: increasing integers in 0..{MAX_BOUND:,} expected"
    alphas = data.get("alphas", [])
    if not isinstance(alphas, (list, tuple)) or not all(_is_unit(a) for a in alphas):
        return f"alphas {alphas!r:.60}: numbers in [0, 1] expected"
    if kind == "hybrid-adaptive" and alphas and len(alphas) != len(bounds) + 1:
        return f"alphas: {len(alphas)} given, one per length bucket ({len(bounds) + 1}) expected"
    return None


def system_label(kind: str, model: str) -> str:
    """A human name for a system: "all-MiniLM-L6-v2", "BM25", "all-MiniLM-L6-v2 + BM25 hybrid", ..."""
    name = Path(model).name if Path(model).is_dir() else model
    return {
        "dense": name,
        "bm25": "BM25",
        "hybrid": f"{name} + BM25 hybrid",
        "hybrid-rrf": f"{name} + BM25 rank fusion",
        "hybrid-adaptive": f"{name} + BM25 query-adaptive hybrid",
    }[kind]
