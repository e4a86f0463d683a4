"""Golden query sets: queries with graded relevance judgments (qrels) over a corpus, and named splits.

On disk, the BEIR layout other IR tools read::

    DIR/corpus.jsonl      {"_id", "title", "text", "metadata": {"genre", "theme", "kind"}}
    DIR/queries.jsonl     {"_id", "text", "metadata": {"kind", "source_id"}}
    DIR/qrels/all.tsv     query-id <TAB> corpus-id <TAB> score   (with header); every judgment
    DIR/qrels/train.tsv   the same rows, for the queries of that split (after `split`)
    DIR/qrels/dev.tsv, DIR/qrels/test.tsv
    DIR/negatives.tsv     query-id <TAB> corpus-id <TAB> type (random | hard): judged non-relevant pairs
    DIR/manifest.json     generator, parameters, seed, counts, corpus fingerprint, split parameters
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..corpus import Prompt, corpus_fingerprint, csv_text, query_problem
from ..errors import InputError, MissingError, NotFoundError
from ..fileio import atomic_write_json, atomic_write_jsonl, atomic_write_text, sha256_text
from ..fileread import read_jsonl

Qrels = dict[str, dict[str, int]]
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    # genre | genre_theme | theme | title | keywords | genre_keywords | paraphrase | llm | handwritten
    kind: str
    source_id: str | None = None  # the prompt the query was made from, if any


def make_query_id(kind: str, text: str) -> str:
    return f"q-{sha256_text(kind + '|' + text.casefold())[:12]}"


@dataclass
class Negative:
    query_id: str
    prompt_id: str
    type: str  # random | hard


@dataclass
class GoldenSet:
    corpus: list[Prompt]
    queries: list[Query]
    qrels: Qrels
    splits: dict[str, list[str]] = field(default_factory=dict)  # split -> query ids
    negatives: list[Negative] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ views
    @property
    def query_by_id(self) -> dict[str, Query]:
        return {q.id: q for q in self.queries}

    @property
    def prompt_by_id(self) -> dict[str, Prompt]:
        """Prompts by id, built once per corpus list (rebuilt if `corpus` is replaced or changes length)."""
        key = (id(self.corpus), len(self.corpus))
        cached = self.__dict__.get("_prompt_by_id")
        if cached is None or cached[0] != key:
            cached = (key, {p.id: p for p in self.corpus})
            self.__dict__["_prompt_by_id"] = cached
        return cached[1]

    def split_queries(self, split: str | None) -> list[Query]:
        """Queries of a split (None or "all": every query)."""
        if split in (None, "all"):
            return list(self.queries)
        if split not in self.splits:
            have = ", ".join(self.splits) or "none (run `queries split` first)"
            raise MissingError(f"golden set has no split {split!r}; splits: {have}")
        wanted = set(self.splits[split])
        return [q for q in self.queries if q.id in wanted]

    def dev_judged(self) -> tuple[list[tuple[str, str]], Qrels] | None:
        """The dev split's queries as (query id, text) and their qrels, for tuning; None without a dev split."""
        qs = self.split_queries("dev") if self.splits.get("dev") else []
        return ([(q.id, q.text) for q in qs], {q.id: self.qrels[q.id] for q in qs}) if qs else None

    def prompt_split(self) -> dict[str, str]:
        """prompt id -> split, as recorded by a by-prompt split (empty before splitting)."""
        held = self.manifest.get("split", {}).get("prompts", {})
        out = {p.id: "train" for p in self.corpus} if held else {}
        for name, ids in held.items():
            for pid in ids:
                out[pid] = name
        return out

    def fingerprint(self) -> str:
        rows = sorted(f"{q.id}\t{q.text}\t{sorted(self.qrels.get(q.id, {}).items())}" for q in self.queries)
        return sha256_text(corpus_fingerprint(self.corpus) + "\n".join(rows))[:16]

    def validate(self) -> None:
        """Raise ValueError when qrels name unknown queries/prompts or a query has no relevant prompt."""
        pids = {p.id for p in self.corpus}
        qids = {q.id for q in self.queries}
        if len(qids) != len(self.queries):
            raise InputError("duplicate query ids")
        for qid, rels in self.qrels.items():
            if qid not in qids:
                raise InputError(f"qrels name unknown query {qid}")
            if unknown := set(rels) - pids:
                raise InputError(f"qrels of {qid} name unknown prompt(s) {sorted(unknown)[:3]}")
        if missing := [q.id for q in self.queries if not any(g > 0 for g in self.qrels.get(q.id, {}).values())]:
            raise InputError(f"{len(missing)} queries have no relevant prompt, e.g. {missing[0]}")
        for name, ids in self.splits.items():
            if unknown := set(ids) - qids:
                raise InputError(f"split {name} names unknown queries {sorted(unknown)[:3]}")

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        self.validate()
        atomic_write_jsonl(
            d / "corpus.jsonl",
            [
                {
                    "_id": p.id,
                    "title": p.title,
                    "text": p.text,
                    "metadata": {"genre": p.genre, "theme": p.theme, "kind": p.kind, "source": p.source},
                }
                for p in self.corpus
            ],
        )
        atomic_write_jsonl(
            d / "queries.jsonl",
            [
                {"_id": q.id, "text": q.text, "metadata": {"kind": q.kind, "source_id": q.source_id}}
                for q in self.queries
            ],
        )
        atomic_write_text(d / "qrels" / "all.tsv", _qrels_tsv(self.qrels, [q.id for q in self.queries]))
        for name in SPLITS:
            path = d / "qrels" / f"{name}.tsv"
            if name in self.splits:
                atomic_write_text(path, _qrels_tsv(self.qrels, self.splits[name]))
            elif path.exists():
                path.unlink()
        neg = "query-id\tcorpus-id\ttype\n" + "".join(
            f"{n.query_id}\t{n.prompt_id}\t{n.type}\n" for n in self.negatives
        )
        atomic_write_text(d / "negatives.tsv", neg)
        manifest = dict(self.manifest)
        manifest["counts"] = self.counts()
        manifest["corpus_fingerprint"] = corpus_fingerprint(self.corpus)
        manifest["fingerprint"] = self.fingerprint()
        self.manifest = manifest
        atomic_write_json(d / "manifest.json", manifest)  # written last: its presence means complete
        return d

    @classmethod
    def load(cls, directory: str | Path) -> GoldenSet:
        d = Path(directory)
        if not (d / "manifest.json").exists():
            raise NotFoundError(f"{d}: not a golden set (no manifest.json); create one with `queries generate`")
        import json

        manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
        corpus = [
            Prompt(
                id=r["_id"],
                genre=r["metadata"]["genre"],
                theme=r["metadata"]["theme"],
                title=r["title"],
                text=r["text"],
                kind=r["metadata"].get("kind"),
                source=r["metadata"].get("source"),
            )
            for r in read_jsonl(d / "corpus.jsonl")
        ]
        queries = [
            Query(r["_id"], r["text"], r["metadata"]["kind"], r["metadata"].get("source_id"))
            for r in read_jsonl(d / "queries.jsonl")
        ]
        qrels = read_qrels(d / "qrels" / "all.tsv")
        splits = {}
        for name in SPLITS:
            path = d / "qrels" / f"{name}.tsv"
            if path.exists():
                splits[name] = list(read_qrels(path))
        negatives = []
        if (d / "negatives.tsv").exists():
            with open(d / "negatives.tsv", encoding="utf-8") as fh:
                for row in csv.DictReader(fh, delimiter="\t"):
                    negatives.append(Negative(row["query-id"], row["corpus-id"], row["type"]))
        gs = cls(corpus, queries, qrels, splits, negatives, manifest)
        gs.validate()
        return gs

    def counts(self) -> dict:
        out = {
            "prompts": len(self.corpus),
            "queries": len(self.queries),
            "judgments": sum(len(r) for r in self.qrels.values()),
            "negatives": len(self.negatives),
            "queries_by_kind": dict(Counter(q.kind for q in self.queries).most_common()),
        }
        for name, ids in self.splits.items():
            out[f"queries_{name}"] = len(ids)
        return out

    def export_pairs_csv(self, path: str | Path, split: str | None = None) -> Path:
        """The seed project's flat CSV: query,context,relevance (positives graded, negatives 0). Text that a
        spreadsheet would run as a formula (`=HYPERLINK(...)`, `@SUM(...)`) is written with a leading
        apostrophe (`corpus.csv_text`); `queries import` reads it back as it was."""
        prompts = self.prompt_by_id
        qs = {q.id: q for q in self.split_queries(split)}
        rows: list[tuple[str, str, int | str]] = [("query", "context", "relevance")]
        for qid, q in qs.items():
            rows.extend((q.text, prompts[pid].text, grade) for pid, grade in sorted(self.qrels[qid].items()))
        rows.extend((qs[n.query_id].text, prompts[n.prompt_id].text, 0) for n in self.negatives if n.query_id in qs)
        return atomic_write_text(path, csv_text(rows))


def _qrels_tsv(qrels: Qrels, qids: list[str]) -> str:
    lines = ["query-id\tcorpus-id\tscore"]
    for qid in qids:
        for pid, grade in sorted(qrels.get(qid, {}).items()):
            lines.append(f"{qid}\t{pid}\t{grade}")
    return "\n".join(lines) + "\n"


def read_qrels(path: str | Path) -> Qrels:
    qrels: Qrels = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.rstrip("\n").split("\t")
            if n == 1 and parts[0] == "query-id":
                continue
            if len(parts) != 3:
                raise InputError(f"{path}:{n}: expected 3 tab-separated fields, got {len(parts)}")
            try:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
            except ValueError as exc:
                raise InputError(f"{path}:{n}: score {parts[2]!r} is not an integer") from exc
    return qrels


def summarize(gs: GoldenSet) -> dict:
    """Queries per kind and relevant prompts per query, for every split."""
    out = {}
    names = ["all", *gs.splits]
    for name in names:
        qs = gs.split_queries(name)
        rel = [sum(1 for g in gs.qrels[q.id].values() if g > 0) for q in qs]
        out[name] = {
            "queries": len(qs),
            "by_kind": dict(Counter(q.kind for q in qs).most_common()),
            "relevant_per_query": {
                "mean": round(sum(rel) / len(rel), 2) if rel else 0,
                "min": min(rel, default=0),
                "max": max(rel, default=0),
            },
        }
    return out


def bundled_handwritten_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("prompt_retriever") / "data" / "handwritten_queries.jsonl"))


def load_judged_queries(
    path: str | Path, corpus: list[Prompt], *, kind: str = "handwritten", split: str = "test"
) -> GoldenSet:
    """A golden set from a JSONL of {"query": ..., "relevant": {title or prompt id: grade}} lines.

    Every query goes to `split` (these sets are for evaluation only). Unknown titles are an error
    naming the line.
    """
    by_title = {p.title.casefold(): p.id for p in corpus}
    ids = {p.id for p in corpus}
    queries: list[Query] = []
    qrels: Qrels = {}
    for n, row in enumerate(read_jsonl(path), 1):
        text = " ".join(str(row.get("query", "")).split())
        rel = row.get("relevant")
        if not text or not isinstance(rel, dict) or not rel:
            raise InputError(f"{path}:{n}: need a non-empty 'query' and a 'relevant' object")
        if problem := query_problem(text):
            raise InputError(f"{path}:{n}: {problem}")
        judged = {}
        for key, grade in rel.items():
            pid = key if key in ids else by_title.get(str(key).casefold())
            if pid is None:
                raise InputError(f"{path}:{n}: relevant prompt {key!r} is not in the corpus")
            judged[pid] = int(grade)
        qid = make_query_id(kind, text)
        if qid in qrels:
            raise InputError(f"{path}:{n}: duplicate query {text!r}")
        queries.append(Query(qid, text, kind, None))
        qrels[qid] = judged
    manifest = {"generator": kind, "source": str(path), "parameters": {}}
    gs = GoldenSet(list(corpus), queries, qrels, {split: [q.id for q in queries]}, [], manifest)
    gs.validate()
    return gs


def load_query_set(
    path: str | Path | None,
    corpus: list[Prompt],
    *,
    test_prompts_of: GoldenSet | None = None,
    dev_from: GoldenSet | None = None,
) -> GoldenSet | None:
    """A query set to evaluate on (e.g. a second, differently made one), as a new golden set.

    `path`: a golden set folder, or a judged JSONL file (`load_judged_queries`) over `corpus`. None: the
    bundled hand-written queries, or None when they do not fit `corpus` (a given path that does not fit
    is an error). `test_prompts_of`: keep, as the test split, only the folder's queries made from that
    golden set's held-out test prompts (e.g. LLM queries of the test prompts). `dev_from`: add that
    golden set's dev queries and dev split, e.g. to tune hybrids on. Nothing passed in is changed.
    """
    from dataclasses import replace

    if path is None:
        try:
            gs = load_judged_queries(bundled_handwritten_path(), corpus)
        except (ValueError, OSError):
            return None
    elif Path(path).is_dir():
        gs = GoldenSet.load(path)
    else:
        gs = load_judged_queries(path, corpus)
    if test_prompts_of is not None:
        held = set(test_prompts_of.manifest["split"]["prompts"]["test"])
        gs = replace(gs, splits={"test": [q.id for q in gs.queries if q.source_id in held]})
    if dev_from is not None:
        dev = list(dev_from.splits.get("dev", []))
        wanted = set(dev)
        gs = replace(
            gs,
            queries=gs.queries + [q for q in dev_from.queries if q.id in wanted],
            qrels={**gs.qrels, **{qid: dev_from.qrels[qid] for qid in dev}},
            splits={**gs.splits, "dev": dev},
        )
    return gs
