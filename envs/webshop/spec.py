"""What a trainer needs to know about WebShop: its splits, the instruction as the task, and concrete search queries."""

from __future__ import annotations

import inspect
import re
from typing import List, Sequence

from envs.base import EnvSpec, Info, ResultColumn
from envs.webshop.env import WebShopEnv
from envs.webshop.vocabulary import CATEGORY_ROOTS
from envs.webshop.remote import RemoteWebShopEnv, check_server_url

_PRICE = re.compile(r",?\s*and price lower than .*$", re.I)
_OPENING = re.compile(r"^(i need|i want|i am looking for|i'm looking for|find me|looking for)\s+(an? )?", re.I)


def task_text(observation: str, info: Info) -> str:
    """The shopping instruction (the environment reports it in ``info``)."""
    return str(info.get("instruction", "") or "")


def search_queries(instruction: str) -> List[str]:
    """Concrete queries that stand in for ``search[<your query>]``: the whole instruction and its product phrase.

    The product phrase is the instruction without its opening words and price clause.
    """
    full = instruction.strip().rstrip(".")
    short = _OPENING.sub("", _PRICE.sub("", full)).strip(" ,")
    queries = [full] if full else []
    if short and short != full:
        queries.append(short)
    return queries


def candidates(admissible: Sequence[str], task: str) -> List[str]:
    """The admissible actions with the search placeholder replaced by concrete queries."""
    result: List[str] = []
    for action in admissible:
        if action.startswith("search[") and "<" in action:
            result.extend(f"search[{query}]" for query in search_queries(task))
        else:
            result.append(action)
    return result


def _option_names() -> frozenset:
    names = {"server_url"}
    for cls in (WebShopEnv, RemoteWebShopEnv):
        names.update(p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "server_url"))
    return frozenset(names)


def _check_options(options) -> None:
    """A server address is checked when the config is read, not when the first environment connects."""
    if "server_url" in options and options["server_url"] is not None:
        try:
            check_server_url(options["server_url"])
        except ValueError as error:
            raise ValueError(f"env.options.{error}") from None


REFERENCE_PRODUCTS = 1000
"""The catalog size of the reference training runs (a smaller shop than the built-in default: faster to build)."""

WEBSHOP = EnvSpec(
    intro="You are an expert agent shopping on the WebShop e-commerce site.",
    train_split="train",
    eval_split="test",
    defaults={"num_products": REFERENCE_PRODUCTS, "show_instruction": False},
    task_text=task_text,
    candidates=candidates,
    options=_option_names(),
    corpus=lambda info: [str(info.get("instruction", ""))],
    check_options=_check_options,
    categories=tuple(CATEGORY_ROOTS),
    result_columns=(ResultColumn("WS score", "score"), ResultColumn("WS succ")),
)
