"""A collection without natural-language queries of its own: the reference collection (replay for training,
held-out genres as the natural dev family), joint fusion tuning, and the base-model guard of the choice."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from prompt_retriever import load_corpus
from prompt_retriever.corpus import bundled_corpus_paths, write_corpus
from prompt_retriever.errors import InputError
from prompt_retriever.evaluation.choose import Proxy, choose_system
from prompt_retriever.evaluation.systems import build_systems, tune_adaptive, tune_jointly
from prompt_retriever.golden import generate_heuristic, split_by_prompt
from prompt_retriever.golden.heuristic import HeuristicConfig
from prompt_retriever.golden.natural import bundled_natural_path, read_natural_queries
from prompt_retriever.golden.reference import load_reference, merge_replay, proxy_genres
from prompt_retriever.pipeline.config import Context
from prompt_retriever.pipeline.stages_models import reference_facts
from prompt_retriever.search.runs import Run
from prompt_retriever.search.systems import System, length_buckets
from prompt_retriever.training import TrainConfig
from prompt_retriever.training.data import assert_no_heldout_in_training, training_rows

MINE = ("Horror", "Memoir", "Food Writing")  # genres standing for the user's collection


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


@pytest.fixture(scope="module")
def collection(corpus, tmp_path_factory):
    """A collection of three bundled genres, split, and a reference of the rest written to files."""
    tmp = tmp_path_factory.mktemp("ref")
    mine = [p for p in corpus if p.genre in MINE]
    rest = [p for p in corpus if p.genre not in MINE]
    write_corpus(rest, tmp / "reference.txt")
    gs = split_by_prompt(generate_heuristic(mine, HeuristicConfig(seed=1)), test=0.2, dev=0.2, seed=1)
    return gs, tmp / "reference.txt"


def test_the_reference_splits_by_whole_genres_into_replay_and_proxy(corpus):
    ref = load_reference(bundled_corpus_paths(), bundled_natural_path(), seed=7)
    replay_genres = {p.genre for p in ref.replay.corpus}
    proxy = {p.genre for p in ref.proxy.corpus}
    assert proxy == set(ref.proxy_genres) and not proxy & replay_genres
    assert 0.25 * len(corpus) <= len(ref.proxy.corpus) < 0.25 * len(corpus) + 24  # whole genres, just past 25%
    assert set(ref.replay.splits) == {"train"} and set(ref.proxy.splits) == {"dev"}
    proxy_ids = {p.id for p in ref.proxy.corpus}
    for q in ref.proxy.queries:  # relevance restricted to the proxy's own prompts
        assert q.source_id in proxy_ids and set(ref.proxy.qrels[q.id]) <= proxy_ids
    assert any(q.kind == "natural_judged" for q in ref.proxy.queries)
    again = load_reference(bundled_corpus_paths(), bundled_natural_path(), seed=7)
    assert again.proxy_genres == ref.proxy_genres and again.replay.fingerprint() == ref.replay.fingerprint()
    assert load_reference(bundled_corpus_paths(), bundled_natural_path(), seed=8).proxy_genres != ref.proxy_genres


def test_the_collections_own_prompts_never_enter_the_reference(corpus):
    mine = {p.id for p in corpus if p.genre in MINE}
    ref = load_reference(bundled_corpus_paths(), bundled_natural_path(), seed=1, exclude=mine)
    for part in (ref.replay, ref.proxy):
        assert not {p.id for p in part.corpus} & mine
        assert not any(set(rel) & mine for rel in part.qrels.values())
    judging_mine = [q for q in read_natural_queries(bundled_natural_path()) if q.relevant and set(q.relevant) & mine]
    kept = {q.text for part in (ref.replay, ref.proxy) for q in part.queries}
    assert judging_mine and not any(q.text in kept for q in judging_mine)  # a query judging them is left out


def test_proxy_genres_need_two_genres_and_keep_one_for_replay(corpus):
    with pytest.raises(InputError, match="two genres"):
        proxy_genres([p for p in corpus if p.genre == "Horror"], 0.25, 1)
    two = [p for p in corpus if p.genre in ("Horror", "Memoir")]
    assert len(proxy_genres(two, 0.9, 1)) == 1


def test_replay_joins_training_only_and_never_with_held_out_prompts(collection):
    gs, reference = collection
    ref = load_reference([reference], bundled_natural_path(), seed=1)
    merged = merge_replay(gs, ref.replay)
    assert merged.splits["dev"] == gs.splits["dev"] and merged.splits["test"] == gs.splits["test"]
    assert len(merged.splits["train"]) == len(gs.splits["train"]) + len(ref.replay.queries)
    assert len(gs.corpus) < len(merged.corpus) and gs.manifest.get("replay") is None  # the input is unchanged
    rows = training_rows(merged, TrainConfig())
    assert_no_heldout_in_training(rows, merged)
    assert {r.positive_id for r in rows} & {p.id for p in ref.replay.corpus}
    assert not {r.positive_id for r in rows} & {p.id for p in ref.proxy.corpus}  # the proxy is never trained on
    with pytest.raises(InputError, match="clash"):
        merge_replay(merged, ref.replay)


def test_replay_leaves_out_queries_whose_text_is_held_out(collection):
    """A reference query typed like one of the collection's dev or test queries (another kind, so another
    id) would train on a held-out text: it is left out and counted."""
    from dataclasses import replace

    from prompt_retriever.golden.goldenset import Query, make_query_id
    from prompt_retriever.golden.splits import check_leakage

    gs, reference = collection
    ref = load_reference([reference], bundled_natural_path(), seed=1)
    dev_text = gs.query_by_id[gs.splits["dev"][0]].text
    test_text = gs.query_by_id[gs.splits["test"][0]].text
    queries, qrels = list(ref.replay.queries), dict(ref.replay.qrels)
    for i, text in enumerate((f"  {dev_text.upper()} ", test_text.replace(" ", "  "))):
        old = queries[i]
        new = Query(make_query_id("natural", text), text, "natural", old.source_id)
        queries[i], qrels[new.id] = new, qrels.pop(old.id)
    train = [q.id for q in queries]
    replay = replace(ref.replay, queries=queries, qrels=qrels, splits={"train": train})
    merged = merge_replay(gs, replay)
    assert merged.manifest["replay"]["left_out_as_held_out_texts"] == 2
    assert len(merged.splits["train"]) == len(gs.splits["train"]) + len(queries) - 2
    check_leakage(merged)  # raised before: the same text in train and in dev or test
    # the report quotes what was trained on, not the reference's count before the left-outs
    ctx = Context(Path("unused"), Console(), [], golden=gs, reference=replace(ref, replay=replay))
    facts = reference_facts(ctx)
    assert facts["replay"]["queries"] == len(queries) - 2 == ref.describe()["replay"]["queries"] - 2
    assert facts["replay"]["left_out_as_held_out_texts"] == 2 and facts["proxy"] == ref.describe()["proxy"]


def test_a_length_bucket_without_enough_dev_queries_is_served_by_the_dense_side_alone(collection):
    gs, _ = collection
    (system,) = build_systems(["hybrid-adaptive"], gs.corpus)
    queries, qrels = gs.dev_judged()
    short = [(q, t) for q, t in queries if len(t.split()) <= 4]  # template queries: no long bucket at all
    alphas = tune_adaptive(system, short, {q: qrels[q] for q, _ in short}, min_queries=5)
    assert alphas[-1] == 1.0 and system.tuning["buckets"]["3"] == {"queries": 0, "alpha": 1.0, "fallback": "dense only"}


def test_joint_tuning_lets_the_reference_decide_the_long_bucket(collection):
    gs, reference = collection
    ref = load_reference([reference], bundled_natural_path(), seed=1)
    own = build_systems(["hybrid-adaptive", "hybrid"], gs.corpus)
    twins = build_systems(["hybrid-adaptive", "hybrid"], ref.proxy.corpus)
    tune_jointly(list(zip(own, twins, strict=True)), gs.dev_judged(), ref.proxy.dev_judged())
    assert twins[0].alphas == own[0].alphas and twins[1].alpha == own[1].alpha
    long = length_buckets([q.text for q in ref.proxy.queries], own[0].bounds).tolist().count(3)
    assert own[0].tuning["buckets"]["3"]["queries"] >= long > 20 and "fallback" not in own[0].tuning["buckets"]["3"]
    assert own[0].tuning["dev_sets"] == 2


class FixedSystem(System):
    """A system answering with fixed rankings (to test the choosing rule alone)."""

    kind = "dense"

    def __init__(self, name: str, hits: dict[str, list[str]]):
        self.name, self.hits = name, hits

    def search(self, queries, k: int, mask=None) -> Run:
        return {q: {pid: float(-i) for i, pid in enumerate(self.hits.get(q, [])[:k])} for q, _ in queries}


def test_a_system_below_the_base_model_on_natural_requests_is_never_chosen(collection):
    gs, reference = collection
    ref = load_reference([reference], bundled_natural_path(), seed=1)
    right = {q: sorted(rel, key=lambda p: -rel[p]) for q, rel in gs.qrels.items()}
    proxy_right = {q: sorted(rel, key=lambda p: -rel[p]) for q, rel in ref.proxy.qrels.items()}
    half = dict(list(proxy_right.items())[: len(proxy_right) // 2])
    # "tuned" is perfect on the collection's template dev queries and good on the proxy; the base is worse
    # on templates but perfect on the proxy's natural requests: the best mean is below the base there.
    systems = [FixedSystem("base", {}), FixedSystem("tuned", right)]
    twins = [FixedSystem("base", proxy_right), FixedSystem("tuned", half)]
    free = choose_system(systems, gs, proxy=Proxy(twins, ref.proxy))
    assert free.name == "tuned" and free.families == ["natural-reference", "template"]
    guarded = choose_system(systems, gs, proxy=Proxy(twins, ref.proxy), base="base")
    assert guarded.name == "base" and "below the base model on natural-reference" in guarded.excluded["tuned"]
