"""Linguistic features that human rubrics reward, per essay, in four switchable families.

The handcrafted block (``handcrafted.py``) already has length, word length, type-token ratios,
sentence and paragraph length mean/std/max, punctuation rates, capitalised sentence starts, an
out-of-vocabulary share and connectives per word; the families here add what it lacks, from
well-kept libraries where one computes the quantity:

- ``spelling``: misspellings against pyspellchecker's bundled English dictionary;
- ``lexical``: the essay's word-frequency profile (wordfreq Zipf values) and lexical diversity
  (MTLD and HD-D as lexicalrichness defines them, in ``diversity.py``);
- ``readability``: textstat's indices (the same values, computed faster in ``readability.py``),
  the sentence-length distribution, punctuation and capitalisation error rates, paragraphing,
  and syntax proxies (function-word rates);
- ``cohesion``: connective rates by kind and content-word overlap between adjacent sentences
  and paragraphs. Similarity to the prompt's other essays is learnt from data, so it is fitted
  per fold in ``prompt_similarity.py``, not cached here.

Every value is a rate, share or index, not a raw count (except ``misspelled_count``), so essays
of different prompts and lengths are comparable: leave-one-prompt-out scoring relies on it.
ASAP's anonymisation tokens (``@CAPS1``, ``@PERSON2``) are not words here.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import model_validator
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from aes_ensemble.config import StrictModel
from aes_ensemble.features import diversity
from aes_ensemble.features.cache import FeatureCache
from aes_ensemble.features.handcrafted import _LINE_WITH_WORD, _SENTENCE_END
from aes_ensemble.features.readability import readability as textstat_indices
from aes_ensemble.progress import step

# Change whenever a definition changes: it is the cache key, so stale rows are never reused.
LINGUISTIC_VERSION = "ling-3"
FAMILIES = ("spelling", "lexical", "readability", "cohesion")
BATCH = 200  # essays per progress update

_ANONYMISED = re.compile(r"@[A-Za-z]+[0-9]*")
_WORD = re.compile(r"(?<![@\w])[A-Za-z]+(?:'[A-Za-z]+)*(?!\w)")
_SENT_END = re.compile(_SENTENCE_END)
_LINE = re.compile(_LINE_WITH_WORD)
_STOP = frozenset(ENGLISH_STOP_WORDS)


class LinguisticConfig(StrictModel):
    """The ``features.linguistic`` section: which families to compute (all by default)."""

    spelling: bool = True
    lexical: bool = True
    readability: bool = True
    cohesion: bool = True
    # Fitted per fold (prompt_similarity.py): cosine to the centroid of the prompt's other essays.
    prompt_similarity: bool = True

    @model_validator(mode="after")
    def _check(self) -> LinguisticConfig:
        if not (self.families() or self.prompt_similarity):
            raise ValueError("linguistic: every family is off; remove the section instead")
        return self

    def families(self) -> tuple[str, ...]:
        """The enabled per-essay (cached) families, in column order."""
        return tuple(f for f in FAMILIES if getattr(self, f))


@dataclass(frozen=True)
class Doc:
    """One essay split once for every family: words keep their case, ``lower`` is aligned."""

    text: str
    words: list[str]
    lower: list[str]
    sentences: list[list[str]]  # lower-case words of each sentence
    paragraphs: list[list[str]]  # lower-case words of each paragraph
    sentence_texts: list[str]


def parse(text: str) -> Doc:
    """Words, sentences and paragraphs as ``handcrafted`` defines sentences and paragraphs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("’", "'")
    words = _WORD.findall(text)
    sentence_texts = _LINE.findall(_SENT_END.sub("\n", text))
    sentences = [[w.lower() for w in _WORD.findall(s)] for s in sentence_texts]
    paragraphs = [[w.lower() for w in _WORD.findall(p)] for p in _LINE.findall(text)]
    return Doc(
        text=text,
        words=words,
        lower=[w.lower() for w in words],
        sentences=[s for s in sentences if s],
        paragraphs=[p for p in paragraphs if p],
        sentence_texts=sentence_texts,
    )


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


def _div(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


# --- spelling ----------------------------------------------------------------------------------


@functools.cache
def _speller() -> tuple[frozenset[str], Callable[[str], set[str]]]:
    from spellchecker import SpellChecker

    checker = SpellChecker(language="en", distance=1)
    return frozenset(checker.word_frequency.dictionary), checker.edit_distance_1


@functools.cache
def _near_miss(word: str) -> bool:
    """A typo: some dictionary word is one edit away (else a non-word or an unknown name)."""
    known, edits = _speller()
    return any(e in known for e in edits(word))


def _checked_words(doc: Doc) -> list[str]:
    """Lower-case words to check: a capitalised word inside a sentence is taken for a name (the
    dictionary lacks "Saeng" and "Narciso"), and a possessive 's is dropped."""
    out = []
    for sentence in doc.sentence_texts:
        for i, word in enumerate(_WORD.findall(sentence)):
            if i and word[0].isupper() and not word.isupper():
                continue
            word = word.lower()
            out.append(word[:-2] if word.endswith("'s") else word)
    return out


def spelling(doc: Doc) -> dict[str, float]:
    """Misspelled words (not in pyspellchecker's English dictionary, case-insensitive)."""
    known, _ = _speller()
    words = _checked_words(doc)
    wrong = [w for w in words if w not in known]
    types = set(words)
    return {
        "misspelled_count": float(len(wrong)),
        "misspelled_rate": _div(len(wrong), len(words)),
        "misspelled_type_rate": _div(len(set(wrong)), len(types)),
        "misspelled_near_share": _div(sum(_near_miss(w) for w in wrong), len(wrong)),
    }


# --- lexical sophistication and diversity ------------------------------------------------------


@functools.cache
def _zipf_table() -> dict[str, float]:
    """wordfreq's English frequencies as Zipf values (log10 per billion words): the quantity
    ``wordfreq.zipf_frequency`` returns for a single word, without its per-call tokenising."""
    from wordfreq import get_frequency_dict

    return {w: math.log10(f) + 9.0 for w, f in get_frequency_dict("en").items() if f > 0}


def lexical(doc: Doc) -> dict[str, float]:
    """Zipf profile of the words wordfreq knows; MTLD and HD-D on lexicalrichness's tokens."""
    table = _zipf_table()
    zipf = np.array([table[w] for w in doc.lower if w in table], dtype=np.float64)
    content = [table[w] for w in doc.lower if w in table and w not in _STOP]
    content_types = [table[w] for w in set(doc.lower) if w in table and w not in _STOP]
    words = diversity.tokens(doc.text)
    p10, p25, p50 = np.quantile(zipf, [0.1, 0.25, 0.5]) if zipf.size else (0.0, 0.0, 0.0)
    return {
        "zipf_mean": float(zipf.mean()) if zipf.size else 0.0,
        "zipf_sd": float(zipf.std()) if zipf.size else 0.0,
        "zipf_p10": float(p10),
        "zipf_p25": float(p25),
        "zipf_p50": float(p50),
        "content_zipf_mean": float(np.mean(content)) if content else 0.0,
        "content_type_zipf_mean": float(np.mean(content_types)) if content_types else 0.0,
        "rare_share": float(np.mean(zipf < 3.0)) if zipf.size else 0.0,
        "uncommon_share": float(np.mean(zipf < 4.0)) if zipf.size else 0.0,
        "mtld": diversity.mtld(words),
        "hdd": diversity.hdd(words),
    }


# --- readability, mechanics, paragraphing, syntax proxies --------------------------------------

_MISSING_SPACE = re.compile(r"[a-z][,;:!?.][A-Za-z]{2,}")
_REPEATED_PUNCT = re.compile(r"[!?]{2,}|,{2,}|;{2,}|\.{4,}")
_FINAL_PUNCT = re.compile(r"[.!?][\"')\]]*\s*$")
_NO_APOSTROPHE = _set(
    "dont cant didnt doesnt isnt wasnt werent arent couldnt wouldnt shouldnt hasnt havent "
    "hadnt im ive youre theyre thats whats theres wouldve couldve shouldve"
)
_SUBORDINATORS = _set(
    "because although though while whereas if unless when whenever since until after before "
    "which who whom whose whether once"
)
_COORDINATORS = _set("and but or so yet nor")
_PREPOSITIONS = _set(
    "in on at of for with by from about into through over under between among during without "
    "within against across toward towards upon around behind beyond"
)
_MODALS = _set("can could may might must shall should will would")
_FIRST = _set("i me my mine myself")
_SECOND = _set("you your yours yourself yourselves")
_BE = _set("am is are was were be been being")
_NOMINAL = re.compile(r"^[a-z]{3,}(?:tion|sion|ment|ness|ity|ance|ence)s?$")


def _passives(sentence: list[str]) -> int:
    """A form of *be* followed by a word ending in -ed or -en: a passive (or adjectival) proxy."""
    return sum(
        1
        for a, b in itertools.pairwise(sentence)
        if a in _BE and len(b) > 3 and b.endswith(("ed", "en"))
    )


def _midsentence_capitals(doc: Doc) -> int:
    """Capitalised function words after a sentence's first word ("the dog And The cat")."""
    count = 0
    for sentence in doc.sentence_texts:
        for w in _WORD.findall(sentence)[1:]:
            if w[0].isupper() and w[1:].islower() and w.lower() in _STOP and w != "I":
                count += 1
    return count


def readability(doc: Doc) -> dict[str, float]:
    """textstat indices, sentence lengths, mechanics, paragraphing and function-word rates."""
    ts = textstat_indices(_ANONYMISED.sub("Name", doc.text))
    nw, ns = len(doc.lower), len(doc.sentences)
    lengths = np.array([len(s) for s in doc.sentences], dtype=np.float64)
    p10, p50, p90 = np.quantile(lengths, [0.1, 0.5, 0.9]) if ns else (0.0, 0.0, 0.0)

    def per_word(values: frozenset[str]) -> float:
        return _div(sum(w in values for w in doc.lower), nw)

    def per_sentence(values: frozenset[str]) -> float:
        return _div(sum(w in values for w in doc.lower), ns)

    return {
        "flesch_reading_ease": ts.flesch_reading_ease,
        "gunning_fog": ts.gunning_fog,
        "smog_index": ts.smog_index,
        "coleman_liau_index": ts.coleman_liau_index,
        "automated_readability_index": ts.automated_readability_index,
        "dale_chall": ts.dale_chall_readability_score,
        "difficult_word_rate": _div(ts.difficult_tokens, ts.lexicon_count),
        "polysyllable_rate": _div(ts.polysyllabcount, ts.lexicon_count),
        "sentence_len_p10": float(p10),
        "sentence_len_p50": float(p50),
        "sentence_len_p90": float(p90),
        "share_sentences_lt5": float(np.mean(lengths < 5)) if ns else 0.0,
        "missing_space_per_word": _div(len(_MISSING_SPACE.findall(doc.text)), nw),
        "repeated_punct_per_word": _div(len(_REPEATED_PUNCT.findall(doc.text)), nw),
        "midsentence_capital_per_word": _div(_midsentence_capitals(doc), nw),
        "missing_apostrophe_per_word": per_word(_NO_APOSTROPHE),
        "no_final_punct": 0.0 if _FINAL_PUNCT.search(doc.text) else 1.0,
        "paragraphs_per_100_words": _div(100.0 * len(doc.paragraphs), nw),
        "single_paragraph": 1.0 if len(doc.paragraphs) <= 1 else 0.0,
        "subordinators_per_sentence": per_sentence(_SUBORDINATORS),
        "coordinators_per_sentence": per_sentence(_COORDINATORS),
        "prepositions_per_word": per_word(_PREPOSITIONS),
        "modals_per_word": per_word(_MODALS),
        "first_person_per_word": per_word(_FIRST),
        "second_person_per_word": per_word(_SECOND),
        "passives_per_sentence": _div(sum(_passives(s) for s in doc.sentences), ns),
        "nominalisations_per_word": _div(sum(bool(_NOMINAL.match(w)) for w in doc.lower), nw),
        "ly_adverbs_per_word": _div(sum(len(w) > 4 and w.endswith("ly") for w in doc.lower), nw),
    }


# --- cohesion ----------------------------------------------------------------------------------

# Connectives by the relation they mark (after TAACO's categories, Crossley et al. 2016).
CONNECTIVE_KINDS: dict[str, tuple[str, ...]] = {
    "additive": (
        "also", "moreover", "furthermore", "in addition", "additionally", "besides", "as well",
        "likewise", "similarly",
    ),
    "adversative": (
        "however", "but", "although", "even though", "though", "nevertheless", "nonetheless",
        "on the other hand", "in contrast", "whereas", "instead", "yet", "despite",
    ),
    "causal": (
        "because", "since", "therefore", "thus", "hence", "consequently", "as a result", "so that",
        "due to", "for this reason",
    ),
    "sequential": (
        "first", "firstly", "second", "secondly", "third", "thirdly", "next", "then", "finally",
        "lastly", "first of all", "afterwards", "meanwhile", "eventually",
    ),
    "illustrative": ("for example", "for instance", "such as", "in fact", "indeed", "namely"),
    "summary": (
        "in conclusion", "to conclude", "in summary", "to sum up", "overall", "in short",
        "all in all", "in other words",
    ),
}  # fmt: skip
_CONNECTIVE_RES = {
    # Longest phrases first, so "first of all" is one sequential marker, not "first".
    kind: re.compile(r"\b(?:" + "|".join(sorted(phrases, key=len, reverse=True)) + r")\b")
    for kind, phrases in CONNECTIVE_KINDS.items()
}
_THIRD = _set("he him his she her hers it its they them their theirs")
_DEMONSTRATIVES = _set("this that these those")


def _content(words: list[str]) -> list[str]:
    """Content words with a plural -s stripped, so "cars" meets "car"."""
    return [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in _STOP]


def _jaccard(a: set[str], b: set[str]) -> float:
    return _div(len(a & b), len(a | b))


def cohesion(doc: Doc) -> dict[str, float]:
    """Connectives per sentence by kind, their variety, and adjacent content-word overlap."""
    lowered = " ".join(doc.lower)
    ns, nw = len(doc.sentences), len(doc.lower)
    found = {kind: pattern.findall(lowered) for kind, pattern in _CONNECTIVE_RES.items()}
    every = [c for matches in found.values() for c in matches]
    contents = [_content(s) for s in doc.sentences]
    sents = [set(c) for c in contents]
    pairs = list(itertools.pairwise(sents))
    paras = [set(_content(p)) for p in doc.paragraphs]
    seen: set[str] = set()
    given = total = 0
    for content in contents:  # content words already used in an earlier sentence
        given += sum(w in seen for w in content)
        total += len(content)
        seen.update(content)
    out = {f"{kind}_per_sentence": _div(len(m), ns) for kind, m in found.items()}
    out |= {
        "connective_kinds_used": float(sum(bool(m) for m in found.values())),
        "connective_variety": _div(len(set(every)), len(every)),
        "adjacent_overlap_any": float(np.mean([bool(a & b) for a, b in pairs])) if pairs else 0.0,
        "adjacent_overlap_jaccard": (
            float(np.mean([_jaccard(a, b) for a, b in pairs])) if pairs else 0.0
        ),
        "paragraph_overlap_jaccard": (
            float(np.mean([_jaccard(a, b) for a, b in itertools.pairwise(paras)]))
            if len(paras) > 1
            else 0.0
        ),
        "content_givenness": _div(given, total),
        "third_person_per_word": _div(sum(w in _THIRD for w in doc.lower), nw),
        "demonstratives_per_word": _div(sum(w in _DEMONSTRATIVES for w in doc.lower), nw),
    }
    return out


FAMILY_FUNCTIONS: dict[str, Callable[[Doc], dict[str, float]]] = {
    "spelling": spelling,
    "lexical": lexical,
    "readability": readability,
    "cohesion": cohesion,
}


@functools.cache
def family_names(family: str) -> tuple[str, ...]:
    """Column names of ``family`` in order (stable for a given ``LINGUISTIC_VERSION``)."""
    return tuple(FAMILY_FUNCTIONS[family](parse("A short text. It has two sentences.")))


@functools.cache
def all_names() -> tuple[str, ...]:
    """``family.name`` of every per-essay column, in the cached order."""
    return tuple(f"{family}.{name}" for family in FAMILIES for name in family_names(family))


def linguistic_rows(texts: list[str]) -> np.ndarray:
    """Every family's features of ``texts`` as float64 rows, each text parsed once (parsing is
    as costly as a family); finite: NaN and inf become 0."""
    rows = np.zeros((len(texts), len(all_names())), dtype=np.float64)
    for i, text in enumerate(texts):
        doc = parse(text)
        rows[i] = [v for family in FAMILIES for v in FAMILY_FUNCTIONS[family](doc).values()]
    return np.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0)


def _columns(config: LinguisticConfig) -> np.ndarray:
    wanted = config.families()
    return np.array([i for i, n in enumerate(all_names()) if n.split(".")[0] in wanted], int)


def linguistic_matrix(
    texts: list[str], config: LinguisticConfig, cache: FeatureCache | None = None
) -> np.ndarray:
    """The enabled families' columns as float32. Every family is computed and cached per essay
    (one parse serves all four), so switching a family off or on never recomputes a row."""

    def compute(batch: list[str]) -> np.ndarray:
        parts = []
        with step("linguistic features", len(batch)) as shown:
            for lo in range(0, len(batch), BATCH):
                parts.append(linguistic_rows(batch[lo : lo + BATCH]))
                shown.advance(len(parts[-1]))
        return np.concatenate(parts) if parts else np.zeros((0, len(all_names())), np.float64)

    rows = (cache or FeatureCache(None)).get_or_compute(
        "linguistic", LINGUISTIC_VERSION, texts, compute
    )
    return np.ascontiguousarray(rows[:, _columns(config)], dtype=np.float32)


def feature_names(config: LinguisticConfig) -> list[str]:
    """``family.name`` of each column ``linguistic_matrix`` returns, in order."""
    return [all_names()[i] for i in _columns(config)]
