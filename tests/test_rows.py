"""Appending rows in amortised constant time (search/rows.py) and what it must never do: write into rows a
view handed out earlier can see. Checked on arrays, then on real retrievers (the bundled model) copied and
changed the way a server's live update does, with an older copy still answering."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from prompt_retriever.corpus import load_corpus
from prompt_retriever.search.retriever import PromptRetriever
from prompt_retriever.search.rows import append_rows, take_rows
from prompt_retriever.search.stores import ExactStore


def rows(n: int, start: float = 0.0) -> np.ndarray:
    return (np.arange(n * 3, dtype=np.float32).reshape(n, 3) + start) / 7


def test_appends_go_into_spare_rows_until_they_run_out():
    a, spare = append_rows(rows(4), rows(1, 100), None)
    buffer = spare.buffer
    assert len(buffer) >= 5 + 1024 and np.array_equal(a, np.vstack([rows(4), rows(1, 100)]))
    m = a
    for i in range(len(buffer) - 5):
        m, spare = append_rows(m, rows(1, 200 + i), spare)
    assert spare.buffer is buffer and len(m) == len(buffer)  # no copy while spare rows lasted
    m2, spare2 = append_rows(m, rows(2, 999), spare)
    assert spare2.buffer is not buffer and len(spare2.buffer) >= int(len(m2) * 1.25)
    assert np.array_equal(m2[: len(m)], m) and np.array_equal(m2[len(m) :], rows(2, 999))


def test_an_earlier_view_is_never_written_into():
    base, spare = append_rows(rows(3), rows(1, 10), None)
    before = base.copy()
    a, _ = append_rows(base, rows(1, 20), spare)  # one copy of the index appends first: in place
    b, spare_b = append_rows(base, rows(1, 30), spare)  # another copy of the same view: copied, not clobbered
    assert a.base is spare.buffer and spare_b is not spare
    assert np.array_equal(a[-1], rows(1, 20)[0]) and np.array_equal(b[-1], rows(1, 30)[0])
    assert np.array_equal(base, before) and np.array_equal(a[:4], before) and np.array_equal(b[:4], before)
    c, _ = append_rows(np.ascontiguousarray(base), rows(1, 40), spare)  # not a view of the buffer: copied
    assert np.array_equal(a[-1], rows(1, 20)[0]) and np.array_equal(c[-1], rows(1, 40)[0])
    with pytest.raises(ValueError, match="shape"):
        append_rows(base, np.zeros((1, 4), np.float32), spare)


def test_concurrent_appends_from_one_view_each_keep_their_rows():
    base, spare = append_rows(rows(2), rows(1, 5), None)
    out: dict[int, np.ndarray] = {}

    def append(i: int) -> None:
        out[i], _ = append_rows(base, rows(1, 100 * i), spare)

    threads = [threading.Thread(target=append, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, m in out.items():
        assert np.array_equal(m[-1], rows(1, 100 * i)[0]) and np.array_equal(m[:3], base)
    assert sum(m.base is spare.buffer for m in out.values()) == 1  # one went in place, the others copied


def test_take_rows_leaves_room_for_the_update_that_follows():
    m = rows(6)
    kept, spare = take_rows(m, [0, 2, 5])
    assert np.array_equal(kept, m[[0, 2, 5]]) and len(spare.buffer) > 3
    after, same = append_rows(kept, rows(1, 50), spare)
    assert same is spare and after.base is spare.buffer
    big = rows(300)
    scattered = np.arange(0, 300, 2)  # many runs: a plain copy, no spare rows
    taken, none = take_rows(big, scattered)
    assert none is None and np.array_equal(taken, big[scattered])
    backwards = [5, 6, 7, 1, 2, 3]
    assert np.array_equal(take_rows(big, backwards)[0], big[backwards])


@pytest.fixture(scope="module")
def prompts():
    return load_corpus()[:40]


def test_retriever_copies_changed_in_turn_keep_their_own_rows(prompts):
    """A server's live updates: copy, change, swap, while the older copy still answers."""
    served = PromptRetriever().index(prompts[:30])
    rows_before = served.embeddings.copy()
    first = served.copy()
    first.add(prompts[30:32])  # appended (the first append copies into a buffer with spare rows)
    second = first.copy()
    second.add(prompts[32:33])  # into first's spare rows: first still sees 32 rows
    rival_prompt = replace(prompts[33], id="rival")
    rival = first.copy()
    rival.add([rival_prompt])  # from the same view as `second`: must not clobber it
    assert np.array_equal(served.embeddings, rows_before) and len(first.embeddings) == 32
    assert second.embeddings.base is first.embeddings.base  # no copy of every row for one prompt
    ref = PromptRetriever().index([*prompts[:33], rival_prompt])
    vector = {p.id: row for p, row in zip(ref.prompts, ref.embeddings, strict=True)}
    for r in (served, first, second, rival):
        own = np.stack([vector[p.id] for p in r.prompts])
        assert np.allclose(r.embeddings, own, atol=1e-6)  # every row its prompt's own vector
        assert len(r.store) == len(r.prompts) and np.array_equal(r.store.vectors, r.embeddings)
    top = second.search(prompts[32].text, k=1)[0].prompt.id
    assert top == prompts[32].id and rival.search(prompts[33].text, k=1)[0].prompt.id == "rival"
    assert "rival" not in {p.id for p in second.prompts} and served.get(prompts[30].id) is None


def test_an_update_and_a_removal_after_appends(prompts):
    r = PromptRetriever().index(prompts[:20])
    r.add(prompts[20:22])
    older = r.copy()
    r.add([replace(prompts[5], text=prompts[21].text)])  # an update: the row taken out, the new one appended
    r.remove([prompts[0].id])
    again = PromptRetriever().index(r.prompts)
    assert np.allclose(r.embeddings, again.embeddings, atol=1e-6)
    assert [p.id for p in r.prompts] == [p.id for p in again.prompts] and len(r.store) == 21
    assert len(older.embeddings) == 22 and older.get(prompts[0].id) is not None


def test_exact_store_copy_is_copy_on_write():
    store = ExactStore()
    store.upsert(["a", "b"], rows(2), [{"genre": "Horror"}, {"genre": "Romance"}])
    twin = store.copy()
    twin.upsert(["c"], rows(1, 9), [{"genre": "Horror"}])
    twin.delete(["a"])
    assert store.ids == ["a", "b"] and np.array_equal(store.vectors, rows(2)) and len(twin) == 2
    assert [i for i, _ in store.search_many(rows(1, 9), 5, genre="horror")[0]] == ["a"]
    assert sorted(i for i, _ in twin.search_many(rows(1, 9), 5, genre="horror")[0]) == ["c"]
