"""textstat 0.7.8's readability indices of one text, from one pass over its words.

Calling ``textstat.flesch_reading_ease`` and five other indices costs about 9 ms an essay: each
index re-lists the words, and textstat's per-word caches hold 128 entries, so the syllable count
and the easy-word check of every word are recomputed for most words. Here textstat's own
primitives (its word list, sentence count, letter count and per-word syllable count) are called
once per text, per-word results are memoised without bound, and the indices are textstat's
formulas with its English constants; ``tests/test_linguistic.py`` checks every value against
textstat itself. About 0.5 ms an essay.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

LANG = "en_US"  # textstat's default language
FRE_BASE, FRE_SENTENCE, FRE_SYLLABLE = 206.835, 1.015, 84.6  # textstat's "en" configuration
FOG_SYLLABLES = 3  # textstat's "en" syllable_threshold for the Gunning fog index


@functools.cache
def _syllables(word: str) -> int:
    """textstat's syllable count of one lower-case word (CMUdict, else pyphen)."""
    from textstat.backend.counts import count_syllables

    return int(count_syllables(word, LANG))


@functools.cache
def _easy_words() -> frozenset[str]:
    from textstat.backend.utils import get_lang_easy_words

    return frozenset(get_lang_easy_words(LANG))


def _difficult(words: list[str], syllables: list[int], threshold: int) -> list[int]:
    """Positions of textstat's difficult words: not a Dale-Chall easy word, and at least
    ``threshold`` syllables."""
    easy = _easy_words()
    return [
        i
        for i, (w, s) in enumerate(zip(words, syllables, strict=True))
        if w not in easy and s >= threshold
    ]


@dataclass(frozen=True)
class Readability:
    """textstat's indices and the counts behind them for one text."""

    flesch_reading_ease: float
    gunning_fog: float
    smog_index: float
    coleman_liau_index: float
    automated_readability_index: float
    dale_chall_readability_score: float
    difficult_words: int  # textstat.difficult_words: distinct (as cased), threshold 2
    difficult_tokens: int  # the same with unique=False
    polysyllabcount: int
    lexicon_count: int


def readability(text: str) -> Readability:
    """Each value equals the textstat function of the same name on ``text``."""
    from textstat.backend.counts import count_letters, count_sentences
    from textstat.backend.selections import list_words

    cased = list_words(text)
    words = [w.lower() for w in cased]
    n_words = len(words)
    n_sentences = int(count_sentences(text))
    syllables = [_syllables(w) for w in words]
    poly = sum(1 for s in syllables if s >= 3)
    difficult = _difficult(words, syllables, 2)
    wps = n_words / n_sentences if n_sentences else 0.0
    spw = sum(syllables) / n_words if n_words else 0.0
    fre = FRE_BASE - FRE_SENTENCE * wps - FRE_SYLLABLE * spw if wps and spw else 0.0
    fog = (
        0.4 * (wps + 100 * len(_difficult(words, syllables, FOG_SYLLABLES)) / n_words)
        if n_words
        else 0.0
    )
    smog = (1.043 * (30 * (poly / n_sentences)) ** 0.5) + 3.1291 if n_sentences else 0.0
    letters = 100 * count_letters(text) / n_words if n_words else 0.0
    sentences = 100 * n_sentences / n_words if n_words else 0.0
    cli = 0.058 * letters - 0.296 * sentences - 15.8 if letters and sentences else 0.0
    spaced = text.split()
    chars = len("".join(spaced)) / len(spaced) if spaced else 0.0
    ari = 4.71 * chars + 0.5 * wps - 21.43 if chars and wps else 0.0
    dale = 0.0
    if n_words:
        hard = 100 * len(_difficult(words, syllables, 0)) / n_words
        dale = 0.1579 * hard + 0.0496 * wps + (3.6365 if hard > 5 else 0.0)
    return Readability(
        flesch_reading_ease=fre,
        gunning_fog=fog,
        smog_index=smog,
        coleman_liau_index=cli,
        automated_readability_index=ari,
        dale_chall_readability_score=dale,
        difficult_words=len({cased[i] for i in difficult}),
        difficult_tokens=len(difficult),
        polysyllabcount=poly,
        lexicon_count=n_words,
    )
