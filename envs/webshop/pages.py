"""The shop's pages in WebShop's simple text mode: visible segments and the labels one can click.

An observation is a page's segments joined by `` [SEP] ``. Clickable labels are kept as shown;
actions name them lower-cased (``click[b0abc12345]``, ``click[next >]``), as WebShop does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from envs.webshop.catalog import Product

SEP = " [SEP] "
RESULTS_PER_PAGE = 10

BACK_TO_SEARCH = "Back to Search"
PREV = "< Prev"
NEXT = "Next >"
BUY_NOW = "Buy Now"
SUB_PAGES = ("Description", "Features", "Reviews")
SEARCH_PLACEHOLDER = "search[<your query>]"
"""How the search action appears among the admissible commands; any ``search[...]`` is accepted."""


@dataclass(frozen=True)
class Page:
    """What one page shows and offers."""

    kind: str
    """``search``, ``results``, ``item``, ``description``, ``features``, ``reviews`` or ``done``."""
    segments: Tuple[str, ...]
    clickables: Tuple[str, ...]
    has_search_bar: bool = False

    @property
    def text(self) -> str:
        """The observation: segments joined by `` [SEP] ``."""
        return SEP.join(self.segments)

    def commands(self) -> list:
        """The admissible actions, in page order."""
        search = [SEARCH_PLACEHOLDER] if self.has_search_bar else []
        return search + [f"click[{label.lower()}]" for label in self.clickables]


def search_page(instruction: str) -> Page:
    """The start page: the instruction and a search bar."""
    return Page("search", ("WebShop", "Instruction:", instruction, "Search"), (), has_search_bar=True)


def n_pages(n_results: int) -> int:
    """How many result pages ``n_results`` results fill (at least one)."""
    return max(1, -(-n_results // RESULTS_PER_PAGE))


def results_page(results: Tuple[Product, ...], page: int) -> Page:
    """Page ``page`` (1-based) of a result list: 10 items with id, title and price."""
    segments = [BACK_TO_SEARCH, f"Page {page} (Total results: {len(results)})"]
    nav = ([PREV] if page > 1 else []) + ([NEXT] if page < n_pages(len(results)) else [])
    shown = results[(page - 1) * RESULTS_PER_PAGE : page * RESULTS_PER_PAGE]
    for product in shown:
        segments += [product.asin, product.title, f"${product.price:.2f}"]
    clickables = [BACK_TO_SEARCH, *nav, *(p.asin for p in shown)]
    return Page("results", tuple(segments[:2] + nav + segments[2:]), tuple(clickables))


def item_page(product: Product) -> Page:
    """An item: option groups and values, title, price, rating, sub-page buttons and Buy Now."""
    segments = [BACK_TO_SEARCH, PREV]
    values = []
    for group, group_values in product.options.items():
        segments += [group, *group_values]
        values += group_values
    segments += [product.title, f"Price: ${product.price:.2f}", "Rating: N.A.", *SUB_PAGES, BUY_NOW]
    return Page("item", tuple(segments), (BACK_TO_SEARCH, PREV, *values, *SUB_PAGES, BUY_NOW))


def sub_page(product: Product, name: str) -> Page:
    """An item's Description, Features or Reviews page."""
    body = {
        "description": (product.description,),
        "features": product.features,
        "reviews": product.reviews,
    }[name]
    return Page(name, (BACK_TO_SEARCH, PREV, *body), (BACK_TO_SEARCH, PREV))


def done_page(score: float) -> Page:
    """The page after Buy Now."""
    return Page("done", ("Thank you for shopping with us!", "Your score (min 0.0, max 1.0)", f"{score:.2f}"), ())
