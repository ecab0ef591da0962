"""A pure-Python engine for ALFWorld games (alfred.pddl + alfred.twl2): the real engine's text, commands and `won`.

It replays what TextWorld's PDDL engine and ALFWorld's name wrapper show the agent, quirks
included (see docs/alfworld.md): the same observation text, the same sorted admissible commands,
the same `won`, plus ALFRED's goal-condition success rate. It is thousands of times faster than
the real engine and needs no planner library, so many games run in one process.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set, Tuple

from envs.alfworld.pddl import declared_objects, display_names, init_facts, parse_sexp

HELP_TEXT = (
    "Available commands:\n"
    "  look:                             look around your current location\n"
    "  inventory:                        check your current inventory\n"
    "  go to (receptacle):               move to a receptacle\n"
    "  open (receptacle):                open a receptacle\n"
    "  close (receptacle):               close a receptacle\n"
    "  take (object) from (receptacle):  take an object from a receptacle\n"
    "  move (object) to (receptacle):  place an object in or on a receptacle\n"
    "  examine (something):              examine a receptacle or an object\n"
    "  use (object):                     use an object\n"
    "  heat (object) with (receptacle):  heat an object using a receptacle\n"
    "  clean (object) with (receptacle): clean an object using a receptacle\n"
    "  cool (object) with (receptacle):  cool an object using a receptacle\n"
    "  slice (object) with (object):     slice an object using a sharp object\n"
)
INTRO = "-= Welcome to TextWorld, ALFRED! =-\n\n{look}\n\nYour task is to: {task}"
NOTHING_HAPPENS = "Nothing happens."
SHARP = ("knifetype", "butterknifetype")
APPLIANCE = {"sinkbasintype": "clean", "microwavetype": "heat", "fridgetype": "cool"}


def listing(items: List[str]) -> str:
    """TextWorld's list: 'nothing', 'x', or 'x, y, and z' (', and' even for two)."""
    if not items:
        return "nothing"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + ", and " + items[-1]


@dataclass
class GameSpec:
    """What the engine needs from a game: the PDDL problem, the task and its parameters."""

    pddl_problem: str
    task_type: str
    task_desc: str
    object_target: str
    parent_target: str = ""
    toggle_target: str = ""
    object_sliced: bool = False

    def __post_init__(self) -> None:
        self.object_target = self.object_target.lower()
        self.parent_target = self.parent_target.lower()
        self.toggle_target = self.toggle_target.lower()


@dataclass
class _State:
    """The mutable world: where things are and what is true of them."""

    agent_loc: str
    holding: Optional[str]
    in_receptacle: Set[Tuple[str, str]]
    not_in_receptacle: Set[Tuple[str, str]]
    object_loc: Dict[str, str]
    opened: Set[str]
    clean: Set[str]
    hot: Set[str]
    cool: Set[str]
    on: Set[str]
    toggled: Set[str]
    sliced: Set[str]


@dataclass
class _World:
    """What never changes in a game: types, places and abilities of every entity."""

    name: Dict[str, str]
    receptacle_type: Dict[str, str]
    object_type: Dict[str, str]
    receptacle_loc: Dict[str, str]
    in_receptacle_object: Set[Tuple[str, str]]
    can_contain: Set[Tuple[str, str]]
    openable: Set[str]
    pickupable: Set[str]
    receptacle_object: Set[str]
    cleanable: Set[str]
    heatable: Set[str]
    coolable: Set[str]
    toggleable: Set[str]
    sliceable: Set[str]
    receptacles: List[str] = field(default_factory=list)


class AlfredEngine:
    """Plays one ALFWorld game; ``reset()`` and ``step(command)`` return (text, admissible commands, won)."""

    def __init__(self, spec: GameSpec) -> None:
        if spec.object_sliced:
            raise ValueError("game: sliced-object tasks are not supported by the python engine (use engine='textworld')")
        self.spec = spec
        tree = parse_sexp(spec.pddl_problem)
        facts = init_facts(tree)
        by_predicate: Dict[str, Set[tuple]] = defaultdict(set)
        for fact in facts:
            by_predicate[fact[0]].add(fact[1:])
        unary = lambda predicate: {args[0] for args in by_predicate[predicate]}  # noqa: E731
        entities = set(declared_objects(tree))
        for fact in facts:
            entities.update(fact[1:])
        receptacle_type = dict(by_predicate["receptacletype"])
        self.world = _World(
            name=display_names(entities),
            receptacle_type=receptacle_type,
            object_type=dict(by_predicate["objecttype"]),
            receptacle_loc=dict(by_predicate["receptacleatlocation"]),
            in_receptacle_object=set(by_predicate["inreceptacleobject"]),
            can_contain=set(by_predicate["cancontain"]),
            openable=unary("openable"),
            pickupable=unary("pickupable"),
            receptacle_object=unary("isreceptacleobject"),
            cleanable=unary("cleanable"),
            heatable=unary("heatable"),
            coolable=unary("coolable"),
            toggleable=unary("toggleable"),
            sliceable=unary("sliceable"),
            receptacles=sorted(receptacle_type),
        )
        self._initial = by_predicate
        missing = [r for r in self.world.receptacles if r not in self.world.receptacle_loc]
        if missing or not by_predicate["atlocation"]:
            raise ValueError(f"game: incomplete problem (receptacles without a location: {missing[:3]}, "
                             f"agent location given: {bool(by_predicate['atlocation'])})")
        self.state = self._initial_state()
        self._actions: Optional[Dict[str, Tuple[str, object]]] = None

    # ---- state -------------------------------------------------------------------------------
    def _initial_state(self) -> _State:
        facts = self._initial
        unary = lambda predicate: {args[0] for args in facts[predicate]}  # noqa: E731
        return _State(
            agent_loc=next(iter(sorted(facts["atlocation"])))[1],
            holding=None,
            in_receptacle=set(facts["inreceptacle"]),
            not_in_receptacle=set(),
            object_loc=dict(facts["objectatlocation"]),
            opened=unary("opened"),
            clean=unary("isclean"),
            hot=unary("ishot"),
            cool=unary("iscool"),
            on=unary("ison"),
            toggled=unary("istoggled"),
            sliced=unary("issliced"),
        )

    def _name(self, entity: str) -> str:
        return self.world.name[entity]

    def _contents(self, receptacle: str) -> List[str]:
        return [o for (o, r) in sorted(self.state.in_receptacle) if r == receptacle]

    def _here(self) -> List[str]:
        return [r for r in self.world.receptacles if self.world.receptacle_loc[r] == self.state.agent_loc]

    # ---- text ------------------------------------------------------------------------------------
    def _describe_receptacle(self, receptacle: str) -> str:
        name = self._name(receptacle)
        items = listing(["a " + self._name(o) for o in self._contents(receptacle)])
        if receptacle in self.world.openable:
            if receptacle in self.state.opened:
                return f"The {name} is open. In it, you see {items}."
            return f"The {name} is closed."
        return f"On the {name}, you see {items}."

    def _look(self, intro: bool = False) -> str:
        here = self._here()
        if here:
            floor = ["a " + self._name(o) for o in sorted(self.state.object_loc)
                     if self.state.object_loc[o] == self.state.agent_loc
                     for r in here if (o, r) in self.state.not_in_receptacle]
            return f"You are facing the {listing([self._name(r) for r in here])}. Next to it, you see {listing(floor)}."
        seen = ["a " + self._name(r) for r in self.world.receptacles] if intro else []
        return f"You are in the middle of a room. Looking quickly around you, you see {listing(seen)}."

    def _describe_object(self, obj: str) -> str:
        name, s = self._name(obj), self.state
        if obj in self.world.receptacle_object:
            inside = ["a " + self._name(o) for (o, holder) in sorted(self.world.in_receptacle_object) if holder == obj]
            return f"This is a normal {name}. In it, you see {listing(inside)}."
        clean, hot, cool, sliced = obj in s.clean, obj in s.hot, obj in s.cool, obj in s.sliced
        for condition, text in (
            (clean and hot and sliced, "This is a hot and clean sliced {}."),
            (clean and cool and sliced, "This is a cool and clean sliced {}."),
            (clean and sliced, "This is a clean sliced {}."),
            (hot and sliced, "This is a hot sliced {}."),
            (cool and sliced, "This is a cool sliced {}."),
            (clean and hot, "This is a hot and clean {}."),
            (clean and cool, "This is a cool and clean {}."),
            (hot, "This is a hot {}."),
            (clean, "This is a clean {}."),
            (cool, "This is a cold {}."),
            (obj in self.world.toggleable and obj in s.toggled, "This {} is on."),
            (sliced and obj in self.world.sliceable, "This is a sliced {}."),
        ):
            if condition:
                return text.format(name)
        return f"There's nothing special about {name}."

    # ---- rules: the applicable actions, as command -> (kind, argument) ------------------------------
    def actions(self) -> Dict[str, Tuple[str, object]]:
        if self._actions is None:
            self._actions = self._enumerate_actions()
        return self._actions

    def _enumerate_actions(self) -> Dict[str, Tuple[str, object]]:
        w, s, name = self.world, self.state, self._name
        here = self._here()
        actions: Dict[str, Tuple[str, object]] = {"look": ("look", None), "inventory": ("inventory", None), "help": ("help", None)}
        for r in w.receptacles:
            if w.receptacle_loc[r] != s.agent_loc:
                actions["go to " + name(r)] = ("goto", r)
        held = s.holding
        for r in here:
            actions["examine " + name(r)] = ("examine_receptacle", r)
            accessible = r not in w.openable or r in s.opened
            if r in w.openable:
                if r in s.opened:
                    actions["close " + name(r)] = ("close", r)
                else:
                    actions["open " + name(r)] = ("open", r)
            contents = self._contents(r)
            if accessible and held is None:
                for o in contents:
                    if o in w.pickupable:
                        actions[f"take {name(o)} from {name(r)}"] = ("take", (o, r))
            if held is not None and accessible and (w.receptacle_type[r], w.object_type.get(held)) in w.can_contain:
                actions[f"move {name(held)} to {name(r)}"] = ("move", (held, r))
            for o in contents:
                if o in w.toggleable:
                    actions["use " + name(o)] = ("use", o)
        if held is not None:
            actions["examine " + name(held)] = ("examine_object", held)
            for r in here:
                verb = APPLIANCE.get(w.receptacle_type[r])
                able = {"clean": w.cleanable, "heat": w.heatable, "cool": w.coolable}.get(verb, ())
                if held in able:
                    actions[f"{verb} {name(held)} with {name(r)}"] = (verb, (held, r))
            if w.object_type.get(held) in SHARP:
                for o in sorted(s.object_loc):
                    if s.object_loc[o] == s.agent_loc and o in w.sliceable:
                        actions[f"slice {name(o)} with {name(held)}"] = ("slice", (o, held))
        return actions

    def admissible_commands(self) -> List[str]:
        return sorted(self.actions())

    # ---- effects ------------------------------------------------------------------------------
    def _apply(self, kind: str, arg) -> str:
        s = self.state
        if kind == "look":
            return self._look()
        if kind == "inventory":
            return (f"You are carrying: {listing(['a ' + self._name(s.holding)])}." if s.holding
                    else "You are not carrying anything.")
        if kind == "help":
            return HELP_TEXT
        if kind in ("clean", "heat", "cool"):
            gained, lost = {"clean": (s.clean, None), "heat": (s.hot, s.cool), "cool": (s.cool, s.hot)}[kind]
            return self._treat(arg, gained, lost, kind)
        handler: Callable[..., str] = getattr(self, self._HANDLERS[kind])
        return handler(*arg) if isinstance(arg, tuple) else handler(arg)

    _HANDLERS = {
        "goto": "_go_to", "examine_receptacle": "_describe_receptacle", "examine_object": "_describe_object",
        "open": "_open", "close": "_close", "take": "_take", "move": "_move", "use": "_use", "slice": "_slice",
    }

    def _go_to(self, receptacle: str) -> str:
        self.state.agent_loc = self.world.receptacle_loc[receptacle]
        return f"You arrive at {self._name(receptacle)}. {self._describe_receptacle(receptacle)}"

    def _open(self, receptacle: str) -> str:
        self.state.opened.add(receptacle)
        return f"You open the {self._name(receptacle)}. {self._describe_receptacle(receptacle)}"

    def _close(self, receptacle: str) -> str:
        self.state.opened.discard(receptacle)
        return f"You close the {self._name(receptacle)}."

    def _take(self, obj: str, receptacle: str) -> str:
        s = self.state
        s.in_receptacle.discard((obj, receptacle))
        s.not_in_receptacle.add((obj, receptacle))
        s.object_loc.pop(obj, None)
        s.holding = obj
        return f"You pick up the {self._name(obj)} from the {self._name(receptacle)}."

    def _move(self, obj: str, receptacle: str) -> str:
        s = self.state
        s.in_receptacle.add((obj, receptacle))
        s.not_in_receptacle.discard((obj, receptacle))
        s.object_loc[obj] = self.world.receptacle_loc[receptacle]
        s.holding = None
        return f"You move the {self._name(obj)} to the {self._name(receptacle)}."

    def _treat(self, arg: Tuple[str, str], gained: Set[str], lost: Optional[Set[str]], verb: str) -> str:
        obj, appliance = arg
        gained.add(obj)
        if lost is not None:
            lost.discard(obj)
        return f"You {verb} the {self._name(obj)} using the {self._name(appliance)}."

    def _use(self, obj: str) -> str:
        (self.state.on.discard if obj in self.state.on else self.state.on.add)(obj)
        self.state.toggled.add(obj)
        return f"You turn on the {self._name(obj)}."

    def _slice(self, obj: str, tool: str) -> str:
        self.state.sliced.add(obj)
        return f"You sliced the {self._name(obj)} with the {self._name(tool)}."

    # ---- goals ----------------------------------------------------------------------------------
    def goal_conditions(self) -> Tuple[int, int]:
        """(satisfied, total) goal conditions, as ALFRED counts them for the task type."""
        w, s, spec = self.world, self.state, self.spec
        object_type, parent_type = spec.object_target + "type", spec.parent_target + "type"
        placed = [(o, r) for (o, r) in s.in_receptacle
                  if w.object_type.get(o) == object_type and w.receptacle_type.get(r) == parent_type]
        task = spec.task_type
        if task == "pick_and_place_simple":
            return int(bool(placed)), 1
        if task == "pick_two_obj_and_place":
            per_receptacle = Counter(r for _, r in placed)
            return min(max(per_receptacle.values(), default=0), 2), 2
        if task == "look_at_obj_in_light":
            toggle_type = spec.toggle_target + "type"
            lamp_on = any(w.object_type.get(o) == toggle_type and o in w.toggleable and o in s.toggled
                          and w.receptacle_loc.get(r) == s.agent_loc for (o, r) in s.in_receptacle)
            holds_target = s.holding is not None and w.object_type.get(s.holding) == object_type
            return int(holds_target) + int(lamp_on), 2
        treated, able = {
            "pick_clean_then_place_in_recep": (s.clean, w.cleanable),
            "pick_heat_then_place_in_recep": (s.hot, w.heatable),
            "pick_cool_then_place_in_recep": (s.cool, w.coolable),
        }.get(task, (None, None))
        if treated is None:
            raise ValueError(f"task_type: unknown ALFWorld task type {task!r}")
        done = {o for o in treated & able if w.object_type.get(o) == object_type}
        return int(bool(placed)) + int(bool(done)) + int(any(o in done for o, _ in placed)), 3

    def won(self) -> bool:
        satisfied, total = self.goal_conditions()
        return satisfied == total

    # ---- the game loop -----------------------------------------------------------------------------
    def reset(self) -> Tuple[str, List[str], bool]:
        self.state = self._initial_state()
        self._actions = None
        text = INTRO.format(look=self._look(intro=True), task=self.spec.task_desc)
        return text, self.admissible_commands(), self.won()

    def step(self, command: str) -> Tuple[str, List[str], bool]:
        action = self.actions().get(command.strip())
        if action is None:
            return NOTHING_HAPPENS, self.admissible_commands(), self.won()
        text = self._apply(*action)
        if action[0] not in ("look", "inventory", "help", "examine_receptacle", "examine_object"):
            self._actions = None
        return text, self.admissible_commands(), self.won()
