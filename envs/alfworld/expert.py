"""A greedy expert that reads the python engine's hidden state: walkthroughs for generated games, and proof they are solvable."""

from __future__ import annotations

from typing import List, Optional, Tuple

from envs.alfworld.engine import AlfredEngine

TREATMENT = {
    "pick_clean_then_place_in_recep": ("sinkbasintype", "clean"),
    "pick_heat_then_place_in_recep": ("microwavetype", "heat"),
    "pick_cool_then_place_in_recep": ("fridgetype", "cool"),
}


class NoPlan(RuntimeError):
    """The expert sees no way forward in this state."""


def next_command(engine: AlfredEngine) -> str:
    """The expert's next command (always an admissible one) for the engine's current state."""
    w, s, spec = engine.world, engine.state, engine.spec
    name = engine._name
    object_type, parent_type = spec.object_target + "type", spec.parent_target + "type"
    here = set(engine._here())
    parents = [r for r in w.receptacles if w.receptacle_type[r] == parent_type]

    def reach(receptacle: str) -> Optional[str]:
        """Go to the receptacle and open it if needed; None once it is reachable and open."""
        if receptacle not in here:
            return "go to " + name(receptacle)
        if receptacle in w.openable and receptacle not in s.opened:
            return "open " + name(receptacle)
        return None

    held = s.holding
    if held is not None:
        if w.object_type.get(held) != object_type:  # holding something useless: put it down
            moves = [c for c in engine.admissible_commands() if c.startswith("move ")]
            if moves:
                return moves[0]
            return "go to " + name(next(r for r in w.receptacles if r not in here))
        if spec.task_type in TREATMENT:
            appliance_type, verb = TREATMENT[spec.task_type]
            done = {"clean": s.clean, "heat": s.hot, "cool": s.cool}[verb]
            if held not in done:
                appliance = next((r for r in w.receptacles if w.receptacle_type[r] == appliance_type), None)
                if appliance is None:
                    raise NoPlan(f"no {appliance_type} in the scene")
                if appliance not in here:
                    return "go to " + name(appliance)
                return f"{verb} {name(held)} with {name(appliance)}"
        if spec.task_type == "look_at_obj_in_light":
            toggle_type = spec.toggle_target + "type"
            for obj, receptacle in sorted(s.in_receptacle):
                if w.object_type.get(obj) == toggle_type:
                    return ("go to " + name(receptacle)) if receptacle not in here else "use " + name(obj)
            raise NoPlan("no lamp in the scene")
        if not parents:
            raise NoPlan(f"no {parent_type} in the scene")
        target = parents[0]
        for obj, receptacle in sorted(s.in_receptacle):  # pick two: join the one already placed
            if receptacle in parents and w.object_type.get(obj) == object_type:
                target = receptacle
        return reach(target) or f"move {name(held)} to {name(target)}"

    candidates = [(o, r) for (o, r) in sorted(s.in_receptacle)
                  if w.object_type.get(o) == object_type and o in w.pickupable
                  and (spec.task_type == "look_at_obj_in_light" or r not in parents)]
    if not candidates:
        raise NoPlan(f"no {object_type} left to pick up")
    candidates.sort(key=lambda pair: pair[1] not in here)
    obj, receptacle = candidates[0]
    return reach(receptacle) or f"take {name(obj)} from {name(receptacle)}"


def solve(engine: AlfredEngine, max_steps: int = 40) -> Tuple[bool, List[str]]:
    """Play the game from its start with the expert: (won, commands)."""
    _, admissible, won = engine.reset()
    commands: List[str] = []
    while not won and len(commands) < max_steps:
        try:
            command = next_command(engine)
        except NoPlan:
            return False, commands
        if command not in admissible:
            return False, commands
        commands.append(command)
        _, admissible, won = engine.step(command)
    return won, commands
