"""Text vectorisers for proximity weighting: TF-IDF (as scikit-learn computes it) and BM25, over distinct texts.

Anchors repeat a lot inside a batch (the same room seen by many rollouts), so every backend works
on the *distinct* texts with their multiplicities and still returns the numbers that fitting on
all rows would give: document frequencies, term totals and the row count are weighted by
multiplicity.
"""

from __future__ import annotations

import itertools
import re
from typing import Callable, List, Sequence

import numpy as np
import scipy.sparse as sp

from proxmo.advantage.registry import register_similarity_backend

# scikit-learn's default token pattern keeps runs of two or more word characters; the option
# keep_single_char_tokens keeps one-character runs too, so that 'cabinet 1' and 'cabinet 2' differ.
TOKEN_PATTERN_SINGLE_CHAR = re.compile(r"(?u)\b\w+\b")


# Tokenising every text on its own costs a Python call per text; instead all texts are joined
# around a NUL separator and split in one pass. For ASCII input, mapping every non-word byte to a
# space and splitting on whitespace gives exactly the maximal runs of word characters (\w) that
# scikit-learn's pattern finds, and is several times faster than the regular expression.
_SEPARATOR = "\x00"
# One byte table lower-cases letters and blanks out every other non-word byte (the NUL separator stays).
_ASCII_WORDS_LOWER = bytes(
    ord(chr(c).lower()) if (chr(c).isalnum() or chr(c) == "_" or c == 0) else 32 for c in range(128)
) + bytes(range(128, 256))
_WORD_OR_SEPARATOR = re.compile(r"(?u)\w+|\x00")


def _joined_tokens(texts: Sequence[str]) -> tuple[list, object]:
    """All word runs of the lower-cased texts in order, with the separator between texts."""
    joined = f" {_SEPARATOR} ".join(texts)
    if joined.count(_SEPARATOR) != len(texts) - 1:  # a text holds a NUL itself: tokenise one by one
        parts = [TOKEN_PATTERN_SINGLE_CHAR.findall(text.lower()) + [_SEPARATOR] for text in texts]
        return list(itertools.chain.from_iterable(parts))[:-1], _SEPARATOR
    if joined.isascii():
        return joined.encode("ascii").translate(_ASCII_WORDS_LOWER).split(), _SEPARATOR.encode("ascii")
    return _WORD_OR_SEPARATOR.findall(joined.lower()), _SEPARATOR


def term_counts(texts: Sequence[str], keep_single_char_tokens: bool, names: bool = False) -> tuple[sp.csr_matrix, List[str]]:
    """Raw term counts (len(texts), V) with the vocabulary sorted alphabetically, as scikit-learn orders it.

    Tokens are scikit-learn's: lower-cased maximal runs of word characters, of two or more
    characters unless ``keep_single_char_tokens``. The vocabulary's terms are returned only with
    ``names=True`` (ASCII terms are handled as bytes, which sort like their text).
    """
    tokens, separator = _joined_tokens(texts)
    terms = sorted(set(tokens) - {separator})
    vocabulary = terms if keep_single_char_tokens else [term for term in terms if len(term) > 1]
    index = dict.fromkeys(terms, -1)  # dropped one-character terms
    index[separator] = -2
    index.update(zip(vocabulary, range(len(vocabulary))))
    ids = np.fromiter(map(index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    row = np.cumsum(ids == -2)
    kept = ids >= 0
    counts = sp.csr_matrix((np.ones(int(kept.sum())), (row[kept], ids[kept])), shape=(len(texts), len(vocabulary)))
    counts.sum_duplicates()
    if not names:
        return counts, []
    return counts, [term.decode("ascii") if isinstance(term, bytes) else term for term in vocabulary]


def limit_features(counts: sp.csr_matrix, multiplicity: np.ndarray, max_features: int | None) -> sp.csr_matrix:
    """Keep the ``max_features`` terms with the largest total count over all rows.

    Ties are broken exactly as scikit-learn breaks them: the same float64 totals in alphabetical
    order, the same ``argsort`` call.
    """
    n_terms = counts.shape[1]
    if max_features is None or n_terms <= max_features:
        return counts
    totals = np.asarray(counts.T @ multiplicity).ravel()
    keep = np.zeros(n_terms, dtype=bool)
    keep[(-totals).argsort()[:max_features]] = True
    return counts[:, np.flatnonzero(keep)]


def _l2_normalize_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0.0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ matrix)


def _document_frequency(counts: sp.csr_matrix, multiplicity: np.ndarray) -> np.ndarray:
    present = counts.copy()
    present.data[:] = 1.0
    return np.asarray(present.T @ multiplicity).ravel()


class TfidfBackend:
    """scikit-learn's TfidfVectorizer defaults (lower-case, smooth idf, l2 rows), fitted as if on every row."""

    def vectorize(self, texts, counts, n_rows, config) -> sp.csr_matrix:
        multiplicity = np.asarray(counts, dtype=np.float64)
        tf = limit_features(term_counts(texts, config.keep_single_char_tokens)[0], multiplicity, config.max_features)
        df = _document_frequency(tf, multiplicity)
        idf = np.log((1.0 + n_rows) / (1.0 + df)) + 1.0
        return _l2_normalize_rows(sp.csr_matrix(tf @ sp.diags(idf)))


class Bm25Backend:
    """Okapi BM25 term weights (k1, b) as vector entries, l2-normalised: a length-aware alternative to TF-IDF."""

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b

    def vectorize(self, texts, counts, n_rows, config) -> sp.csr_matrix:
        multiplicity = np.asarray(counts, dtype=np.float64)
        raw, _ = term_counts(texts, config.keep_single_char_tokens)
        length = np.asarray(raw.sum(axis=1)).ravel()
        average_length = max(float(length @ multiplicity) / n_rows, 1e-12)
        tf = limit_features(raw, multiplicity, config.max_features).tocoo()
        df = _document_frequency(tf.tocsr(), multiplicity)
        idf = np.log1p((n_rows - df + 0.5) / (df + 0.5))
        norm = self.k1 * (1.0 - self.b + self.b * length[tf.row] / average_length)
        weight = idf[tf.col] * tf.data * (self.k1 + 1.0) / (tf.data + norm)
        return _l2_normalize_rows(sp.csr_matrix((weight, (tf.row, tf.col)), shape=tf.shape))


class EmbeddingBackend:
    """Dense sentence embeddings from any ``encode(list_of_texts) -> (n, d) array`` function.

    Register one with ``register_similarity_backend("minilm", EmbeddingBackend(model.encode))`` and
    select it with ``AdvantageConfig(similarity_backend="minilm")``.
    """

    def __init__(self, encode: Callable[[List[str]], np.ndarray]) -> None:
        self.encode = encode

    def vectorize(self, texts, counts, n_rows, config) -> np.ndarray:
        vectors = np.asarray(self.encode(list(texts)), dtype=np.float64)
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise ValueError(f"encode: expected an array of shape ({len(texts)}, d), got {vectors.shape}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0.0, 1.0, norms)


register_similarity_backend("tfidf", TfidfBackend())
register_similarity_backend("bm25", Bm25Backend())
