"""WebShop's published purchase score: type factor times the share of attributes, options and price met.

For a goal with attributes ``A``, option values ``O`` and a price ceiling, and a bought product with
the options the shopper chose::

    score = r_type * (attributes matched + options matched + price ok) / (|A| + |O| + 1)

* an attribute matches when ``token_set_ratio`` (rapidfuzz, default processing: lower-cased,
  punctuation removed) is above 85 against one of the product's attributes, or else when it is a
  substring of the lower-cased title, features or description;
* an option matches when, after colour normalisation, ``token_set_ratio`` is above 85 against one
  of the chosen options;
* ``r_type`` is 1 when the product came from the goal's query, shares at least two category levels
  with the goal's product, or its title shares more than 20% of the goal product's title nouns;
  otherwise 0.5; it then drops to 0.1 when the noun overlap is below 10% and to 0 when it is zero.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence, Tuple

from rapidfuzz import fuzz
from rapidfuzz.utils import default_process

from envs.webshop.vocabulary import COLOR_SYNONYMS, COLORS

FUZZY_THRESHOLD = 85.0
"""A fuzzy token-set match counts when its ratio is above this (0-100)."""

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class ScoreBreakdown:
    """Every term of one purchase's score, for logs and tests."""

    r_type: float
    attributes_matched: int
    options_matched: int
    price_ok: bool
    n_attributes: int
    n_options: int

    @property
    def score(self) -> float:
        """The purchase score in [0, 1]."""
        matched = self.attributes_matched + self.options_matched + int(self.price_ok)
        return self.r_type * matched / (self.n_attributes + self.n_options + 1)


def fuzzy_match(a: str, b: str) -> bool:
    """Whether two phrases match under the scoring's fuzzy token-set rule."""
    return fuzz.token_set_ratio(a, b, processor=default_process) > FUZZY_THRESHOLD


def normalize_color(value: str) -> str:
    """Map an option value that names a colour to the canonical colour (``heather grey`` -> ``gray``)."""
    words = [COLOR_SYNONYMS.get(word, word) for word in _WORD.findall(value.lower())]
    for color in COLORS:
        if color in words:
            return color
    return " ".join(words)


def option_matches(goal_option: str, chosen: str) -> bool:
    """Whether a chosen option value satisfies a goal option value."""
    return fuzzy_match(normalize_color(goal_option), normalize_color(chosen))


def attribute_matches(goal_attribute: str, attributes: Sequence[str], text: str) -> bool:
    """Whether a goal attribute is met: a fuzzy match to a product attribute, else a substring of ``text``.

    ``text`` is the product's lower-cased title, features and description joined.
    """
    if any(fuzzy_match(goal_attribute, attribute) for attribute in attributes):
        return True
    return goal_attribute.lower() in text


def singular(word: str) -> str:
    """A crude singular for noun comparison (``extensions`` -> ``extension``, ``glasses`` -> ``glass``)."""
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def title_nouns(title: str, nouns: Iterable[str]) -> frozenset:
    """The nouns of ``title``: its words (singular) that appear in the noun lexicon ``nouns``."""
    lexicon = set(nouns)
    return frozenset(w for w in (singular(word) for word in _WORD.findall(title.lower())) if w in lexicon)


def type_factor(
    same_query: bool,
    product_path: Sequence[str],
    goal_path: Sequence[str],
    product_nouns: frozenset,
    goal_nouns: frozenset,
) -> float:
    """``r_type``: how much the bought product is the goal's kind of product (1, 0.5, 0.1 or 0)."""
    overlap = len(product_nouns & goal_nouns) / len(goal_nouns) if goal_nouns else 1.0
    shared_levels = len({level.lower() for level in product_path} & {level.lower() for level in goal_path})
    r_type = 1.0 if (same_query or shared_levels >= 2 or overlap > 0.2) else 0.5
    if overlap < 0.1:
        r_type = 0.1
    if overlap == 0.0:
        r_type = 0.0
    return r_type


def score_purchase(
    *,
    goal_attributes: Sequence[str],
    goal_options: Sequence[str],
    price_ceiling: Optional[float],
    r_type: float,
    product_attributes: Sequence[str],
    product_text: str,
    chosen_options: Sequence[str],
    price: float,
) -> ScoreBreakdown:
    """Score one purchase; ``product_text`` is the lower-cased title, features and description."""
    attributes = sum(attribute_matches(a, product_attributes, product_text) for a in goal_attributes)
    options = sum(any(option_matches(o, c) for c in chosen_options) for o in goal_options)
    price_ok = price_ceiling is None or price <= price_ceiling
    return ScoreBreakdown(r_type, attributes, options, price_ok, len(goal_attributes), len(goal_options))


def options_distinct(values: Sequence[str]) -> Tuple[str, ...]:
    """Keep values in order, dropping any that the option rule would confuse with one already kept."""
    kept: list = []
    for value in values:
        if not any(option_matches(value, other) or option_matches(other, value) for other in kept):
            kept.append(value)
    return tuple(kept)


def chosen_values(selected: Mapping[str, str]) -> Tuple[str, ...]:
    """The chosen option values of a purchase, in group order."""
    return tuple(selected.values())


REWARD_MODES = ("success", "score")


def check_reward_mode(mode: str) -> str:
    if mode not in REWARD_MODES:
        raise ValueError(f"reward_mode: expected one of {REWARD_MODES}, got {mode!r}")
    return mode


def purchase_reward(score: float, success_reward: float, mode: str) -> float:
    """The reward of a purchase with ``score``: the success reward at 1.0 only, or scaled by the score."""
    if mode == "score":
        return success_reward * score
    return success_reward if score == 1.0 else 0.0
