"""Reading the PDDL problems of ALFWorld games, and the entity names the TextWorld wrapper shows."""

from __future__ import annotations

import re
from collections import Counter
from typing import Dict, Iterable, List, Union

SExpr = Union[str, List["SExpr"]]

_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_COMMENT = re.compile(r";[^\n]*")


def parse_sexp(text: str) -> SExpr:
    """The first s-expression of ``text``, atoms lower-cased, comments dropped."""
    stack: List[list] = [[]]
    for token in _TOKEN.findall(_COMMENT.sub("", text)):
        if token == "(":
            stack.append([])
        elif token == ")":
            if len(stack) == 1:
                raise ValueError("pddl: unbalanced ')'")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(token.lower())
    if len(stack) != 1 or not stack[0]:
        raise ValueError("pddl: unbalanced '(' or empty problem")
    return stack[0][0]


def section(tree: SExpr, name: str) -> list:
    """The body of the ``(:name ...)`` part of a ``(define ...)``."""
    for item in tree:
        if isinstance(item, list) and item and item[0] == name:
            return item[1:]
    return []


def declared_objects(tree: SExpr) -> List[str]:
    """Names in ``(:objects a b - type c - type ...)`` (the type after each ``-`` is skipped)."""
    names, after_dash = [], False
    for token in section(tree, ":objects"):
        if token == "-":
            after_dash = True
        elif after_dash:
            after_dash = False
        elif isinstance(token, str):
            names.append(token)
    return names


def init_facts(tree: SExpr) -> List[tuple]:
    """The ``(:init ...)`` facts as tuples ``(predicate, arg, ...)``; numeric fluents are skipped."""
    return [tuple(fact) for fact in section(tree, ":init") if isinstance(fact, list) and fact and fact[0] != "="]


def _unmangle(entity: str) -> str:
    for code, char in (("_bar_", "|"), ("_minus_", "-"), ("_plus_", "+"), ("_dot_", "."), ("_comma_", ",")):
        entity = entity.replace(code, char)
    return entity


def _base_name(entity: str) -> str:
    name = entity.split("_bar_", 1)[0]
    return name + "basin" if "basin" in entity else name


def display_names(entities: Iterable[str]) -> Dict[str, str]:
    """The names ALFWorld's TextWorld wrapper gives entities: ``type N``, numbered per type.

    Numbers go 1..count per type and are handed out over the sorted ids in descending order (the
    first id in sorted order gets the largest number). Ids without a ``_bar_`` keep their text
    plus a trailing space.
    """
    ids = sorted(set(entities))
    remaining = Counter(_base_name(e) for e in ids if "_bar_" in e)
    names = {}
    for entity in ids:
        text = _unmangle(entity)
        if "|" not in text:
            names[entity] = text + " "
            continue
        base = _base_name(entity)
        names[entity] = f"{base} {remaining[base]}"
        remaining[base] -= 1
    return names


def mangle(name: str) -> str:
    """ALFRED ids as PDDL names: ``Apple|+01.00|...`` -> ``Apple_bar__plus_01_dot_00...``."""
    for char, code in (("|", "_bar_"), ("-", "_minus_"), ("+", "_plus_"), (".", "_dot_"), (",", "_comma_")):
        name = name.replace(char, code)
    return name
