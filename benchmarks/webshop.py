"""WebShop benchmark: environment steps per second (one thread), with the oracle and a random agent.

Builds the default shop (timed), then plays episodes on the test goals: the oracle on every test
goal, the random agent on ``--random-episodes`` goals, and a search-only run (reset + one search
per test goal). The search memo is cleared before each row, so searches are real BM25 queries.

    OMP_NUM_THREADS=1 python benchmarks/webshop.py [--random-episodes 5000] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from typing import Callable, List

os.environ.setdefault("OMP_NUM_THREADS", "1")

from envs.webshop import OracleAgent, RandomAgent, WebShopEnv, load_shop, run_episode  # noqa: E402
from envs.webshop.agents import Episode, oracle_query  # noqa: E402


@dataclass
class Row:
    name: str
    episodes: int
    steps: int
    searches: int
    seconds: float
    mean_score: float
    success: float

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds


def _measure(name: str, env: WebShopEnv, play: Callable[[], List[Episode]]) -> Row:
    env.shop.index.search.cache_clear()
    start = time.perf_counter()
    episodes = play()
    seconds = time.perf_counter() - start
    n = len(episodes)
    return Row(
        name,
        n,
        sum(e.steps for e in episodes),
        sum(e.searches for e in episodes),
        seconds,
        sum(e.score for e in episodes) / n,
        sum(e.won for e in episodes) / n,
    )


def _search_only(env: WebShopEnv) -> List[Episode]:
    episodes = []
    for task in env.tasks():
        env.reset(task)
        env.step(f"search[{oracle_query(env.goal)}]")
        episodes.append(Episode(task, 1, 1, 0.0, 0.0, False))
    return episodes


def run(random_episodes: int) -> List[Row]:
    env = WebShopEnv(split="test")
    tasks = env.tasks()
    oracle, random_agent = OracleAgent(env), RandomAgent(seed=0)
    return [
        _measure("oracle (500 test goals)", env, lambda: [run_episode(env, oracle, t) for t in tasks]),
        _measure(
            f"random ({random_episodes} episodes)",
            env,
            lambda: [run_episode(env, random_agent, tasks[i % len(tasks)]) for i in range(random_episodes)],
        ),
        _measure("search steps only (500)", env, lambda: _search_only(env)),
    ]


def _table(rows: List[Row], markdown: bool) -> str:
    header = ["run", "episodes", "steps", "searches", "seconds", "steps/s", "mean score", "success"]
    body = [
        [r.name, str(r.episodes), str(r.steps), str(r.searches), f"{r.seconds:.2f}", f"{r.steps_per_s:,.0f}",
         f"{r.mean_score:.3f}", f"{r.success:.1%}"]
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(row, widths)) for row in [header, *body])


def main(argv: List[str] | None = None) -> List[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random-episodes", type=int, default=5000)
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    shop = load_shop()
    print(f"shop: {len(shop.catalog.products)} products, {len(shop.catalog.goals)} goals, "
          f"built with its BM25 index in {time.perf_counter() - start:.2f} s")
    rows = run(args.random_episodes)
    print(_table(rows, args.markdown))
    return rows


if __name__ == "__main__":
    main()
