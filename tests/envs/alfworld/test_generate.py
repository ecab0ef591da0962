"""The game generator: official layout, determinism, splits, knobs, solvability, and its command."""

import json

import pytest
from typer.testing import CliRunner

from envs.alfworld import TASK_TYPES, AlfredEngine, find_games, load_game
from envs.alfworld.generate import Knobs, floor_plans, generate, generate_game
from envs.alfworld.pddl import init_facts, parse_sexp
from proxmo.cli import app


def test_official_folder_layout_and_files(tmp_path):
    paths = list(generate(tmp_path, "train", 6, seed=3))
    assert len(paths) == 6
    for path in paths:
        trial = path.parent
        assert {p.name for p in trial.iterdir()} == {"game.tw-pddl", "traj_data.json", "initial_state.pddl"}
        assert trial.parents[1] == tmp_path / "train" and trial.name.startswith("trial_T")
        task_type, obj, mrecep, parent, scene = trial.parent.name.split("-")
        traj = json.loads((trial / "traj_data.json").read_text())
        assert (task_type, obj, mrecep, int(scene)) == (traj["task_type"], traj["pddl_params"]["object_target"], "None",
                                                        traj["scene"]["scene_num"])
        game = json.loads(path.read_text())
        assert set(game) == {"pddl_domain", "grammar", "pddl_problem", "solvable", "walkthrough"}
        assert game["solvable"] is True and game["walkthrough"]
        assert game["pddl_problem"] == (trial / "initial_state.pddl").read_text()
    assert [json.loads((p.parent / "traj_data.json").read_text())["task_type"] for p in paths] == list(TASK_TYPES)


def test_deterministic_per_seed_and_index(tmp_path):
    a = [p.read_text() for p in generate(tmp_path / "a", "train", 4, seed=11)]
    b = [p.read_text() for p in generate(tmp_path / "b", "train", 6, seed=11)]
    c = [p.read_text() for p in generate(tmp_path / "c", "train", 4, seed=12)]
    assert a == b[:4]
    assert a != c


def test_unseen_floor_plans_are_never_used_for_training():
    assert not set(floor_plans("train")) & set(floor_plans("valid_unseen"))
    assert floor_plans("valid_seen") == floor_plans("train")
    scenes = {generate_game(0, "valid_unseen", i, t).traj["scene"]["scene_num"] for i, t in enumerate(TASK_TYPES * 2)}
    assert scenes <= set(floor_plans("valid_unseen"))


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_knobs_cap_receptacles_and_distractors(task_type):
    small = generate_game(5, "train", 0, task_type, Knobs(max_receptacles=4, distractors=2))
    facts = init_facts(parse_sexp(small.problem))
    receptacles = {f[1] for f in facts if f[0] == "receptacletype"}
    objects = {f[1] for f in facts if f[0] == "objecttype"}
    assert len(receptacles) <= 4
    assert len(objects) <= 2 + 3  # the task's objects (two for pick two, a lamp for look) plus the distractors
    # still solvable, by the walkthrough stored with it
    from envs.alfworld.engine import GameSpec

    params = small.traj["pddl_params"]
    engine = AlfredEngine(GameSpec(small.problem, task_type, small.grammar.split("Your task is to: ")[1].split('"')[0],
                                   params["object_target"], params["parent_target"], params["toggle_target"]))
    engine.reset()
    for command in small.walkthrough:
        won = engine.step(command)[2]
    assert won


def test_generate_command(tmp_path):
    result = CliRunner().invoke(app, ["games", "generate", "--out", str(tmp_path), "--split", "valid_unseen",
                                      "--count", "3", "--seed", "1", "--max-receptacles", "6",
                                      "--task-type", "pick_and_place_simple", "--task-type", "pick_two_obj_and_place"])
    assert result.exit_code == 0, result.output
    games = find_games(tmp_path / "valid_unseen")
    assert len(games) == 3
    assert sorted(load_game(g).category for g in games) == ["Pick", "Pick", "Pick2"]
    bad = CliRunner().invoke(app, ["games", "generate", "--out", str(tmp_path), "--split", "test", "--count", "1"])
    assert bad.exit_code != 0 and "--split" in bad.output
