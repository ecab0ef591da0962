"""The python engine on the shipped generated games: loading, walkthroughs, goal conditions, refusals."""

import json
import shutil

import pytest

from envs.alfworld import CATEGORIES, AlfredEngine, UnsupportedGame, fixture_games, load_game
from envs.alfworld.engine import HELP_TEXT, NOTHING_HAPPENS, listing
from envs.alfworld.pddl import display_names

GAMES = fixture_games()


def test_fixtures_cover_every_category_in_two_splits():
    categories = [load_game(g).category for g in GAMES]
    assert sorted(set(categories)) == sorted(CATEGORIES)
    assert {g.parents[2].name for g in GAMES} == {"train", "valid_unseen"}


@pytest.mark.parametrize("path", GAMES, ids=lambda p: p.parent.parent.name)
def test_walkthrough_wins_and_goal_conditions_rise_to_one(path):
    game = load_game(path)
    engine = AlfredEngine(game.spec)
    text, admissible, won = engine.reset()
    assert text.startswith("-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room.")
    assert text.endswith("Your task is to: " + game.spec.task_desc) and not won
    assert admissible == sorted(admissible) and "help" in admissible
    rates = []
    for command in game.walkthrough:
        assert command in admissible
        text, admissible, won = engine.step(command)
        satisfied, total = engine.goal_conditions()
        rates.append(satisfied / total)
    assert won and rates[-1] == 1.0 and all(r < 1.0 for r in rates[:-1])


def test_commands_that_are_not_admissible_do_nothing():
    engine = AlfredEngine(load_game(GAMES[0]).spec)
    start = engine.reset()
    assert engine.step("jump around") == (NOTHING_HAPPENS, start[1], False)
    assert engine.step("help")[0] == HELP_TEXT


def test_look_from_the_start_sees_nothing_but_the_intro_lists_every_receptacle():
    engine = AlfredEngine(load_game(GAMES[0]).spec)
    intro = engine.reset()[0]
    assert "you see a " in intro
    assert engine.step("look")[0] == "You are in the middle of a room. Looking quickly around you, you see nothing."


def test_lists_and_names_follow_textworld():
    assert listing([]) == "nothing" and listing(["a x"]) == "a x"
    assert listing(["a x", "a y"]) == "a x, and a y"
    names = display_names(["cabinet_bar__plus_00_dot_10", "cabinet_bar__minus_00_dot_50", "sink_bar_1_bar_sinkbasin", "agent1"])
    # numbers are handed out over sorted ids in descending order
    assert names["cabinet_bar__minus_00_dot_50"] == "cabinet 2" and names["cabinet_bar__plus_00_dot_10"] == "cabinet 1"
    assert names["sink_bar_1_bar_sinkbasin"] == "sinkbasin 1" and names["agent1"] == "agent1 "


def _copy_game(tmp_path, mutate):
    src = GAMES[0].parent
    dst = tmp_path / src.parent.name / src.name
    shutil.copytree(src, dst)
    data = json.loads((dst / "game.tw-pddl").read_text())
    mutate(data)
    (dst / "game.tw-pddl").write_text(json.dumps(data))
    return dst / "game.tw-pddl"


def test_old_put_wording_is_refused_clearly(tmp_path):
    path = _copy_game(tmp_path, lambda d: d.update(grammar=d["grammar"].replace(
        "You move the {o.name} to the {r.name}.", "You put the {o.name} in/on the {r.name}.").replace(
        "move (object) to (receptacle)", "put (object) in/on (receptacle)")))
    with pytest.raises(UnsupportedGame, match="put X in/on Y"):
        load_game(path)


def test_sliced_tasks_are_refused_clearly(tmp_path):
    path = _copy_game(tmp_path, lambda d: None)
    traj = json.loads((path.parent / "traj_data.json").read_text())
    traj["pddl_params"]["object_sliced"] = True
    (path.parent / "traj_data.json").write_text(json.dumps(traj))
    with pytest.raises(ValueError, match="sliced"):
        AlfredEngine(load_game(path).spec)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no game file"):
        load_game(tmp_path)
    path = _copy_game(tmp_path, lambda d: None)
    (path.parent / "traj_data.json").unlink()
    with pytest.raises(FileNotFoundError, match="traj_data.json"):
        load_game(path)
