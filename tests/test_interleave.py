"""Team-draft interleaving (`feedback.interleave.team_draft`), by its properties over random rankings
(hypothesis): each team's picks keep their own ranking's order and are its best results not yet picked,
no result twice, the teams balanced while both rankings have results left, the list as long as it can be
up to k, identical rankings give that ranking back, and the same seed gives the same list."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prompt_retriever.feedback.interleave import CANDIDATE, CURRENT, Interleaving, team_draft

IDS = st.sampled_from([f"p-{i}" for i in range(12)])  # few ids: the two rankings overlap often
RANKING = st.lists(IDS, unique=True, max_size=12)
K = st.integers(min_value=1, max_value=14)
SEED = st.integers(min_value=0, max_value=2**32)


def picks(mixed: Interleaving, team: str) -> list[str]:
    return [i for i, t in zip(mixed.ids, mixed.teams, strict=True) if t == team]


@settings(max_examples=300, deadline=None)
@given(a=RANKING, b=RANKING, k=K, seed=SEED)
def test_each_team_picks_its_best_result_left_in_its_own_order(a, b, k, seed):
    mixed = team_draft(a, b, k, random.Random(seed))
    assert len(mixed.ids) == len(mixed.teams)
    assert len(set(mixed.ids)) == len(mixed.ids)  # no duplicates
    assert len(mixed.ids) == min(k, len(set(a) | set(b)))  # as long as it can be, up to k
    for team, ranking in ((CURRENT, a), (CANDIDATE, b)):
        mine = picks(mixed, team)
        assert set(mine) <= set(ranking)
        assert mine == sorted(mine, key=ranking.index)  # its own ranking's order
    for i, (pid, team) in enumerate(zip(mixed.ids, mixed.teams, strict=True)):
        ranking = a if team == CURRENT else b
        left = [x for x in ranking if x not in mixed.ids[:i]]
        assert pid == left[0]  # the team's highest-ranked result not yet in the list


@settings(max_examples=300, deadline=None)
@given(a=RANKING, b=RANKING, k=K, seed=SEED)
def test_the_teams_stay_balanced_while_both_rankings_have_results_left(a, b, k, seed):
    mixed = team_draft(a, b, k, random.Random(seed))
    sizes = {CURRENT: 0, CANDIDATE: 0}
    for i, team in enumerate(mixed.teams):
        shown = set(mixed.ids[:i])
        both_left = any(x not in shown for x in a) and any(x not in shown for x in b)
        sizes[team] += 1
        if both_left:
            assert abs(sizes[CURRENT] - sizes[CANDIDATE]) <= 1, (i, mixed)


@settings(max_examples=200, deadline=None)
@given(a=RANKING, k=K, seed=SEED)
def test_identical_rankings_give_that_ranking(a, k, seed):
    assert team_draft(a, list(a), k, random.Random(seed)).ids == tuple(a[:k])


@settings(max_examples=100, deadline=None)
@given(a=RANKING, b=RANKING, k=K, seed=SEED)
def test_the_same_seed_gives_the_same_interleaving(a, b, k, seed):
    assert team_draft(a, b, k, random.Random(seed)) == team_draft(a, b, k, random.Random(seed))


def test_a_ranking_that_runs_out_leaves_the_rest_to_the_other():
    mixed = team_draft(["a"], ["b", "c", "d"], 4, random.Random(1))
    assert sorted(mixed.ids) == ["a", "b", "c", "d"]
    assert picks(mixed, CURRENT) == ["a"] and picks(mixed, CANDIDATE) == ["b", "c", "d"]
    assert mixed.team_of(mixed.ids.index("a") + 1) == CURRENT
    assert team_draft([], [], 3, random.Random(0)) == Interleaving((), ())


def test_the_coin_decides_who_picks_first_about_half_the_time():
    firsts = [team_draft(["a", "b"], ["c", "d"], 2, random.Random(seed)).teams[0] for seed in range(400)]
    assert 150 < firsts.count(CANDIDATE) < 250
    # whoever went first, the other team picks second: one each
    assert all(sorted(team_draft(["a"], ["c"], 2, random.Random(s)).teams) == [CANDIDATE, CURRENT] for s in range(20))


def test_refuses_k_below_one_and_one_name_for_both_teams():
    with pytest.raises(ValueError, match="k must be at least 1"):
        team_draft(["a"], ["b"], 0, random.Random(0))
    with pytest.raises(ValueError, match="two names"):
        team_draft(["a"], ["b"], 1, random.Random(0), names=("x", "x"))
