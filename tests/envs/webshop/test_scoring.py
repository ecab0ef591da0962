"""The published WebShop score on hand-built purchases, and through the environment's Buy Now."""

import pytest

from envs.webshop import scoring
from envs.webshop.agents import OracleAgent

GOAL_ATTRIBUTES = ("natural looking", "heat resistant")
GOAL_OPTIONS = ("black", "20 inch")
PRODUCT_ATTRIBUTES = ("natural looking", "heat resistant", "double weft")
PRODUCT_TEXT = "lumora clip in hair extensions natural looking heat resistant double weft"


def score(**overrides) -> float:
    purchase = dict(
        goal_attributes=GOAL_ATTRIBUTES,
        goal_options=GOAL_OPTIONS,
        price_ceiling=40.0,
        r_type=1.0,
        product_attributes=PRODUCT_ATTRIBUTES,
        product_text=PRODUCT_TEXT,
        chosen_options=("jet black", "20 inch"),
        price=29.99,
    )
    purchase.update(overrides)
    return scoring.score_purchase(**purchase).score


def test_exact_item_scores_one():
    assert score() == 1.0


def test_wrong_option_loses_its_share():
    assert score(chosen_options=("auburn red", "20 inch")) == pytest.approx(4 / 5)
    assert score(chosen_options=()) == pytest.approx(3 / 5)


def test_over_budget_loses_the_price_share():
    assert score(price=40.0) == 1.0
    assert score(price=40.01) == pytest.approx(4 / 5)


def test_partial_attributes():
    assert score(product_attributes=("natural looking",), product_text="hair extensions") == pytest.approx(4 / 5)
    assert score(product_attributes=(), product_text="hair extensions") == pytest.approx(3 / 5)


def test_attribute_matches_fuzzily_or_as_a_substring_of_the_text():
    assert scoring.attribute_matches("natural looking", ("Natural-Looking",), "")
    assert scoring.attribute_matches("heat resistant", (), "heat resistant fibres, 20 inch")
    assert not scoring.attribute_matches("heat resistant", ("tangle free",), "hair extensions")


def test_colour_normalisation_of_options():
    assert scoring.normalize_color("Heather Grey") == "gray"
    assert scoring.option_matches("gray", "heather grey")
    assert scoring.option_matches("black", "jet black")
    assert not scoring.option_matches("black", "navy")
    assert not scoring.option_matches("1 pack", "2 pack")


def test_wrong_type_scores_zero():
    r_type = scoring.type_factor(
        same_query=False,
        product_path=("Electronics", "Headphones"),
        goal_path=("Beauty & Personal Care", "Hair Care"),
        product_nouns=frozenset({"earbud"}),
        goal_nouns=frozenset({"hair", "extension"}),
    )
    assert r_type == 0.0
    assert score(r_type=r_type) == 0.0


@pytest.mark.parametrize(
    "shared, same_query, levels, expected",
    [
        (2, False, 1, 1.0),  # noun overlap 2/8 > 20%
        (1, False, 1, 0.5),  # 1/8: between 10% and 20%
        (1, True, 1, 1.0),  # same query
        (1, False, 2, 1.0),  # two shared category levels
        (0, True, 3, 0.0),  # no shared noun at all
    ],
)
def test_type_factor(shared, same_query, levels, expected):
    goal_nouns = frozenset(f"n{i}" for i in range(8))
    product_nouns = frozenset(f"n{i}" for i in range(shared)) | {"other"}
    goal_path = ("Root", "A", "B")
    product_path = goal_path[:levels] + ("X", "Y")[: 3 - levels]
    assert scoring.type_factor(same_query, product_path, goal_path, product_nouns, goal_nouns) == expected


def test_type_factor_drops_to_a_tenth_below_ten_percent_overlap():
    goal_nouns = frozenset(f"n{i}" for i in range(11))
    assert scoring.type_factor(True, ("R",), ("R",), frozenset({"n0"}), goal_nouns) == 0.1


def test_buying_through_the_env(env):
    goal = next(g for g in env.shop.catalog.goals[:500] if g.options)
    product = env.shop.catalog.by_asin[goal.asin]
    _, info = env.reset(goal.index)
    agent = OracleAgent(env)
    done, reward = False, 0.0
    while not done:
        _, reward, done, info = env.step(agent.act("", info))
    assert (reward, info["score"], info["won"]) == (10.0, 1.0, True)
    # the same product, bought without choosing options, misses every goal option
    env.reset(goal.index)
    env.step(f"search[{product.title}]")
    env.step(f"click[{product.asin.lower()}]")
    _, reward, done, info = env.step("click[buy now]")
    expected = (len(goal.attributes) + 1) / (len(goal.attributes) + len(goal.options) + 1)
    assert done and info["score"] == pytest.approx(expected)
    assert reward == 0.0 and not info["won"]


def test_purchase_reward_modes():
    from envs.webshop.scoring import check_reward_mode, purchase_reward

    assert purchase_reward(1.0, 10.0, "success") == 10.0
    assert purchase_reward(0.75, 10.0, "success") == 0.0
    assert purchase_reward(0.75, 10.0, "score") == 7.5
    with pytest.raises(ValueError, match="reward_mode"):
        check_reward_mode("dense")
