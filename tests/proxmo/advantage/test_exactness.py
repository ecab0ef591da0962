"""The vectorised estimators equal the row-by-row reference of docs/algorithm.md for every estimator, preset and switch."""

import itertools

import numpy as np
import pytest

from proxmo.advantage import AdvantageConfig, compute_advantages

from .conftest import rows_of
from .reference import reference_advantages

TOL = 1e-5


def assert_matches_reference(batch, config):
    result = compute_advantages(batch, config)
    expected = reference_advantages(rows_of(batch), config)
    for part in ("episode", "step", "advantages"):
        np.testing.assert_allclose(getattr(result, part), expected[part], atol=TOL, rtol=0, err_msg=f"{part} of {config}")


@pytest.mark.parametrize("estimator", ["grpo", "gigpo", "proxmo"])
@pytest.mark.parametrize("preset", ["paper", "official"])
def test_estimator_defaults_match_reference(small_batch, estimator, preset):
    assert_matches_reference(small_batch, AdvantageConfig(estimator=estimator, preset=preset))


GRID = list(
    itertools.product(
        ["paper", "official"],
        ["mean_norm", "mean_std_norm"],
        [False, True],
        ["none", "exact", "similar", "soft"],
    )
)


@pytest.mark.parametrize("preset,normalization,modulation,grouping", GRID)
def test_every_switch_combination_matches_reference(small_batch, preset, normalization, modulation, grouping):
    config = AdvantageConfig(
        estimator="proxmo",
        preset=preset,
        normalization=normalization,
        modulation=modulation,
        step_grouping=grouping,
        similarity_threshold=0.6,
        gamma=0.9,
        step_weight=0.5,
    )
    assert_matches_reference(small_batch, config)


@pytest.mark.parametrize("preset", ["paper", "official"])
@pytest.mark.parametrize("normalization", ["mean_norm", "mean_std_norm"])
@pytest.mark.parametrize("grouping", ["exact", "similar"])
def test_gigpo_and_grpo_options_match_reference(small_batch, preset, normalization, grouping):
    assert_matches_reference(small_batch, AdvantageConfig(estimator="gigpo", preset=preset, normalization=normalization,
                                                          step_grouping=grouping, similarity_threshold=0.6,
                                                          step_weight=0.5, gamma=0.9))
    assert_matches_reference(small_batch, AdvantageConfig(estimator="grpo", preset=preset, normalization=normalization))


SOFT_GRID = list(
    itertools.product(
        ["paper", "official"],
        [False, True],  # leave_one_out
        [False, True],  # keep_single_char_tokens
        ["batch", "group"],  # fit_scope
        ["tfidf", "bm25"],
        [None, 1024, 3],  # max_features (3 forces the vocabulary cut and its tie-breaking)
    )
)


@pytest.mark.parametrize("preset,loo,single,scope,backend,max_features", SOFT_GRID)
def test_soft_switches_match_reference(small_batch, preset, loo, single, scope, backend, max_features):
    config = AdvantageConfig(
        estimator="proxmo",
        preset=preset,
        leave_one_out=loo,
        keep_single_char_tokens=single,
        fit_scope=scope,
        similarity_backend=backend,
        max_features=max_features,
        temperature=0.3,
    )
    assert_matches_reference(small_batch, config)


@pytest.mark.parametrize("target", [1.0, 2.5, 100.0])
@pytest.mark.parametrize("loo", [False, True])
def test_adaptive_temperature_matches_reference(small_batch, target, loo):
    assert_matches_reference(small_batch, AdvantageConfig(target_group_size=target, leave_one_out=loo))


@pytest.mark.parametrize("modulation_params", [dict(alpha=1.0, target_range=0.3), dict(beta=0.7), dict(alpha=2.0)])
def test_modulation_parameters_match_reference(small_batch, modulation_params):
    for preset in ("paper", "official"):
        assert_matches_reference(small_batch, AdvantageConfig(preset=preset, **modulation_params))


def test_tiny_temperature_is_stable(small_batch):
    assert_matches_reference(small_batch, AdvantageConfig(temperature=1e-3))
    assert_matches_reference(small_batch, AdvantageConfig(temperature=1e-3, leave_one_out=True))


NEW_METHOD_OPTIONS = [
    ("drgrpo", {}),
    ("rloo", {}),
    ("reinforce_pp_baseline", {}),
    ("hgpo", {}),
    ("hgpo", {"history_length": 4, "alpha": 0.0, "normalization": "mean_norm"}),
    ("hgpo", {"history_length": 0, "base_group": True}),
    ("hgpo", {"history_length": 1, "alpha": 2.0, "base_group": True, "normalization": "mean_norm"}),
    ("g2po", {}),
    ("g2po", {"normalization": "mean_norm", "step_weight": 0.5, "value_discount": 0.9, "terminal_value": 1.0}),
    ("graphgpo", {}),
    ("graphgpo", {"normalize_distance": True, "graph_gamma": 0.5}),
    ("graphgpo", {"normalization": "mean_norm", "episode_weight": 0.0, "step_weight": 2.0, "goal_value": 1.0}),
]


def with_extras(batch, seed: int, next_anchor: bool):
    """The batch with token counts and (optionally) next observations: the next step's anchor, and for a last step
    an observation that is sometimes another step's anchor."""
    from proxmo.advantage import StepBatch

    rng = np.random.default_rng(seed)
    rows = rows_of(batch)
    following = {(r["traj"], r["t"]): r["anchor"] for r in rows}
    anchors = sorted({r["anchor"] for r in rows})
    extras = {"tokens": rng.integers(1, 20, size=len(rows))}
    if next_anchor:
        extras["next_anchor"] = [following.get((r["traj"], r["t"] + 1))
                                 or (anchors[int(rng.integers(len(anchors)))] if rng.random() < 0.5 else f"end {r['traj']}")
                                 for r in rows]
    return StepBatch(**{name: [r[name] for r in rows] for name in rows[0]}, **extras)


@pytest.mark.parametrize("preset", ["paper", "official"])
@pytest.mark.parametrize("method,options", NEW_METHOD_OPTIONS, ids=lambda v: str(v))
@pytest.mark.parametrize("extras", ["none", "tokens", "tokens+next"])
def test_the_new_methods_match_their_row_by_row_reference(small_batch, preset, method, options, extras):
    from .reference_methods import reference_method

    batch = small_batch if extras == "none" else with_extras(small_batch, 5, next_anchor=extras == "tokens+next")
    config = AdvantageConfig(estimator=method, preset=preset, gamma=0.9, **options)
    result = compute_advantages(batch, config)
    rows = rows_of(batch)
    if batch.tokens is not None:
        for row, tokens in zip(rows, batch.tokens.tolist()):
            row["tokens"] = tokens
    if batch.next_anchor is not None:
        for row, text in zip(rows, batch.next_anchor.tolist()):
            row["next_anchor"] = text
    np.testing.assert_allclose(result.advantages, reference_method(rows, config), atol=TOL, rtol=0)
