"""Lexical diversity as lexicalrichness 0.5 defines it: its tokens, MTLD and HD-D.

Importing lexicalrichness loads matplotlib, pandas and TextBlob/NLTK (3-20 s, longer than
computing the features of 500 essays), and its HD-D calls scipy's ``hypergeom.pmf`` per essay
(1 ms). These are its definitions, line for line where it matters, without those imports;
``tests/test_linguistic.py`` checks them against lexicalrichness itself.
"""

from __future__ import annotations

import re
import statistics
import string
from collections import Counter

import numpy as np

_DIGITS = re.compile(r"[0-9]+")
_PUNCTUATION = str.maketrans(dict.fromkeys(string.punctuation, " "))


def tokens(text: str) -> list[str]:
    """lexicalrichness's ``tokenize``: lower case, digits and dashes removed, every other
    ASCII punctuation mark a space, split on white space."""
    text = _DIGITS.sub("", text.lower())
    text = text.replace("–", "").replace("—", "").replace("-", "")
    return text.translate(_PUNCTUATION).split()


def _mtld_pass(words: list[str], n_types: int, threshold: float) -> float:
    terms: set[str] = set()
    counter = 0
    factors = 0.0
    ttr = 1.0
    for word in words:
        counter += 1
        terms.add(word)
        ttr = len(terms) / counter
        if ttr <= threshold:
            counter, terms = 0, set()
            factors += 1
    if counter > 0:
        factors += (1 - ttr) / (1 - threshold)
    if factors == 0:
        whole = n_types / len(words)
        factors += 1 if whole == 1 else (1 - whole) / (1 - threshold)
    return len(words) / factors


def mtld(words: list[str], threshold: float = 0.72) -> float:
    """MTLD (McCarthy & Jarvis 2010): the mean of the forward and backward passes' mean length
    of the segments whose type-token ratio stays above ``threshold``; 0 without words."""
    if not words:
        return 0.0
    n_types = len(set(words))
    forward = _mtld_pass(words, n_types, threshold)
    backward = _mtld_pass(words[::-1], n_types, threshold)
    return float(statistics.mean((forward, backward)))


def hdd(words: list[str], draws: int = 42) -> float:
    """HD-D (McCarthy & Jarvis 2010): the sum over types of P(the type is in a random draw of
    ``draws`` tokens) / draws. P(absent) is the hypergeometric C(N - k, d) / C(N, d), in
    log-gamma form for all types at once. Texts shorter than ``draws`` draw all their tokens
    (lexicalrichness refuses them); 0 without words."""
    from scipy.special import gammaln

    n = len(words)
    if n == 0:
        return 0.0
    d = min(draws, n)
    k = np.fromiter(Counter(words).values(), dtype=np.float64)
    log_absent = gammaln(n - k + 1) - gammaln(n - k - d + 1) - gammaln(n + 1) + gammaln(n - d + 1)
    absent = np.where(n - k >= d, np.exp(log_absent), 0.0)
    return float(np.sum((1.0 - absent) / d))
