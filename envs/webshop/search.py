"""Ranked BM25 search over the catalog (title, description and features), built once per catalog.

The index is a ``bm25s.BM25`` over lower-cased word tokens (stop words dropped, crude singulars) of
each product's title, description and features. A query returns the ids of matching products
(score > 0; bm25s scores every document, so non-matches come back as zeros), best first, ties
broken by catalog order, at most ``max_results`` of them. Answers are memoised per query, since a
group of environments playing one goal tends to search the same words.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import List, Sequence, Tuple

import bm25s
import numpy as np

from envs.webshop.catalog import Product
from envs.webshop.scoring import singular

MAX_RESULTS = 50
"""WebShop shows at most 50 results for a query (5 pages of 10)."""

STOP_WORDS = frozenset(
    "a an and are as at be by for from has have i i'd i'm in is it its it's looking me my need of on or "
    "that that's the this to want which with would like buy find price lower than dollars s".split()
)
_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> List[str]:
    """Lower-cased word tokens without stop words, each in a crude singular form."""
    return [singular(word) for word in _WORD.findall(text.lower()) if word not in STOP_WORDS]


def document_text(product: Product) -> str:
    """What the index sees of a product: title, description and features."""
    return " ".join([product.title, product.description, *product.features])


class SearchIndex:
    """BM25 retrieval over a fixed list of products."""

    def __init__(self, products: Sequence[Product], max_results: int = MAX_RESULTS) -> None:
        self.asins: Tuple[str, ...] = tuple(p.asin for p in products)
        self.max_results = max_results
        self._bm25 = bm25s.BM25()
        self._bm25.index([tokenize(document_text(p)) or [""] for p in products], show_progress=False)
        self._vocab = self._bm25.vocab_dict
        self.search = lru_cache(maxsize=8192)(self._search)  # type: ignore[method-assign]

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every product for ``query`` (zeros where no query word occurs)."""
        ids = [self._vocab[t] for t in tokenize(query) if t in self._vocab]
        if not ids:
            return np.zeros(len(self.asins), dtype=np.float32)
        return self._bm25.get_scores_from_ids(ids)

    def _search(self, query: str) -> Tuple[str, ...]:
        """Ids of the best-matching products for ``query``, best first (at most ``max_results``)."""
        scores = self.scores(query)
        hits = np.flatnonzero(scores > 0)
        if hits.size > self.max_results:
            # keep every document tied with the cut-off score so the tie-break stays catalog order
            cutoff = np.partition(scores[hits], hits.size - self.max_results)[hits.size - self.max_results]
            hits = hits[scores[hits] >= cutoff]
        order = np.lexsort((hits, -scores[hits]))
        return tuple(self.asins[i] for i in hits[order][: self.max_results])
