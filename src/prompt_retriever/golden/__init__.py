"""Golden query sets: queries with relevance judgments (qrels), their splits and the generators that make them.

A `GoldenSet` is stored in the BEIR layout (`corpus.jsonl`, `queries.jsonl`, `qrels/*.tsv`) plus a manifest.
Generators: heuristic templates (`generate_heuristic`), an LLM endpoint (`LLMQueryGenerator`, and
`generate_natural` for natural-language queries in six styles), hand-judged files (`load_judged_queries`),
extra keyword queries for training (`augment_keyword_queries`), and golden sets made elsewhere: a
query,context,relevance CSV or a RAGAS test set (`import_golden`); writers' feedback judged from the log or by
the owner, a family split by time (`read_feedback`, `add_feedback_family`).
"""

from ..errors import LeakageError
from .augment import augment_keyword_queries
from .feedback_family import FEEDBACK_KINDS, FeedbackQuery, FeedbackRead, add_feedback_family, read_feedback, time_split
from .goldenset import (
    SPLITS,
    GoldenSet,
    Negative,
    Qrels,
    Query,
    bundled_handwritten_path,
    load_judged_queries,
    make_query_id,
    read_qrels,
    summarize,
)
from .heuristic import HeuristicConfig, generate_heuristic, make_negatives
from .importing import GoldenImportError, ImportReport, import_for_evaluation, import_golden
from .keywords import TfidfKeywords, synonyms, tokenize
from .llm_natural import (
    NaturalQueryGenerator,
    NaturalRunReport,
    check_natural_query,
    copied_phrase,
    document_frequency,
    generate_natural,
    natural_template,
    parse_styled_lines,
    rare_df_threshold,
    rare_words_used,
    title_words_used,
)
from .llm_queries import LLMConfig, LLMQueryGenerator, LLMRunReport, clean_queries
from .splits import check_leakage, split_by_prompt

__all__ = [
    "FEEDBACK_KINDS",
    "SPLITS",
    "FeedbackQuery",
    "FeedbackRead",
    "GoldenImportError",
    "GoldenSet",
    "HeuristicConfig",
    "ImportReport",
    "LLMConfig",
    "LLMQueryGenerator",
    "LLMRunReport",
    "LeakageError",
    "NaturalQueryGenerator",
    "NaturalRunReport",
    "Negative",
    "Qrels",
    "Query",
    "TfidfKeywords",
    "add_feedback_family",
    "augment_keyword_queries",
    "bundled_handwritten_path",
    "check_leakage",
    "check_natural_query",
    "clean_queries",
    "copied_phrase",
    "document_frequency",
    "generate_heuristic",
    "generate_natural",
    "import_for_evaluation",
    "import_golden",
    "load_judged_queries",
    "make_negatives",
    "make_query_id",
    "natural_template",
    "parse_styled_lines",
    "rare_df_threshold",
    "rare_words_used",
    "read_feedback",
    "read_qrels",
    "split_by_prompt",
    "summarize",
    "synonyms",
    "time_split",
    "title_words_used",
    "tokenize",
]
