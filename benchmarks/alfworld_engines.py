"""ALFWorld engines: speed of the python engine and of the real TextWorld engine, and their lock-step parity.

    OMP_NUM_THREADS=1 python benchmarks/alfworld_engines.py [--games 60] [--real-games 12] [--markdown]

Generates ``--games`` fresh games (seed 2026, all six types), plays seeded episodes with resets
through the python engine, then plays walkthroughs, expert-guided walks and biased random walks
through both engines in lock step on ``--real-games`` of them plus the shipped fixtures.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from envs.alfworld import AlfredEngine, fixture_games, load_game  # noqa: E402
from envs.alfworld.generate import Knobs, generate  # noqa: E402
from envs.alfworld.parity import ParityReport, biased_random_chooser, guided_chooser, lockstep, walkthrough_chooser  # noqa: E402


def python_speed(games: list, episodes: int, horizon: int, seed: int = 0) -> dict:
    """Steps per second of the python engine, resets included, on random episodes over many games."""
    rng = random.Random(seed)
    engines = [AlfredEngine(load_game(g).spec) for g in games]
    steps, resets = 0, 0
    start = time.perf_counter()
    for episode in range(episodes):
        engine = engines[episode % len(engines)]
        _, admissible, won = engine.reset()
        resets += 1
        for _ in range(horizon):
            if won:
                break
            _, admissible, won = engine.step(rng.choice(admissible))
            steps += 1
    seconds = time.perf_counter() - start
    reset_start = time.perf_counter()
    for engine in engines:
        engine.reset()
    reset_ms = (time.perf_counter() - reset_start) / len(engines) * 1e3
    tracemalloc.start()
    AlfredEngine(load_game(games[0]).spec).reset()
    memory = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"engine": "python", "episodes": episodes, "steps": steps, "steps/s (incl. resets)": steps / seconds,
            "reset ms": reset_ms, "MiB per game": memory}


def parity(games: list, horizon: int) -> tuple[ParityReport, dict]:
    from envs.alfworld.textworld_engine import TextWorldEngine

    real = TextWorldEngine()
    total = ParityReport()
    reset_seconds = []
    try:
        for index, path in enumerate(games):
            game = load_game(path)
            real.load(path)
            start = time.perf_counter()
            real.reset()
            reset_seconds.append(time.perf_counter() - start)
            engine = AlfredEngine(game.spec)
            total.add(lockstep(real, engine, game, "walkthrough", walkthrough_chooser(game)))
            total.add(lockstep(real, engine, game, "guided", guided_chooser(game, engine, 1000 * index, horizon)))
            total.add(lockstep(real, engine, game, "random", biased_random_chooser(game, 1000 * index, horizon)))
    finally:
        real.close()
    speed = {"engine": "textworld", "episodes": total.walks, "steps": total.steps,
             "steps/s (incl. resets)": total.steps / total.seconds["reference"],
             "reset ms": 1e3 * sum(reset_seconds) / len(reset_seconds), "MiB per game": "– (one engine per process)"}
    return total, speed


def render(rows: list[dict], markdown: bool) -> str:
    columns = list(rows[0])
    cells = [[f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v) for v in r.values()] for r in rows]
    if markdown:
        return "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + ["| " + " | ".join(c) + " |" for c in cells])
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in [columns] + cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=60, help="fresh games for the python engine's speed")
    parser.add_argument("--episodes", type=int, default=3000)
    parser.add_argument("--horizon", type=int, default=50)
    parser.add_argument("--real-games", type=int, default=12, help="fresh games also played by the real engine")
    parser.add_argument("--parity-horizon", type=int, default=20)
    parser.add_argument("--split", default="train", choices=["train", "valid_seen", "valid_unseen"])
    parser.add_argument("--max-receptacles", type=int, default=0, help="generator knob (0: all)")
    parser.add_argument("--distractors", type=int, default=12, help="generator knob")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        knobs = Knobs(max_receptacles=args.max_receptacles, distractors=args.distractors)
        games = list(generate(Path(folder), args.split, args.games, seed=2026, knobs=knobs))
        rows = [python_speed(games, args.episodes, args.horizon)]
        report, real_speed = parity(fixture_games() + games[: args.real_games], args.parity_horizon)
    rows.append(real_speed)
    print(render(rows, args.markdown))
    print(f"\nparity: {len(fixture_games()) + min(args.real_games, args.games)} games, {report.walks} walks "
          f"({report.won_walks} won, {report.lost_walks} not), {report.steps} steps, {len(report.mismatches)} mismatches")
    for mismatch in report.mismatches[:3]:
        print(mismatch)
    print(f"python engine is {rows[0]['steps/s (incl. resets)'] / real_speed['steps/s (incl. resets)']:,.0f}x faster "
          f"(target >= 5,000 steps/s per core: {'met' if rows[0]['steps/s (incl. resets)'] >= 5000 else 'NOT met'})")


if __name__ == "__main__":
    main()
