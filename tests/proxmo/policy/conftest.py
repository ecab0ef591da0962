"""Shared fixtures: a tiny corpus and a small randomly initialised policy (fast on one CPU thread)."""

import pytest

from proxmo.policy import ModelConfig, Policy

CORPUS = [
    "You are in the middle of a room. Looking quickly around you, you see a cabinet 1, a countertop 2, a fridge 1.",
    "Your task is to: put a clean apple in the fridge.",
    "go to cabinet 1",
    "take apple 1 from countertop 2",
    "open fridge 1",
    "On the countertop 2, you see an apple 1 and a mug 3.",
]

SMALL = dict(hidden_size=32, num_layers=2, num_heads=4, vocab_size=400, max_positions=512)


@pytest.fixture(scope="module")
def policy() -> Policy:
    """A tiny policy shared by a test module; tests must not change its weights."""
    return Policy.from_config(ModelConfig(**SMALL), CORPUS)


@pytest.fixture
def fresh_policy() -> Policy:
    """A tiny policy of its own, for tests that train or modify it."""
    return Policy.from_config(ModelConfig(**SMALL), CORPUS)
