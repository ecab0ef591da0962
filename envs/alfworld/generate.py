"""Generate ALFWorld games in the official format, from the floor plans, constants and goals the `alfworld` package ships.

Each game is a folder ``<task_type>-<Obj>-None-<Parent>-<scene>/trial_T..._.../`` holding
``initial_state.pddl``, ``traj_data.json`` and ``game.tw-pddl`` (domain, grammar with the task
sentence, problem, ``solvable`` and the expert's ``walkthrough``). Games are deterministic per
(seed, split, index); ``valid_unseen`` draws only on floor plans that ``train`` never uses; every
game is solved by the expert before it is written.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from envs.alfworld.categories import TASK_TYPES
from envs.alfworld.engine import AlfredEngine, GameSpec
from envs.alfworld.expert import solve
from envs.alfworld.game import GAME_FILE, SPLITS
from envs.alfworld.pddl import mangle

LAMPS = ("DeskLamp", "FloorLamp")
LAMP_FURNITURE = ("Desk", "SideTable", "Dresser", "Shelf", "Nightstand", "DiningTable", "CoffeeTable")
SCENERY = ("Sink", "Bathtub", "Faucet", "StoveKnob", "LightSwitch", "Window", "Chair", "ShowerCurtain", "ShowerHead",
           "Mirror", "Blinds", "Curtains", "Painting", "Lamp", "Television", "Poster")
APPLIANCE_OF = {
    "pick_clean_then_place_in_recep": ("SinkBasin", "Cleanable"),
    "pick_heat_then_place_in_recep": ("Microwave", "Heatable"),
    "pick_cool_then_place_in_recep": ("Fridge", "Coolable"),
}
NESTABLE = ("Spoon", "Fork", "Pen", "Pencil", "KeyChain", "CreditCard", "Egg")


@dataclass(frozen=True)
class Knobs:
    """Difficulty: fewer receptacles and distractors make games a small policy can learn on a CPU."""

    max_receptacles: int = 0  # 0: keep all the floor plan's receptacles; else cap, always keeping those the task needs
    distractors: int = 12  # distractor objects (besides the task's own)
    max_walkthrough: int = 40  # the expert must win within this many steps


@lru_cache(maxsize=1)
def _alfworld():
    """The generator's data from the installed alfworld package (imported lazily: it is slow to import)."""
    from proxmo.extras import require

    require("envs", "generating ALFWorld games", ["alfworld"])
    import alfworld.gen.constants as constants
    import alfworld.gen.goal_library as goals
    from alfworld.info import ALFRED_PDDL_PATH, ALFRED_TWL2_PATH

    return constants, goals, Path(ALFRED_PDDL_PATH).read_text(), Path(ALFRED_TWL2_PATH).read_text()


def _layouts() -> Path:
    constants = _alfworld()[0]
    return Path(constants.__file__).parent / "layouts"


def floor_plans(split: str) -> List[int]:
    """Scene numbers of a split: ALFRED's train scenes for train and valid_seen, its test scenes for valid_unseen."""
    constants = _alfworld()[0]
    scenes = constants.TEST_SCENE_NUMBERS if split == "valid_unseen" else constants.TRAIN_SCENE_NUMBERS
    available = {int(p.name[len("FloorPlan"):-len("-objects.json")]) for p in _layouts().glob("FloorPlan*-objects.json")}
    return sorted(set(scenes) & available)


def _random_id(rng: random.Random, type_name: str) -> str:
    coordinate = lambda value: ("+" if value >= 0 else "-") + "%05.2f" % abs(value)  # noqa: E731
    return f"{type_name}|{coordinate(rng.uniform(-3, 3))}|{coordinate(rng.uniform(0, 2))}|{coordinate(rng.uniform(-3, 3))}"


def _new_location(rng: random.Random, used: set) -> str:
    while True:
        location = f"loc|{rng.randint(-12, 12)}|{rng.randint(-12, 12)}|{rng.randint(0, 3)}|{rng.choice([0, 15, 30, 45, 60])}"
        if location not in used:
            used.add(location)
            return location


def _scene(rng: random.Random, scene: int) -> Tuple[Dict[str, str], List[str]]:
    """Static receptacles {id: type} and the object types of a floor plan."""
    constants = _alfworld()[0]
    static = constants.RECEPTACLES - constants.MOVABLE_RECEPTACLES_SET
    present = json.loads((_layouts() / f"FloorPlan{scene}-objects.json").read_text())
    openable = json.loads((_layouts() / f"FloorPlan{scene}-openable.json").read_text())
    receptacles: Dict[str, str] = {}
    for rid in sorted(openable):
        kind = rid.split("|")[0]
        if kind in ("Sink", "Bathtub"):  # ALFWorld uses the basins
            rid, kind = f"{rid}|{kind}Basin", kind + "Basin"
        if kind in static:
            receptacles[rid] = kind
    for kind in sorted(present):
        if kind in static and kind not in receptacles.values():
            receptacles[_random_id(rng, kind)] = kind
    objects = sorted(t for t in present if t in constants.OBJECTS and t not in static and t not in SCENERY)
    return receptacles, objects


def _task(rng: random.Random, receptacles: Dict[str, str], objects: List[str], task_type: str) -> Optional[Tuple[str, str, str]]:
    """(object, parent, toggle) types for a task the scene supports, or None."""
    constants = _alfworld()[0]
    kinds = set(receptacles.values())
    holders = lambda obj: sorted(k for k in kinds if obj in constants.VAL_RECEPTACLE_OBJECTS.get(k, ()))  # noqa: E731
    options = []
    if task_type == "look_at_obj_in_light":
        for lamp in (o for o in objects if o in LAMPS):
            options += [(o, "", lamp) for o in objects if o not in LAMPS and holders(o)]
    else:
        appliance, ability = APPLIANCE_OF.get(task_type, (None, None))
        for obj in objects:
            if obj in LAMPS or (ability and (obj not in constants.VAL_ACTION_OBJECTS[ability] or appliance not in kinds)):
                continue
            options += [(obj, parent, "") for parent in holders(obj) if parent != appliance]
    return rng.choice(sorted(options)) if options else None


def _keep_needed(rng, receptacles: Dict[str, str], task: Tuple[str, str, str], task_type: str, cap: int) -> Dict[str, str]:
    """At most ``cap`` receptacles, keeping a goal receptacle, the appliance, a source for the object, a lamp spot."""
    constants = _alfworld()[0]
    obj, parent, toggle = task
    ids = sorted(receptacles)
    rng.shuffle(ids)
    keep: List[str] = []

    def need(test) -> None:
        found = next((r for r in ids if test(receptacles[r])), None)
        if found is not None and found not in keep:
            keep.append(found)

    appliance = APPLIANCE_OF.get(task_type, (None,))[0]
    if parent:
        need(lambda kind: kind == parent)
    if appliance:
        need(lambda kind: kind == appliance)
    need(lambda kind: kind != parent and kind not in ("SinkBasin", "Microwave", "Fridge")
         and obj in constants.VAL_RECEPTACLE_OBJECTS.get(kind, ()))
    if toggle:
        need(lambda kind: kind in LAMP_FURNITURE)
    keep += [r for r in ids if r not in keep][: max(cap - len(keep), 0)]
    return {r: receptacles[r] for r in keep}


def _problem(rng: random.Random, scene: int, task_type: str, knobs: Knobs) -> Optional[Tuple[str, dict]]:
    """A PDDL problem and its traj_data for one game, or None if the floor plan cannot host the task."""
    constants, goals, _, _ = _alfworld()
    receptacles, objects = _scene(rng, scene)
    task = _task(rng, receptacles, objects, task_type)
    if task is None:
        return None
    obj_type, parent_type, toggle_type = task
    if knobs.max_receptacles and len(receptacles) > knobs.max_receptacles:
        receptacles = _keep_needed(rng, receptacles, task, task_type, knobs.max_receptacles)
    used: set = set()
    location = {r: _new_location(rng, used) for r in sorted(receptacles)}
    start = _new_location(rng, used)

    wanted = [obj_type] * (2 if task_type == "pick_two_obj_and_place" else 1) + ([toggle_type] if toggle_type else [])
    wanted += [rng.choice(objects) for _ in range(knobs.distractors)]
    placed: Dict[str, Tuple[str, str]] = {}
    for kind in wanted:
        if kind in LAMPS and kind != toggle_type:
            continue  # a second kind of lamp would make the look goal ambiguous
        if kind == toggle_type:
            spots = [r for r, k in receptacles.items() if k in LAMP_FURNITURE] or list(receptacles)
        else:
            spots = [r for r, k in receptacles.items() if kind in constants.VAL_RECEPTACLE_OBJECTS.get(k, ())]
        if kind == obj_type and parent_type:  # the target never starts where it must go
            spots = [r for r in spots if receptacles[r] != parent_type]
        if not spots:
            if kind == obj_type:
                return None
            continue
        placed[_random_id(rng, kind)] = (kind, rng.choice(sorted(spots)))

    static = sorted(constants.RECEPTACLES - constants.MOVABLE_RECEPTACLES_SET)
    declarations = ["agent1 - agent"]
    declarations += [f"{t}Type - otype" for t in sorted(set(constants.OBJECTS) - set(static))]
    declarations += [f"{t}Type - rtype" for t in static]
    declarations += [f"{mangle(o)} - object" for o in sorted(placed)]
    declarations += [f"{mangle(r)} - receptacle" for r in sorted(receptacles)]
    declarations += [f"{mangle(loc)} - location" for loc in sorted(used)]

    facts = [f"(atLocation agent1 {mangle(start)})"]
    for r, kind in sorted(receptacles.items()):
        facts += [f"(receptacleType {mangle(r)} {kind}Type)", f"(receptacleAtLocation {mangle(r)} {mangle(location[r])})"]
        if kind in constants.OPENABLE_CLASS_SET:
            facts.append(f"(openable {mangle(r)})")
    holders = [o for o, (kind, _) in placed.items() if kind in constants.MOVABLE_RECEPTACLES_SET]
    for o, (kind, r) in sorted(placed.items()):
        facts += [f"(objectType {mangle(o)} {kind}Type)", f"(inReceptacle {mangle(o)} {mangle(r)})",
                  f"(objectAtLocation {mangle(o)} {mangle(location[r])})"]
        if kind not in LAMPS:
            facts.append(f"(pickupable {mangle(o)})")
        for predicate, ability in (("cleanable", "Cleanable"), ("heatable", "Heatable"), ("coolable", "Coolable"),
                                   ("toggleable", "Toggleable"), ("sliceable", "Sliceable")):
            if kind in constants.VAL_ACTION_OBJECTS[ability]:
                facts.append(f"({predicate} {mangle(o)})")
        if kind in constants.MOVABLE_RECEPTACLES_SET:
            facts.append(f"(isReceptacleObject {mangle(o)})")
    for o, (kind, r) in sorted(placed.items()):
        if holders and kind in NESTABLE and rng.random() < 0.7:
            holder = rng.choice(sorted(holders))
            if placed[holder][1] == r:
                facts.append(f"(inReceptacleObject {mangle(o)} {mangle(holder)})")
        if receptacles[r] == "Fridge" and kind in constants.VAL_ACTION_OBJECTS["Coolable"]:
            facts.append(f"(isCool {mangle(o)})")
    kinds_placed = {kind for kind, _ in placed.values()}
    for rkind in sorted(set(receptacles.values())):
        facts += [f"(canContain {rkind}Type {okind}Type)"
                  for okind in sorted(constants.VAL_RECEPTACLE_OBJECTS.get(rkind, ())) if okind in kinds_placed]

    goal = goals.gdict[task_type]["pddl"].format(obj=obj_type, recep=parent_type, toggle=toggle_type, mrecep="")
    goal = goal.replace("#", "-").rstrip().rstrip(")").rstrip()  # the library's goal also closes the define
    problem = (f"(define (problem plan_{scene})\n(:domain alfred)\n(:objects\n        " + "\n        ".join(declarations)
               + "\n        )\n(:init\n        " + "\n        ".join(facts) + "\n        )\n" + goal + "\n)\n")
    stamp = (f"T2026{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}_"
             f"{rng.randint(0, 23):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}_{rng.randint(0, 999999):06d}")
    traj = {
        "task_type": task_type,
        "task_id": f"trial_{stamp}",
        "scene": {"floor_plan": f"FloorPlan{scene}", "scene_num": scene},
        "pddl_params": {"object_target": obj_type, "parent_target": parent_type, "toggle_target": toggle_type,
                        "mrecep_target": "", "object_sliced": False},
        "turk_annotations": {"anns": []},
    }
    return problem, traj


def _task_sentence(rng: random.Random, traj: dict) -> str:
    goals = _alfworld()[1]
    params = traj["pddl_params"]
    template = rng.choice(goals.gdict[traj["task_type"]]["templates"])
    return template.format(obj=params["object_target"].lower(), recep=params["parent_target"].lower(),
                           toggle=params["toggle_target"].lower(), mrecep="") + "."


def game_folder(traj: dict) -> str:
    params = traj["pddl_params"]
    parent = params["parent_target"] or params["toggle_target"]
    return f"{traj['task_type']}-{params['object_target']}-None-{parent}-{traj['scene']['scene_num']}"


@dataclass(frozen=True)
class GeneratedGame:
    problem: str
    traj: dict
    grammar: str
    walkthrough: List[str]


def generate_game(seed: int, split: str, index: int, task_type: str, knobs: Knobs = Knobs(), attempts: int = 200) -> GeneratedGame:
    """Game ``index`` of a split: deterministic in (seed, split, index, task type, knobs), solved by the expert."""
    _, _, _, grammar_template = _alfworld()
    plans = floor_plans(split)
    rng = random.Random(f"{seed}/{split}/{index}/{task_type}/{knobs}")
    for _ in range(attempts):
        made = _problem(rng, rng.choice(plans), task_type, knobs)
        if made is None:
            continue
        problem, traj = made
        sentence = _task_sentence(rng, traj)
        params = traj["pddl_params"]
        engine = AlfredEngine(GameSpec(problem, task_type, sentence, params["object_target"], params["parent_target"],
                                       params["toggle_target"]))
        if engine.reset()[2]:
            continue  # already won at the start
        won, commands = solve(engine, knobs.max_walkthrough)
        if won:
            grammar = grammar_template.replace("UNKNOWN GOAL.", sentence)
            return GeneratedGame(problem=problem, traj=traj, grammar=grammar, walkthrough=commands)
    raise RuntimeError(f"could not generate a solvable {task_type} game in {attempts} attempts ({split}, index {index})")


def write_game(root: Path, game: GeneratedGame) -> Path:
    """Write the official trio of files; returns the path of ``game.tw-pddl``."""
    domain = _alfworld()[2]
    folder = Path(root) / game_folder(game.traj) / game.traj["task_id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "initial_state.pddl").write_text(game.problem)
    (folder / "traj_data.json").write_text(json.dumps(game.traj, indent=2))
    payload = {"pddl_domain": domain, "grammar": game.grammar, "pddl_problem": game.problem,
               "solvable": True, "walkthrough": game.walkthrough}
    (folder / GAME_FILE).write_text(json.dumps(payload))
    return folder / GAME_FILE


def generate(out: Path, split: str, count: int, seed: int, task_types: Sequence[str] = TASK_TYPES,
             knobs: Knobs = Knobs()) -> Iterator[Path]:
    """Write ``count`` games of ``split`` under ``out/<split>/``, task types in turn; yields each game file."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    unknown = [t for t in task_types if t not in TASK_TYPES]
    if unknown or not task_types:
        raise ValueError(f"task_types: unknown {unknown}; choose from {list(TASK_TYPES)}")
    if count < 0:
        raise ValueError(f"count: must be >= 0, got {count}")
    root = Path(out) / split
    for index in range(count):
        task_type = task_types[index % len(task_types)]
        yield write_game(root, generate_game(seed, split, index, task_type, knobs))
