"""Pages, actions and episode limits in WebShop's simple text mode."""

import re

from envs.webshop import WebShopEnv
from envs.webshop.agents import oracle_query

SEP = " [SEP] "


def search(env, goal_index: int = 0, query: str = "hair extensions"):
    env.reset(goal_index)
    return env.step(f"search[{query}]")


def test_search_page(env):
    goal = env.shop.catalog.goals[0]
    obs, info = env.reset(0)
    assert obs == f"WebShop [SEP] Instruction: [SEP] {goal.instruction} [SEP] Search"
    assert info["admissible_commands"] == ["search[<your query>]"]
    assert info["task"] == 0 and info["category"] == goal.category
    assert info["won"] is False and info["score"] == 0.0 and info["instruction"] == goal.instruction


def test_search_page_can_hide_the_instruction():
    obs, _ = WebShopEnv(split="test", show_instruction=False).reset(0)
    assert obs == "WebShop [SEP] Search"


def test_results_page_format(env):
    obs, reward, done, info = search(env)
    segments = obs.split(SEP)
    assert segments[:3] == ["Back to Search", "Page 1 (Total results: 50)", "Next >"]
    items = segments[3:]
    assert len(items) == 30
    for asin, title, price in zip(items[::3], items[1::3], items[2::3]):
        assert re.fullmatch(r"B0[A-Z0-9]{8}", asin)
        assert title == env.shop.catalog.by_asin[asin].title
        assert re.fullmatch(r"\$\d+\.\d\d", price)
    assert info["admissible_commands"][:2] == ["click[back to search]", "click[next >]"]
    assert info["admissible_commands"][2:] == [f"click[{a.lower()}]" for a in items[::3]]
    assert (reward, done, info["invalid"]) == (0.0, False, False)


def test_pagination(env):
    first, *_ = search(env)
    obs, *_, info = env.step("click[next >]")
    assert obs.split(SEP)[:4] == ["Back to Search", "Page 2 (Total results: 50)", "< Prev", "Next >"]
    for _ in range(3):
        obs, *_ = env.step("click[next >]")
    assert obs.split(SEP)[:3] == ["Back to Search", "Page 5 (Total results: 50)", "< Prev"]
    assert "Next >" not in obs.split(SEP)[2]
    _, _, _, info = env.step("click[next >]")
    assert info["invalid"] is True
    for _ in range(4):
        obs, *_ = env.step("click[< prev]")
    assert obs == first


def test_item_page_options_and_sub_pages(env):
    product = next(p for p in env.shop.catalog.products if len(p.options) == 2)
    search(env, query=product.title)
    obs, *_, info = env.step(f"click[{product.asin.lower()}]")
    expected = ["Back to Search", "< Prev"]
    for group, values in product.options.items():
        expected += [group, *values]
    expected += [product.title, f"Price: ${product.price:.2f}", "Rating: N.A."]
    expected += ["Description", "Features", "Reviews", "Buy Now"]
    assert obs.split(SEP) == expected
    values = [v for vs in product.options.values() for v in vs]
    assert info["admissible_commands"] == (
        ["click[back to search]", "click[< prev]"]
        + [f"click[{v}]" for v in values]
        + ["click[description]", "click[features]", "click[reviews]", "click[buy now]"]
    )
    env.step(f"click[{values[0]}]")
    assert env.selected_options == {next(iter(product.options)): values[0]}
    obs, *_, info = env.step("click[Features]")  # labels match case-insensitively
    assert obs == SEP.join(["Back to Search", "< Prev", *product.features])
    assert info["admissible_commands"] == ["click[back to search]", "click[< prev]"]
    obs, *_ = env.step("click[< prev]")
    assert obs.split(SEP) == expected and env.selected_options  # back on the item, options kept
    obs, *_ = env.step("click[description]")
    assert obs == f"Back to Search [SEP] < Prev [SEP] {product.description}"
    env.step("click[< prev]")
    obs, *_ = env.step("click[< prev]")
    assert obs.startswith("Back to Search [SEP] Page 1 (Total results:")
    obs, *_, info = env.step("click[back to search]")
    assert obs.startswith("WebShop [SEP] Instruction:") and info["admissible_commands"] == ["search[<your query>]"]


def test_invalid_actions_leave_the_page_unchanged(env):
    obs, *_ = search(env)
    for action in ["search[again]", "click[buy now]", "click[b000000000]", "go north", "click[]"]:
        new_obs, reward, done, info = env.step(action)
        assert (new_obs, reward, done, info["invalid"]) == (obs, 0.0, False, True)
    env.reset(0)
    _, _, _, info = env.step("search[]")
    assert info["invalid"] is True and info["page"] == "search"


def test_a_query_without_matches_gives_an_empty_results_page(env):
    obs, *_, info = search(env, query="zzzz qqqq")
    assert obs == "Back to Search [SEP] Page 1 (Total results: 0)"
    assert info["admissible_commands"] == ["click[back to search]"]


def test_episode_ends_after_max_steps_without_reward():
    env = WebShopEnv(split="test", max_steps=4)
    env.reset(0)
    env.step("search[shoes]")
    outcomes = [env.step("click[next >]") for _ in range(3)]
    assert [done for _, _, done, _ in outcomes] == [False, False, True]
    _, reward, _, info = outcomes[-1]
    assert reward == 0.0 and info["truncated"] and not info["won"] and info["steps"] == 4
    assert info["admissible_commands"] == []
    _, reward, done, info = env.step("click[next >]")  # stepping a finished episode changes nothing
    assert (reward, done, info["invalid"]) == (0.0, True, True)


def test_buy_now_ends_the_episode_with_the_score_page(env):
    goal = env.shop.catalog.goals[1]
    env.reset(1)
    env.step(f"search[{oracle_query(goal)}]")
    obs, *_ = env.step(f"click[{env.page.clickables[2].lower()}]")
    obs, reward, done, info = env.step("click[buy now]")
    assert done and obs.startswith("Thank you for shopping with us! [SEP] Your score (min 0.0, max 1.0) [SEP] ")
    assert obs.endswith(f"{info['score']:.2f}") and info["admissible_commands"] == []
