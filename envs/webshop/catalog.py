"""The shop's products and goals, generated deterministically from a seed.

A catalog holds products of the types in ``vocabulary.PRODUCT_TYPES``: each has a brand, a title, a
description, bullet features, a price, attributes and option groups. Products of one type share
words but differ in attributes, options and price; some are near-duplicates of another (same text,
other price and options). A goal is drawn from one product (its target), so a perfect purchase
always exists: 1-3 of its attributes, 0-2 of its option values and a price ceiling above its price.
Goals 0-499 are the test split, the rest the train split.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

from envs.webshop import scoring
from envs.webshop.vocabulary import (
    BRANDS,
    CATEGORY_ATTRIBUTES,
    CATEGORY_ROOTS,
    DESCRIPTIONS,
    FEATURE_CLAIMS,
    FEATURE_FILLERS,
    GENERIC_NOUNS,
    INSTRUCTION_TEMPLATES,
    OPTION_PHRASES,
    PRODUCT_TYPES,
    REVIEWS,
    TITLE_TAILS,
    ProductType,
)

NUM_TEST_GOALS = 500
NUM_PRODUCTS, NUM_GOALS = 3000, 5000
"""The built-in shop's size unless told otherwise (training runs use a smaller one: ``REFERENCE_PRODUCTS`` in the EnvSpec's options)."""
"""Goals ``0..499`` form the test split; the rest are train goals."""

NOUN_LEXICON = frozenset(
    scoring.singular(noun) for kind in PRODUCT_TYPES for noun in kind.nouns
) | frozenset(GENERIC_NOUNS)
"""Every word the scoring's type check treats as a title noun."""


@dataclass(frozen=True)
class Product:
    """One product of the catalog."""

    asin: str
    kind: ProductType
    title: str
    price: float
    description: str
    features: Tuple[str, ...]
    reviews: Tuple[str, ...]
    attributes: Tuple[str, ...]
    options: Dict[str, Tuple[str, ...]]
    category_path: Tuple[str, ...]
    nouns: frozenset = field(default_factory=frozenset)
    text: str = ""
    """Lower-cased title, features and description: what the attribute rule searches."""

    @property
    def query(self) -> str:
        """The search query this product was listed under (its type's)."""
        return self.kind.query


@dataclass(frozen=True)
class Goal:
    """A shopping instruction and what satisfies it."""

    index: int
    instruction: str
    asin: str
    """The product the goal was drawn from (a perfect purchase)."""
    query: str
    category: str
    category_path: Tuple[str, ...]
    nouns: frozenset
    attributes: Tuple[str, ...]
    options: Dict[str, str]
    """Option group -> goal value; the scoring uses the values."""
    price_ceiling: float


@dataclass(frozen=True)
class Catalog:
    """A generated catalog and its goals."""

    seed: int
    products: Tuple[Product, ...]
    goals: Tuple[Goal, ...]
    by_asin: Dict[str, Product]

    def split(self, name: str) -> List[int]:
        """Goal indices of a split: ``test`` (0-499) or ``train`` (500 and up)."""
        if name == "test":
            return list(range(min(NUM_TEST_GOALS, len(self.goals))))
        if name == "train":
            return list(range(NUM_TEST_GOALS, len(self.goals)))
        raise ValueError(f"webshop: split must be 'train' or 'test', got {name!r}")


def _asin(rng: random.Random, taken: set) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    while True:
        asin = "B0" + "".join(rng.choice(alphabet) for _ in range(8))
        if asin not in taken:
            taken.add(asin)
            return asin


def _price(rng: random.Random, low: float, high: float) -> float:
    return math.floor(rng.uniform(low, high)) + rng.choice((0.99, 0.49, 0.95, 0.0))


def _title(rng: random.Random, kind: ProductType, brand: str, attributes: Sequence[str]) -> str:
    words = [brand]
    if rng.random() < 0.7:
        words.append(rng.choice(kind.modifiers))
    words.append(rng.choice(kind.heads))
    words += [a.title() for a in attributes if rng.random() < 0.4]
    tail = rng.choice(TITLE_TAILS[kind.category])
    if tail:
        words.append(tail)
    return " ".join(words)


def _options(rng: random.Random, kind: ProductType) -> Dict[str, Tuple[str, ...]]:
    options: Dict[str, Tuple[str, ...]] = {}
    for group, values in kind.options.items():
        if rng.random() < 0.85:
            picked = rng.sample(values, k=min(len(values), rng.randint(2, 5)))
            ordered = scoring.options_distinct([v for v in values if v in picked])
            if len(ordered) >= 2:
                options[group] = ordered
    return options


def _text(title: str, features: Sequence[str], description: str) -> str:
    return " ".join([title, *features, description]).lower()


def _product(rng: random.Random, kind: ProductType, asin: str) -> Product:
    pool = list(kind.attributes) + list(CATEGORY_ATTRIBUTES[kind.category])
    attributes = tuple(rng.sample(pool, k=rng.randint(1, min(4, len(pool)))))
    brand = rng.choice(BRANDS[kind.category])
    title = _title(rng, kind, brand, attributes)
    features = tuple(f"{a.upper()} - {rng.choice(FEATURE_CLAIMS)}" for a in attributes)
    features += tuple(rng.sample(FEATURE_FILLERS, k=rng.randint(1, 2)))
    description = f"The {brand} {kind.query}. " + " ".join(rng.sample(DESCRIPTIONS[kind.category], k=2))
    return Product(
        asin=asin,
        kind=kind,
        title=title,
        price=_price(rng, *kind.price),
        description=description,
        features=features,
        reviews=tuple(rng.sample(REVIEWS, k=rng.randint(1, 3))),
        attributes=attributes,
        options=_options(rng, kind),
        category_path=(CATEGORY_ROOTS[kind.category], *kind.path),
        nouns=scoring.title_nouns(title, NOUN_LEXICON),
        text=_text(title, features, description),
    )


def _near_duplicate(rng: random.Random, original: Product, asin: str) -> Product:
    """Same listing text under another id and price (cheaper or dearer), with its own options."""
    factor = rng.choice((rng.uniform(1.4, 2.5), rng.uniform(0.6, 0.9)))
    price = max(1.0, math.floor(original.price * factor) + 0.99)
    return dataclasses.replace(original, asin=asin, price=price, options=_options(rng, original.kind))


def _products(rng: random.Random, num_products: int) -> List[Product]:
    taken: set = set()
    products: List[Product] = []
    while len(products) < num_products:
        if products and rng.random() < 0.15:
            products.append(_near_duplicate(rng, rng.choice(products[-50:]), _asin(rng, taken)))
        else:
            products.append(_product(rng, rng.choice(PRODUCT_TYPES), _asin(rng, taken)))
    return products


def _join(phrases: Sequence[str]) -> str:
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _ceiling(rng: random.Random, price: float) -> float:
    raw = price * rng.uniform(1.1, 1.6)
    step = 10.0 if raw > 30 else 5.0 if raw > 10 else 1.0
    return math.ceil(raw / step) * step


def instruction_text(rng: random.Random, kind: ProductType, attributes: Sequence[str],
                     options: Dict[str, str], ceiling: float) -> str:
    """Compose a goal instruction, e.g. ``i need a clip-in hair extension that is natural looking ...``."""
    option_text = _join([OPTION_PHRASES[group].format(value) for group, value in options.items()])
    return rng.choice(INSTRUCTION_TEMPLATES).format(
        type=kind.query,
        attrs=_join(list(attributes)),
        options=(" " + option_text) if option_text else "",
        price=f"{ceiling:.2f}",
    )


def _goal(rng: random.Random, index: int, product: Product) -> Goal:
    attributes = tuple(rng.sample(product.attributes, k=rng.randint(1, min(3, len(product.attributes)))))
    groups = [g for g in product.options if rng.random() < 0.6][:2]
    options = {g: rng.choice(product.options[g]) for g in groups}
    ceiling = _ceiling(rng, product.price)
    return Goal(
        index=index,
        instruction=instruction_text(rng, product.kind, attributes, options, ceiling),
        asin=product.asin,
        query=product.query,
        category=product.kind.category,
        category_path=product.category_path,
        nouns=product.nouns,
        attributes=attributes,
        options=options,
        price_ceiling=ceiling,
    )


def score_goal(goal: Goal, product: Product, chosen: Sequence[str]) -> scoring.ScoreBreakdown:
    """Score buying ``product`` with the ``chosen`` option values against ``goal``."""
    r_type = scoring.type_factor(
        product.query == goal.query, product.category_path, goal.category_path, product.nouns, goal.nouns
    )
    return scoring.score_purchase(
        goal_attributes=goal.attributes,
        goal_options=tuple(goal.options.values()),
        price_ceiling=goal.price_ceiling,
        r_type=r_type,
        product_attributes=product.attributes,
        product_text=product.text,
        chosen_options=chosen,
        price=product.price,
    )


def generate(seed: int = 0, num_products: int = NUM_PRODUCTS, num_goals: int = NUM_GOALS) -> Catalog:
    """Build a catalog of ``num_products`` products and ``num_goals`` goals from ``seed``."""
    if num_products < 1 or num_goals < 1:
        raise ValueError("webshop: num_products and num_goals must be positive")
    rng = random.Random(f"webshop-catalog-{seed}")
    products = _products(rng, num_products)
    goal_rng = random.Random(f"webshop-goals-{seed}")
    by_asin = {p.asin: p for p in products}
    goals = tuple(_goal(goal_rng, i, goal_rng.choice(products)) for i in range(num_goals))
    for goal in goals:  # the target bought with the goal's options must be a perfect purchase
        if score_goal(goal, by_asin[goal.asin], tuple(goal.options.values())).score != 1.0:
            raise AssertionError(f"webshop: goal {goal.index} has no perfect purchase")
    return Catalog(seed=seed, products=tuple(products), goals=goals, by_asin=by_asin)
