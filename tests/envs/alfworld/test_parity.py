"""The python engine equals the real TextWorld engine on every shipped game: same text, commands and `won` at every step."""

import pytest

from envs.alfworld import AlfredEngine, fixture_games, load_game
from envs.alfworld.parity import ParityReport, biased_random_chooser, guided_chooser, lockstep, walkthrough_chooser

GAMES = fixture_games()


@pytest.fixture(scope="module")
def real_engine():
    from envs.alfworld.textworld_engine import TextWorldEngine

    engine = TextWorldEngine()
    yield engine
    engine.close()


@pytest.mark.integration
def test_parity_on_every_fixture_game(real_engine):
    total = ParityReport()
    random_walks = ParityReport()
    for index, path in enumerate(GAMES):
        game = load_game(path)
        real_engine.load(path)
        python_engine = AlfredEngine(game.spec)
        walk = lockstep(real_engine, python_engine, game, "walkthrough", walkthrough_chooser(game))
        assert walk.won_walks == 1 or walk.mismatches, f"walkthrough of {path} does not win"
        total.add(walk)
        seed = 1000 * index
        for name, choose in (("guided", guided_chooser(game, python_engine, seed, horizon=25)),
                             ("random", biased_random_chooser(game, seed, horizon=15))):
            walk = lockstep(real_engine, python_engine, game, name, choose)
            total.add(walk)
            random_walks.add(walk)
    assert not total.mismatches, "\n\n".join(str(m) for m in total.mismatches[:5])
    assert total.walks == 3 * len(GAMES) and total.steps > 15 * len(GAMES)
    assert random_walks.won_walks > 0 and random_walks.lost_walks > 0  # both endings are exercised


def test_the_textworld_engine_is_one_per_process(real_engine):
    from envs.alfworld.textworld_engine import TextWorldEngine

    with pytest.raises(RuntimeError, match="one TextWorld PDDL environment"):
        TextWorldEngine()
