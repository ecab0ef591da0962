"""The generated catalog (determinism, splits, distinguishable vocabulary) and BM25 search relevance."""

import statistics
from itertools import combinations

from envs.webshop import WebShopEnv, generate, load_shop, score_goal, scoring, vocabulary
from envs.webshop.agents import oracle_query


def test_same_seed_same_shop_other_seed_other_shop():
    a, b, c = (generate(seed=seed, num_products=300, num_goals=600) for seed in (1, 1, 2))
    assert [(p.asin, p.title, p.price, p.options) for p in a.products] == [
        (p.asin, p.title, p.price, p.options) for p in b.products
    ]
    assert [g.instruction for g in a.goals] == [g.instruction for g in b.goals]
    assert [p.title for p in a.products] != [p.title for p in c.products]


def test_splits_and_tasks():
    catalog = load_shop().catalog
    assert catalog.split("test") == list(range(500))
    assert catalog.split("train") == list(range(500, len(catalog.goals)))
    assert WebShopEnv(split="test").tasks() == list(range(500))


def test_every_goal_has_a_perfect_purchase_and_sensible_fields():
    catalog = load_shop().catalog
    for goal in catalog.goals:
        product = catalog.by_asin[goal.asin]
        assert score_goal(goal, product, tuple(goal.options.values())).score == 1.0
        assert 1 <= len(goal.attributes) <= 3 and len(goal.options) <= 2
        assert goal.price_ceiling >= product.price
        assert goal.instruction.endswith(f"price lower than {goal.price_ceiling:.2f} dollars")
        assert goal.category in vocabulary.CATEGORY_ROOTS


def test_catalog_has_distractors_and_near_duplicates():
    catalog = load_shop().catalog
    titles = [p.title for p in catalog.products]
    assert len(set(titles)) < len(titles)  # near-duplicates share a title at another price
    assert len({p.kind.category for p in catalog.products}) == 5
    for product in catalog.products:  # no option value of a product can pass for another of its group
        for values in product.options.values():
            assert all(not scoring.option_matches(a, b) for a, b in combinations(values, 2))


def test_vocabulary_keeps_attributes_apart():
    for category in vocabulary.CATEGORY_ROOTS:
        kinds = [k for k in vocabulary.PRODUCT_TYPES if k.category == category]
        attributes = set(vocabulary.CATEGORY_ATTRIBUTES[category]).union(*(k.attributes for k in kinds))
        for a, b in combinations(sorted(attributes), 2):
            assert not scoring.fuzzy_match(a, b) and a not in b and b not in a, (a, b)
        texts = [*vocabulary.DESCRIPTIONS[category], *vocabulary.FEATURE_CLAIMS, *vocabulary.FEATURE_FILLERS,
                 *vocabulary.TITLE_TAILS[category], *vocabulary.BRANDS[category]]
        texts += [t for k in kinds for t in (*k.heads, *k.modifiers, k.query)]
        for attribute in attributes:
            assert not any(attribute in text.lower() for text in texts), attribute


def test_search_returns_only_matches_best_first():
    index = load_shop().index
    assert index.search("qqqq") == ()
    hits = index.search("hair extensions")
    assert len(hits) == 50
    scores = index.scores("hair extensions")
    ranked = [scores[index.asins.index(a)] for a in hits]
    assert all(s > 0 for s in ranked) and ranked == sorted(ranked, reverse=True)


def test_oracle_query_finds_the_goal_product():
    shop = load_shop()
    ranks = []
    for goal in shop.catalog.goals[:500]:
        hits = shop.index.search(oracle_query(goal))
        ranks.append(hits.index(goal.asin) if goal.asin in hits else 50)
    assert sum(r < 50 for r in ranks) >= 0.95 * len(ranks)
    assert statistics.median(ranks) <= 15  # 0-based; 9 on the default shop


def test_index_is_built_once_per_config():
    assert WebShopEnv(split="test").shop is WebShopEnv(split="train").shop
