"""LLM-written natural-language queries for a user's own prompts: the checks on handcrafted cases, the
`style: query` parser, the template's examples, and whole runs against a real local chat-completions
server (tests/llm_server.py)."""

from __future__ import annotations

import doctest
import re
from collections import Counter
from pathlib import Path

import pytest
from llm_server import FakeChatServer, completion

from prompt_retriever.corpus import Prompt, load_corpus
from prompt_retriever.errors import LLMError
from prompt_retriever.evaluation.choose import family_of
from prompt_retriever.golden import (
    LLMConfig,
    LLMQueryGenerator,
    NaturalQueryGenerator,
    check_natural_query,
    copied_phrase,
    document_frequency,
    generate_natural,
    llm_natural,
    natural_template,
    parse_styled_lines,
    rare_df_threshold,
    rare_words_used,
    title_words_used,
)
from prompt_retriever.golden.natural import STYLES, bundled_natural_path, read_natural_queries

KEEPER = Prompt(
    "keeper",
    "Horror",
    "Grief",
    "The Keeper's Lamp",
    "The lighthouse keeper died in March, yet every night the lamp still turns on. "
    "His daughter climbs the stairs to see who is up there.",
)


@pytest.fixture(scope="module")
def prompts12():
    return load_corpus(Path(__file__).parent / "data" / "golden12.txt")


def test_docstring_examples_hold():
    assert doctest.testmod(llm_natural).failed == 0


# ---------------------------------------------------------------- the checks, on handcrafted cases
def test_a_title_word_is_caught_by_its_stem_and_stop_words_are_not():
    assert title_words_used("two keepers and a haunted lamp", KEEPER.title) == ["keepers", "lamp"]
    assert title_words_used("THE LAMP", KEEPER.title) == ["lamp"]  # case-insensitive
    assert title_words_used("the story of a lighthouse", KEEPER.title) == []  # "the" is a stop word


def test_a_rare_word_of_the_text_is_caught_and_a_common_one_is_not(prompts12):
    df = document_frequency(prompts12)
    min_df = rare_df_threshold(len(prompts12))
    assert min_df == 2  # in 12 prompts: a word that only this prompt uses
    keeper = next(p for p in prompts12 if p.title == "The Keeper's Lamp")
    # "march" (a month, here a name) is used by this prompt alone; "night" by two prompts
    assert rare_words_used("a march night in a tower", keeper.text, df, min_df) == ["march"]
    assert rare_words_used("a haunted tower", keeper.text, df, min_df) == []  # not words of the prompt
    assert rare_df_threshold(648) == 6 and rare_df_threshold(0) == 2


def test_a_copied_four_word_phrase_is_caught_three_words_are_not():
    assert copied_phrase("a girl CLIMBS the Stairs TO the top", KEEPER.text) == "climbs the stairs to"
    assert copied_phrase("she climbs the stairs at dusk", KEEPER.text) is None  # three words only
    assert copied_phrase("why the keeper's lamp burns", KEEPER.title) is None
    assert copied_phrase("a tale of Teeth, in a jar!", KEEPER.text, "Teeth in a Jar") == "teeth in a jar"  # the title
    assert copied_phrase("who is up there", KEEPER.text) is None  # a run of stop words only


def test_check_natural_query_names_the_first_reason_and_keeps_a_clean_query():
    df = document_frequency([KEEPER, Prompt("b", "g", "t", "Other", "Every night the tower stands.")])
    assert check_natural_query("his daughter climbs the stairs", KEEPER, df, 2) == (
        "copied phrase",
        "his daughter climbs the",
    )
    assert check_natural_query("a haunted lamp at sea", KEEPER, df, 2) == ("title word", "lamp")
    assert check_natural_query("a ghost in march", KEEPER, df, 2) == ("rare word of the prompt", "march")
    assert check_natural_query("a ghost story about a parent who never really left", KEEPER, df, 2) is None


def test_parser_accepts_exactly_the_six_labels():
    raw = (
        "Here are your queries:\n"
        "1. Situation: a widow and a ghost\n"
        "**Mood**: \u201ceerie, hushed\u201d.\n"
        "- craft: told in letters\n"
        "limerick: a funny one\n"
        "just a line without a label\n"
        "question:   \n"
        "thematic: what grief keeps: and what it lets go\n"
        "\n"
    )
    pairs, dropped = parse_styled_lines(raw)
    assert pairs == [
        ("situation", "a widow and a ghost"),
        ("mood", "eerie, hushed"),
        ("craft", "told in letters"),
        ("thematic", "what grief keeps: and what it lets go"),
    ]
    assert Counter(reason for reason, _ in dropped) == {
        "unknown style label": 2,
        "no style label": 1,
        "empty query": 1,
    }
    assert ("unknown style label", "limerick: a funny one") in dropped


# ---------------------------------------------------------------- the template
def test_template_examples_are_real_bundled_queries_of_each_style():
    template = natural_template()
    lines = re.findall(rf"^({'|'.join(STYLES)}): (.+)$", template, re.M)
    per_style = Counter(style for style, _ in lines)
    assert set(per_style) == set(STYLES) and all(2 <= n <= 3 for n in per_style.values())
    bundled = {(q.style, q.text.casefold()): q.prompt_id for q in read_natural_queries(bundled_natural_path())}
    sources = [bundled.get((style, text.casefold())) for style, text in lines]
    assert None not in sources, "every example is a bundled natural query of its style"
    assert len(set(sources)) == len(sources), "one example per prompt"


def test_a_prompt_is_never_shown_its_own_bundled_queries_as_examples(tmp_path):
    corpus = {p.id: p for p in load_corpus()}
    gen = NaturalQueryGenerator(LLMConfig("http://127.0.0.1:9/v1", "m", cache_dir=tmp_path))
    source = "the-woman-who-tends-the-graves-73dbddad"  # gave the template its first mood example
    own = "mood: a gentle, melancholy portrait of someone caring for the resting places of the dead"
    other = "mood: indignant, self-mocking, secretly pleased"
    assert own in gen._render(corpus["table-for-one-c728628d"])
    rendered = gen._render(corpus[source])
    assert own not in rendered and other in rendered
    assert corpus[source].text in rendered


# ---------------------------------------------------------------- whole runs against a local server
MARKS = ["amber", "cobalt", "crimson", "olive", "violet", "scarlet", "ivory", "indigo", "copper", "silver", "jade"]
MARKS.append("coral")


def natural_responder(titles):
    """Per prompt: six clean lines (one per style) among scripted bad ones."""
    mark = dict(zip(sorted(titles), MARKS, strict=True))

    def respond(body, n):
        content = body["messages"][0]["content"]
        title = content.split("Title: ")[1].split("\n")[0]
        text = content.split("Prompt: ")[1].split("\n")[0]
        m = mark[title]
        title_word = next(w for w in re.findall(r"[A-Za-z]+", title) if w.lower() not in {"the", "in", "a"})
        lines = [
            "Sure! Here are your queries:",  # unknown style label
            f"situation: ordinary people facing a quiet loss in a {m} season",
            f"mood: eerie {title_word.lower()} tale",  # title word
            f"mood: bittersweet and {m}, hopeful underneath",
            f"craft: {' '.join(text.split()[:4])} tale",  # copied phrase
            f"craft: a vignette told in {m} fragments",
            f"question: any tales about a {m} kind of longing?",
            f"thematic: what we owe the {m} past",
            f"constrained: under 800 words, for teenage readers, in a {m} palette",
            "limerick: a funny one",  # unknown style label
            "no label here at all",  # no style label
            f"situation: ordinary people facing a quiet loss in a {m} season",  # duplicate
        ]
        if title == "The Keeper's Lamp":
            lines.append("question: any tales set one march?")  # rare word of the prompt
        return (200, {}, completion("\n".join(lines)), 0.0)

    return respond


def test_generate_natural_end_to_end_then_from_the_cache(tmp_path, prompts12):
    cfg = LLMConfig("", "tiny", cache_dir=tmp_path / "cache", concurrency=3, seed=7)
    with FakeChatServer(natural_responder([p.title for p in prompts12])) as srv:
        cfg.base_url = srv.base_url
        gs, rep = generate_natural(prompts12, cfg, progress=False)
        assert len(srv.requests) == 12 and rep.generated == 12 and not rep.failed
        assert "Title: " in srv.requests[0]["messages"][0]["content"]
        assert srv.requests[0]["max_tokens"] >= 300  # six queries do not fit the client's default 256

        assert len(gs.queries) == rep.kept == 72
        assert {q.kind for q in gs.queries} == {"natural"}
        assert {family_of(q.kind) for q in gs.queries} == {"natural"}
        assert all(gs.qrels[q.id] == {q.source_id: 2} for q in gs.queries)
        styles = gs.manifest["styles"]
        assert set(styles) == {q.id for q in gs.queries}
        assert Counter(styles.values()) == dict.fromkeys(STYLES, 12) == rep.by_style
        for p in prompts12:
            assert sorted(styles[q.id] for q in gs.queries if q.source_id == p.id) == sorted(STYLES)
        assert rep.dropped == {
            "unknown style label": 24,
            "no style label": 12,
            "title word": 12,
            "copied phrase": 12,
            "duplicate query": 12,
            "rare word of the prompt": 1,
        }
        assert gs.manifest["dropped"] == dict(rep.dropped)
        assert any("march" in e for e in rep.examples["rare word of the prompt"])
        assert all(len(v) <= 3 for v in rep.examples.values())
        gs.validate()

        # a re-run is served from the cache: no request, the same golden set, query order and negatives
        gs2, rep2 = generate_natural(prompts12, cfg, progress=False)
        assert len(srv.requests) == 12 and rep2.from_cache == 12 and rep2.generated == 0
        assert gs2.fingerprint() == gs.fingerprint()
        assert [q.id for q in gs2.queries] == [q.id for q in gs.queries]
        assert [(n.query_id, n.prompt_id) for n in gs2.negatives] == [(n.query_id, n.prompt_id) for n in gs.negatives]
        assert gs2.manifest["styles"] == styles
    # saved and loaded, the styles survive in the manifest
    loaded = type(gs).load(gs.save(tmp_path / "golden"))
    assert loaded.manifest["styles"] == styles


def test_cache_key_includes_the_template(tmp_path, prompts12):
    cfg = LLMConfig("", "tiny", cache_dir=tmp_path / "cache")
    with FakeChatServer(natural_responder([p.title for p in prompts12])) as srv:
        cfg.base_url = srv.base_url
        generate_natural(prompts12[:2], cfg)
        assert len(srv.requests) == 2
        generate_natural(
            prompts12[:2],
            LLMConfig(
                srv.base_url, "tiny", cache_dir=tmp_path / "cache", template=natural_template() + "\nBe brief.\n"
            ),
        )
        assert len(srv.requests) == 4  # another template: asked again
        gen = NaturalQueryGenerator(cfg)
        assert gen.template_hash != LLMQueryGenerator(cfg).template_hash


def test_partial_failure_is_an_error_unless_allowed(tmp_path, prompts12):
    ok = natural_responder([p.title for p in prompts12])

    def flaky(body, n):
        if "Mixtape" in body["messages"][0]["content"]:
            return (500, {}, b"boom", 0.0)
        return ok(body, n)

    cfg = LLMConfig("", "tiny", cache_dir=tmp_path / "cache", max_retries=0)
    with FakeChatServer(flaky) as srv:
        cfg.base_url = srv.base_url
        with pytest.raises(LLMError, match="1 of 12 completions failed"):
            generate_natural(prompts12, cfg)
        gs, rep = generate_natural(prompts12, cfg, allow_partial=True)
        assert len(rep.failed) == 1 and rep.from_cache == 11
        assert len({q.source_id for q in gs.queries}) == 11
        assert len(gs.corpus) == 12  # the corpus is whole; the failed prompt only has no queries


def test_rare_words_are_counted_over_the_whole_corpus(tmp_path, prompts12):
    """Queries for a few prompts are still checked against the document frequency of the whole corpus."""
    keeper = [p for p in prompts12 if p.title == "The Keeper's Lamp"]
    cfg = LLMConfig("", "tiny", cache_dir=tmp_path / "cache")
    with FakeChatServer(natural_responder([p.title for p in prompts12])) as srv:
        cfg.base_url = srv.base_url
        gs, rep = generate_natural(keeper, cfg, corpus=prompts12)
    assert rep.dropped["rare word of the prompt"] == 1
    assert {q.source_id for q in gs.queries} == {keeper[0].id} and len(gs.corpus) == 12
    others = [p for p in prompts12 if p.id != keeper[0].id]
    with pytest.raises(ValueError, match="not in the corpus"):
        generate_natural(keeper, cfg, corpus=others)


def test_other_drop_reasons(tmp_path, prompts12, monkeypatch):
    key = "sk-test-PLANTED-KEY-0123456789"
    monkeypatch.setenv("PROMPT_RETRIEVER_LLM_API_KEY", key)
    keeper = [p for p in prompts12 if p.title == "The Keeper's Lamp"]
    lines = [
        "situation: ordinary people facing a quiet loss in an amber season",
        "situation: two siblings arguing over a will on a rainy afternoon",  # a second situation
        "mood: quiet loss, ordinary people, amber season",  # near-duplicate of the first
        "craft: " + "very long " * 16,
        "thematic: grief",
        f"question: is {key} a good tale?",  # the endpoint echoes the key; the client redacts it
    ]
    cfg = LLMConfig("", "tiny", cache_dir=tmp_path / "cache")
    with FakeChatServer(lambda body, n: (200, {}, completion("\n".join(lines)), 0.0)) as srv:
        cfg.base_url = srv.base_url
        gs, rep = generate_natural(keeper, cfg, corpus=prompts12)
    assert [q.text for q in gs.queries] == ["ordinary people facing a quiet loss in an amber season"]
    assert rep.dropped == {
        "second answer for a style": 1,
        "near-duplicate of the prompt's queries": 1,
        "too long": 1,
        "too short": 1,
        "contained the API key": 1,
    }
    assert not any(key in e for v in rep.examples.values() for e in v)
    assert (
        "[ordinary people facing a quiet loss in an amber season]"
        in rep.examples["near-duplicate of the prompt's queries"][0]
    )


def test_the_checks_agree_with_how_the_bundled_set_was_written():
    """Most bundled natural queries pass; the rest use a title word that many prompts share (the bundled
    set's test exempts those) or a rare word its looser tokenising missed ("cliff's", "deep-space")."""
    corpus = load_corpus()
    by_id = {p.id: p for p in corpus}
    df, min_df = document_frequency(corpus), rare_df_threshold(len(corpus))
    queries = read_natural_queries(bundled_natural_path())
    failed = Counter(
        found[0] for q in queries if (found := check_natural_query(q.text, by_id[q.prompt_id], df, min_df)) is not None
    )
    assert sum(failed.values()) / len(queries) < 0.06, failed
    assert failed["copied phrase"] <= 5
