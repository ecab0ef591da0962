"""A self-contained WebShop: generated catalog, BM25 search, the real one's text pages and scoring.

``envs.make("webshop", split="test", goal=3)`` builds a :class:`WebShopEnv`; with
``server_url=...`` it builds a :class:`RemoteWebShopEnv` for a real WebShop server instead.
See ``docs/webshop.md``.
"""

from proxmo.extras import require

require("envs", "WebShop (envs.webshop)", ["rapidfuzz", "bm25s"])

from envs.base import register
from envs.webshop.agents import OracleAgent, RandomAgent, run_episode
from envs.webshop.catalog import Catalog, Goal, Product, generate, score_goal
from envs.webshop.env import WebShopEnv, load_shop, make_webshop
from envs.webshop.remote import RemoteWebShopEnv
from envs.webshop.scoring import ScoreBreakdown, score_purchase
from envs.webshop.spec import WEBSHOP, search_queries

register("webshop", make_webshop, WEBSHOP)

__all__ = [
    "Catalog",
    "Goal",
    "OracleAgent",
    "Product",
    "RandomAgent",
    "RemoteWebShopEnv",
    "ScoreBreakdown",
    "WebShopEnv",
    "generate",
    "load_shop",
    "make_webshop",
    "run_episode",
    "score_goal",
    "score_purchase",
    "search_queries",
]
