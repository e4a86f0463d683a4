"""Natural-language queries for your own prompts, written by an OpenAI-compatible endpoint.

One completion per prompt (template `data/templates/llm_natural.txt`, with bundled examples of each style,
never a prompt's own) asks for one query per style of the bundled natural set, one line `style: query`
each. Lines are checked the way the bundled set was written (`check_natural_query`: no copied phrase of 4
words, no title word, no rare word of the prompt; see `rare_df_threshold`), and for a label, length, the
API key, duplicates and near-duplicates; what is dropped is counted by reason, with three examples each.
Unlike the bundled set's test, a title word is refused even when many prompts use it.

Queries have kind "natural", `source_id` = their prompt, qrels {prompt id: 2}, and their style in
`manifest["styles"]` ({query id: style}). Cache (key: model, template hash, prompt id, sample), retries,
concurrency and partial failure are `LLMQueryGenerator`'s.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources

from ..corpus import Prompt
from ..errors import InputError, LLMError
from ..feedback.records import query_key
from ..llm import REDACTED, ChatClient
from .goldenset import GoldenSet
from .heuristic import QueryBuilder, make_negatives
from .keywords import STOPWORDS
from .llm_queries import LLMConfig, LLMQueryGenerator, LLMRunReport
from .natural import NATURAL_KIND, STYLES, bundled_natural_path, read_natural_queries

MIN_WORDS, MAX_WORDS = 3, 30
PHRASE_WORDS = 4  # a run this long copied from the prompt is a copied phrase
RARE_FRACTION = 0.01
NEAR_DUPLICATE = 0.7  # share of the shorter query's content stems
MAX_TOKENS = 400  # six queries of up to 30 words do not fit the client's default 256
TITLE, RARE, COPIED = "title word", "rare word of the prompt", "copied phrase"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")
_LINE = re.compile(r"^\s*(?:[-*\u2022]+|\(?\d{1,2}[.):\]])?\s*[*_]*([^:*_]{1,40}?)[*_]*\s*:[*_]*\s*(.*)$")
_QUOTES = "\"'\u201c\u201d\u2018\u2019`"


def natural_template() -> str:
    return (resources.files("prompt_retriever") / "data" / "templates" / "llm_natural.txt").read_text("utf-8")


def _words(text: str) -> list[str]:
    """Lower-case word tokens (letters, digits, inner apostrophes); hyphens and punctuation split.

    >>> _words("The Keeper\u2019s half-lit LAMP, 1899!")
    ['the', "keeper's", 'half', 'lit', 'lamp', '1899']
    """
    return _WORD.findall(text.casefold().replace("\u2019", "'"))


def _stem(word: str) -> str:
    """A light stem, so that possessives, plurals and -ing/-ed forms of a word compare equal.

    >>> [_stem(w) for w in ("keeper's", "keepers", "climbing", "sea")]
    ['keep', 'keep', 'climb', 'sea']
    """
    word = word.removesuffix("'s")
    for suffix in ("ies", "ied", "ing", "ers", "er", "es", "ed", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def _content(word: str) -> bool:
    return word not in STOPWORDS and word.removesuffix("'s") not in STOPWORDS


def title_words_used(query: str, title: str) -> list[str]:
    """The query's words that are content words of the title (stop words ignored, compared by stem).

    >>> title_words_used("two keepers and a haunted lamp", "The Keeper's Lamp")
    ['keepers', 'lamp']
    """
    banned = {_stem(w) for w in _words(title) if _content(w)}
    return list(dict.fromkeys(w for w in _words(query) if _content(w) and _stem(w) in banned))


def document_frequency(prompts: Iterable[Prompt]) -> Counter[str]:
    """How many prompts use each word stem in their title or text.

    >>> df = document_frequency([Prompt("a", "g", "t", "Salt", "Salt nights."), Prompt("b", "g", "t", "Night", "Sea.")])
    >>> df["night"], df["salt"], df["sea"]
    (2, 1, 1)
    """
    df: Counter[str] = Counter()
    for p in prompts:
        df.update({_stem(w) for w in _words(f"{p.title} {p.text}")})
    return df


def rare_df_threshold(n_prompts: int, fraction: float = RARE_FRACTION) -> int:
    """A word of a prompt is rare when fewer prompts than this use it: `fraction` of them (rounded down),
    at least 2, so that a word no other prompt uses is always rare: the rule the bundled set was written
    to. Proper names fall here unless many prompts share them.

    >>> rare_df_threshold(648), rare_df_threshold(12)
    (6, 2)
    """
    return max(2, int(fraction * n_prompts))


def rare_words_used(query: str, source: str, df: Counter[str], min_df: int) -> list[str]:
    """The query's content words that `source` (a prompt's text) uses and fewer than `min_df` prompts use.

    >>> rare_words_used("a night watch on ushant", "Night falls on Ushant.", Counter(night=40, ushant=1), 7)
    ['ushant']
    """
    own = {_stem(w) for w in _words(source)}
    return list(dict.fromkeys(w for w in _words(query) if _content(w) and _stem(w) in own and df[_stem(w)] < min_df))


def copied_phrase(query: str, *sources: str, n: int = PHRASE_WORDS) -> str | None:
    """The first run of `n` consecutive query words that one of `sources` has too (compared as lower-case
    tokens), or None. A run made only of stop words does not count.

    >>> copied_phrase("a girl CLIMBS the stairs, to bed", "His daughter climbs the stairs to see.")
    'climbs the stairs to'
    >>> copied_phrase("she climbs the stairs at dusk", "His daughter climbs the stairs to see.") is None
    True
    """
    grams = {tuple(ws[i : i + n]) for ws in map(_words, sources) for i in range(len(ws) - n + 1)}
    q = _words(query)
    for i in range(len(q) - n + 1):
        run = tuple(q[i : i + n])
        if run in grams and any(map(_content, run)):
            return " ".join(run)
    return None


def near_duplicate(a: str, b: str, share: float = NEAR_DUPLICATE) -> bool:
    """True when two queries share at least `share` of the shorter one's content stems.

    >>> near_duplicate("a quiet ghost story at sea", "ghosts of the quiet sea"), near_duplicate("a ghost", "a sea")
    (True, False)
    """
    x, y = ({_stem(w) for w in _words(t) if _content(w)} for t in (a, b))
    return bool(x and y) and len(x & y) / min(len(x), len(y)) >= share


def check_natural_query(query: str, prompt: Prompt, df: Counter[str], min_df: int) -> tuple[str, str] | None:
    """(reason, offending words) when `query` gives its prompt away, else None: a copied phrase, then a
    title word, then a rare word of the prompt.

    >>> p = Prompt("k", "Horror", "Grief", "The Keeper's Lamp", "Her father climbs the stairs in March.")
    >>> df = document_frequency([p])
    >>> check_natural_query("a father climbs the stairs", p, df, 2), check_natural_query("lamp light", p, df, 2)
    (('copied phrase', 'father climbs the stairs'), ('title word', 'lamp'))
    >>> check_natural_query("a ghost in march", p, df, 2), check_natural_query("a ghost at sea", p, df, 2)
    (('rare word of the prompt', 'march'), None)
    """
    if run := copied_phrase(query, prompt.text, prompt.title):
        return COPIED, run
    if found := title_words_used(query, prompt.title):
        return TITLE, ", ".join(found)
    if found := rare_words_used(query, f"{prompt.title} {prompt.text}", df, min_df):
        return RARE, ", ".join(found)
    return None


def parse_styled_lines(raw: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """((style, query) pairs, (reason, line) dropped) of a completion answering `style: query` per line.

    Only the six style labels are accepted (any case, after a bullet, a number or markdown emphasis);
    quotes and a final full stop are stripped from the query.

    >>> pairs, dropped = parse_styled_lines('Here:\\n**Mood**: "eerie, hushed".\\n- limerick: a joke\\nno label')
    >>> pairs, [reason for reason, line in dropped]
    ([('mood', 'eerie, hushed')], ['unknown style label', 'unknown style label', 'no style label'])
    """
    pairs: list[tuple[str, str]] = []
    dropped: list[tuple[str, str]] = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            dropped.append(("no style label", line.strip()))
            continue
        style = " ".join(m.group(1).split()).lower()
        query = " ".join(m.group(2).strip().strip(_QUOTES).strip().rstrip(".").strip(_QUOTES).split())
        if style not in STYLES:
            dropped.append(("unknown style label", line.strip()))
        elif not query:
            dropped.append(("empty query", line.strip()))
        else:
            pairs.append((style, query))
    return pairs, dropped


@dataclass
class NaturalRunReport(LLMRunReport):
    """`LLMRunReport` plus the queries kept per style and, per drop reason, its first three lines."""

    by_style: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> first 3 "prompt id: line"

    def drop(self, reason: str, prompt_id: str, line: str) -> None:
        self.dropped[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < 3:
            shown.append(f"{prompt_id}: {line}")


def _example_lines(template: str) -> dict[str, set[str]]:
    """prompt id -> the template's example lines (`style: query`) that are that bundled prompt's queries."""
    found = re.findall(rf"^(({'|'.join(STYLES)}): (.+?))\s*$", template, re.M)
    wanted = {(style, text.casefold()): line for line, style, text in found}
    out: dict[str, set[str]] = {}
    for q in read_natural_queries(bundled_natural_path()) if wanted else []:
        if line := wanted.get((q.style, q.text.casefold())):
            out.setdefault(q.prompt_id, set()).add(line)
    return out


class NaturalQueryGenerator(LLMQueryGenerator):
    """`LLMQueryGenerator` with the natural template, the `style: query` parser and the checks."""

    def __init__(self, config: LLMConfig, client: ChatClient | None = None):
        template = config.template or natural_template()
        self._examples = _example_lines(template)
        super().__init__(replace(config, template=template, extra={"max_tokens": MAX_TOKENS, **config.extra}), client)

    def _render(self, prompt: Prompt) -> str:
        text = super()._render(prompt)
        if own := self._examples.get(prompt.id):  # never show a prompt its own bundled queries
            text = "\n".join(line for line in text.split("\n") if line.strip() not in own)
        return text

    def generate(
        self,
        prompts: Sequence[Prompt],
        progress: bool = True,
        allow_partial: bool = False,
        corpus: Sequence[Prompt] | None = None,
    ) -> tuple[GoldenSet, NaturalRunReport]:
        """A golden set of natural queries for `prompts`; rare words are counted over `corpus` (default:
        `prompts`), which must hold every prompt and becomes the golden set's corpus."""
        prompts = sorted(prompts, key=lambda p: p.id)
        everything = sorted(corpus if corpus is not None else prompts, key=lambda p: p.id)
        if missing := {p.id for p in prompts} - {p.id for p in everything}:
            raise InputError(f"{len(missing)} prompts are not in the corpus, e.g. {sorted(missing)[0]}")
        results, base = self.completions(prompts, progress)
        self.check_failures(results, base, allow_partial)
        report = NaturalRunReport(**vars(base))
        df, min_df = document_frequency(everything), rare_df_threshold(len(everything))
        b = QueryBuilder()
        styles: dict[str, str] = {}
        for p in prompts:
            kept: list[str] = []
            for s in range(self.cfg.samples):
                pairs, dropped = parse_styled_lines(results.get((p.id, s), ""))
                for reason, line in dropped:
                    report.drop(reason, p.id, line)
                answered: set[str] = set()
                for style, query in pairs:
                    why = _reject(query, p, df, min_df, kept, b)
                    if why is None and style in answered:
                        why = ("second answer for a style", "")
                    if why is not None:
                        report.drop(why[0], p.id, f"{style}: {query}" + (f" [{why[1]}]" if why[1] else ""))
                        continue
                    qid = b.add(NATURAL_KIND, query, {p.id: 2}, p.id)
                    assert qid is not None  # duplicates were rejected above
                    styles[qid] = style
                    report.by_style[style] += 1
                    answered.add(style)
                    kept.append(query)
        report.kept = len(styles)
        if not b.queries:
            raise LLMError(f"the endpoint produced no usable natural queries (dropped: {dict(report.dropped)})")
        negatives = make_negatives(everything, b, 3, 3, random.Random(self.cfg.seed))
        manifest = {
            "generator": "llm_natural",
            "seed": self.cfg.seed,
            "parameters": {
                **self.endpoint_parameters(),
                "checks": {"phrase_words": PHRASE_WORDS, "rare_below_prompts": min_df, "words": [MIN_WORDS, MAX_WORDS]},
            },
            "styles": styles,
            "by_style": dict(report.by_style),
            "dropped": dict(report.dropped),
            "failed_completions": len(report.failed),
        }
        gs = GoldenSet(everything, list(b.queries.values()), b.qrels, {}, negatives, manifest)
        gs.validate()
        return gs, report


def _reject(
    query: str, prompt: Prompt, df: Counter[str], min_df: int, kept: list[str], b: QueryBuilder
) -> tuple[str, str] | None:
    """(reason, detail) when `query` is not kept for `prompt` (kept: its queries so far), else None."""
    n = len(query.split())
    if n < MIN_WORDS or n > MAX_WORDS:
        return ("too short" if n < MIN_WORDS else "too long"), f"{n} words"
    if REDACTED.casefold() in query.casefold():
        return "contained the API key", ""
    if found := check_natural_query(query, prompt, df, min_df):
        return found
    if query_key(query) in b.by_text:
        return "duplicate query", ""
    if near := next((k for k in kept if near_duplicate(query, k)), None):
        return "near-duplicate of the prompt's queries", near
    return None


def generate_natural(
    prompts: Sequence[Prompt],
    config: LLMConfig,
    *,
    corpus: Sequence[Prompt] | None = None,
    progress: bool = False,
    allow_partial: bool = False,
    client: ChatClient | None = None,
) -> tuple[GoldenSet, NaturalRunReport]:
    """Natural-language queries for `prompts` from the endpoint of `config`: one per style per prompt and
    completion, checked (see the module); `manifest["styles"]` maps each query id to its style.

    Raises `LLMError` when a completion failed (unless `allow_partial`; what succeeded stays cached) or no
    query survived, `InputError` for a bad template or a prompt outside `corpus`.
    """
    gen = NaturalQueryGenerator(config, client)
    return gen.generate(prompts, progress=progress, allow_partial=allow_partial, corpus=corpus)
