"""StepBatch: one row per environment step, validated, plus its canonical (sorted) form for the estimators."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

import numpy as np

_FIELDS = ("group", "traj", "t", "reward", "invalid", "won", "anchor")
OPTIONAL_FIELDS = ("tokens", "next_anchor")


def _as_array(name: str, value: Any) -> np.ndarray:
    """Convert a numpy array, torch tensor, list or tuple into a 1-D numpy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor without importing torch
        value = value.detach().cpu().numpy()
    if isinstance(value, (str, bytes)) or np.isscalar(value):
        raise TypeError(f"{name}: expected one value per row (array, tensor or list), got a single {type(value).__name__}")
    if isinstance(value, np.ndarray):
        array = value
    else:
        value = list(value)
        array = None
        if name in ("group", "traj") and value and isinstance(value[0], (int, np.integer)):
            array = np.asarray(value)  # integer ids: a fast integer array (mixed types fall through)
            array = array if array.dtype.kind in "iu" else None
        if array is None and name in ("group", "traj", "anchor"):
            array = np.empty(len(value), dtype=object)
            array[:] = value
        elif array is None:
            array = np.asarray(value)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence (one value per row), got shape {array.shape}")
    return array


def _factorize(name: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ids and the code of every row; ids must be all integers or all strings."""
    if values.dtype.kind in "iuUS":
        uniques, codes = np.unique(values, return_inverse=True)
        return uniques, codes.astype(np.int64)
    kinds = {type(v) for v in values.tolist()}
    if kinds <= {int, np.int64, np.int32, bool} or kinds <= {str, np.str_}:
        lookup = {}
        for v in values.tolist():
            lookup.setdefault(v, None)
        uniques = sorted(lookup)
        index = {v: i for i, v in enumerate(uniques)}
        codes = np.fromiter((index[v] for v in values.tolist()), dtype=np.int64, count=len(values))
        return np.asarray(uniques, dtype=object), codes
    names = sorted(k.__name__ for k in kinds)
    raise TypeError(f"{name}: ids must be all integers or all strings, got types {names}")


def _check_texts(name: str, values: np.ndarray) -> np.ndarray:
    if values.dtype.kind != "U":
        not_str = [i for i, a in enumerate(values.tolist()) if not isinstance(a, str)]
        if not_str:
            i = not_str[0]
            raise TypeError(f"{name}: row {i} is {type(values[i]).__name__}, not str ({len(not_str)} such rows)")
    return values


def _as_whole(name: str, values: np.ndarray, what: str, minimum: int) -> np.ndarray:
    """Whole numbers >= minimum as int64 (floats with integral values accepted)."""
    if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        values = values.astype(np.int64)
    if values.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer {what}, got dtype {values.dtype}")
    if (values < minimum).any():
        raise ValueError(f"{name}: {what} must be >= {minimum} (row {int(np.argmax(values < minimum))} is "
                         f"{int(values.min())})")
    return values.astype(np.int64)


def _as_bool(name: str, values: np.ndarray) -> np.ndarray:
    if values.dtype == bool:
        return values
    if values.dtype.kind in "iuf" and np.isin(values, (0, 1)).all():
        return values.astype(bool)
    raise TypeError(f"{name}: expected booleans (or 0/1), got dtype {values.dtype}")


class StepBatch:
    """The rows of one training iteration: one row per environment step.

    Every field has one value per row; rows may come in any order.

    Args:
        group: (N,) episode-group id (int or str): rollouts of the same task instance.
        traj: (N,) trajectory id (int or str), unique in the batch; a trajectory lies in one group.
        t: (N,) step index inside its trajectory; each trajectory's steps are 0..L-1.
        reward: (N,) environment reward of the step (finite floats).
        invalid: (N,) bool, the model's output failed the action format check.
        won: (N,) bool, the trajectory succeeded (the same value on all its rows).
        anchor: (N,) str, the raw environment observation the step acted on.
        tokens: optional (N,) int >= 1, the step's response token count (REINFORCE++-baseline weighs rows by it).
        next_anchor: optional (N,) str, the observation the step led to (GraphGPO's graph uses it for the last
            step of a failed trajectory; without it each such step ends in a terminal of its own).
    """

    __slots__ = _FIELDS + OPTIONAL_FIELDS + ("_prepared",)

    def __init__(
        self,
        *,
        group: Any,
        traj: Any,
        t: Any,
        reward: Any,
        invalid: Any,
        won: Any,
        anchor: Sequence[str] | Any,
        tokens: Any = None,
        next_anchor: Any = None,
    ) -> None:
        arrays = {name: _as_array(name, value) for name, value in zip(_FIELDS, (group, traj, t, reward, invalid, won, anchor))}
        for name, value in (("tokens", tokens), ("next_anchor", next_anchor)):
            if value is not None:
                arrays[name] = _as_array(name, value)
        n = len(arrays["group"])
        if n == 0:
            raise ValueError("group: the batch is empty (no rows)")
        for name, array in arrays.items():
            if len(array) != n:
                raise ValueError(f"{name}: has {len(array)} rows but group has {n}")
        self.tokens = _as_whole("tokens", arrays["tokens"], "token counts", 1) if "tokens" in arrays else None
        self.next_anchor = _check_texts("next_anchor", arrays["next_anchor"]) if "next_anchor" in arrays else None

        t_arr = _as_whole("t", arrays["t"], "step indices", 0)

        reward = arrays["reward"]
        if reward.dtype.kind not in "iuf":
            raise TypeError(f"reward: expected numbers, got dtype {reward.dtype}")
        reward = reward.astype(np.float64)
        bad = ~np.isfinite(reward)
        if bad.any():
            raise ValueError(f"reward: {int(bad.sum())} rows are NaN or infinite (first at row {int(np.argmax(bad))})")

        anchor = _check_texts("anchor", arrays["anchor"])

        self.group = arrays["group"]
        self.traj = arrays["traj"]
        self.t = t_arr
        self.reward = reward
        self.invalid = _as_bool("invalid", arrays["invalid"])
        self.won = _as_bool("won", arrays["won"])
        self.anchor = anchor
        # The cross-field checks (trajectory structure) run on the sorted rows; keep that work.
        self._prepared = prepare(self)

    def __len__(self) -> int:
        return len(self.group)

    def __repr__(self) -> str:
        return f"StepBatch(rows={len(self)}, groups={len(set(self.group.tolist()))}, trajectories={len(set(self.traj.tolist()))})"

    @property
    def prepared(self) -> "PreparedBatch":
        """The canonical (sorted, encoded) form the estimators work on, built once at construction."""
        return self._prepared

    @classmethod
    def from_records(cls, records: Sequence[dict]) -> "StepBatch":
        """Build a batch from a list of dicts with the keys group, traj, t, reward, invalid, won, anchor (and,
        when every record has them, tokens and next_anchor)."""
        for i, record in enumerate(records):
            missing = [name for name in _FIELDS if name not in record]
            if missing:
                raise KeyError(f"records: row {i} lacks {missing}")
        optional = {name: [r[name] for r in records] for name in OPTIONAL_FIELDS
                    if records and all(name in r for r in records)}
        return cls(**{name: [r[name] for r in records] for name in _FIELDS}, **optional)


@dataclass(frozen=True)
class PreparedBatch:
    """The batch in canonical order: sorted by (group, trajectory, step), with integer codes.

    ``order[k]`` is the input row at canonical position ``k``.
    """

    order: np.ndarray  # (N,) int64
    group: np.ndarray  # (N,) group code 0..G-1
    traj: np.ndarray  # (N,) trajectory code 0..T-1
    t: np.ndarray  # (N,)
    reward: np.ndarray  # (N,) float64
    invalid: np.ndarray  # (N,) bool
    won: np.ndarray  # (N,) bool
    anchor_code: np.ndarray  # (N,) code into anchors
    anchors: List[str]  # distinct anchor texts, in order of first appearance (canonical order)
    traj_group: np.ndarray  # (T,) group code of each trajectory
    traj_len: np.ndarray  # (T,)
    traj_won: np.ndarray  # (T,) bool
    n_groups: int
    n_traj: int
    tokens: Optional[np.ndarray] = None  # (N,) int64 response token counts, when given
    next_anchor: Optional[np.ndarray] = None  # (N,) object, the observation each step led to, when given

    @property
    def n_rows(self) -> int:
        return len(self.order)

    def to_input_order(self, values: np.ndarray) -> np.ndarray:
        """Scatter a canonical-order array back into the caller's row order."""
        out = np.empty_like(values)
        out[self.order] = values
        return out


def prepare(batch: StepBatch) -> PreparedBatch:
    """Sort the rows canonically, encode ids, and check the trajectory structure."""
    group_ids, group_codes = _factorize("group", batch.group)
    traj_ids, traj_codes = _factorize("traj", batch.traj)
    n_traj = len(traj_ids)
    traj_group = np.empty(n_traj, dtype=np.int64)
    traj_group[traj_codes] = group_codes  # any row's group; all rows must agree
    split = group_codes != traj_group[traj_codes]
    if split.any():
        k = int(np.argmax(split))
        raise ValueError(
            f"traj: trajectory {_item(traj_ids[traj_codes[k]])!r} appears in two groups "
            f"({_item(group_ids[group_codes[k]])!r} and {_item(group_ids[traj_group[traj_codes[k]]])!r})"
        )
    order = np.lexsort((batch.t, traj_codes, group_codes))
    g = group_codes[order]
    tr = traj_codes[order]
    t = batch.t[order]
    n = len(order)

    # Rows of one trajectory are now contiguous; check the steps and `won` per trajectory.
    starts = np.flatnonzero(np.r_[True, tr[1:] != tr[:-1]])
    traj_len = np.diff(np.r_[starts, n])
    expected_t = np.arange(n) - np.repeat(starts, traj_len)
    wrong_t = t != expected_t
    if wrong_t.any():
        k = int(np.argmax(wrong_t))
        steps = t[starts[tr[k]] : starts[tr[k]] + traj_len[tr[k]]].tolist()
        raise ValueError(
            f"t: trajectory {_item(traj_ids[tr[k]])!r} has steps {steps[:20]}; expected 0..{traj_len[tr[k]] - 1} "
            "without gaps or repeats"
        )
    won = batch.won[order]
    traj_won = won[starts]
    mixed = won != traj_won[tr]
    if mixed.any():
        k = int(np.argmax(mixed))
        raise ValueError(f"won: trajectory {_item(traj_ids[tr[k]])!r} has both won=True and won=False rows")

    lookup: dict = {}
    anchor_list = batch.anchor.tolist()
    anchor_code = np.fromiter(
        (lookup.setdefault(anchor_list[i], len(lookup)) for i in order.tolist()), dtype=np.int64, count=n
    )
    return PreparedBatch(
        order=order,
        group=g,
        traj=tr,
        t=t,
        reward=batch.reward[order],
        invalid=batch.invalid[order],
        won=won,
        anchor_code=anchor_code,
        anchors=list(lookup),
        traj_group=traj_group,
        traj_len=traj_len,
        traj_won=traj_won,
        n_groups=int(g.max()) + 1,
        n_traj=n_traj,
        tokens=batch.tokens[order] if batch.tokens is not None else None,
        next_anchor=np.asarray(batch.next_anchor, dtype=object)[order] if batch.next_anchor is not None else None,
    )


def _item(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
