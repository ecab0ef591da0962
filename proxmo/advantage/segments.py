"""Segment statistics (per group, per trajectory) and discounted returns, without loops over rows."""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter


def segment_sum(values: np.ndarray, segment: np.ndarray, n_segments: int) -> np.ndarray:
    """Sum of ``values`` per segment id (0..n_segments-1)."""
    return np.bincount(segment, weights=values, minlength=n_segments)


def segment_count(segment: np.ndarray, n_segments: int) -> np.ndarray:
    return np.bincount(segment, minlength=n_segments).astype(np.float64)


def segment_mean_std(values: np.ndarray, segment: np.ndarray, n_segments: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-segment mean, unbiased std (NaN for segments of one element) and count.

    Two passes (mean, then squared deviations) for the same accuracy as a direct computation.
    """
    count = segment_count(segment, n_segments)
    mean = segment_sum(values, segment, n_segments) / np.maximum(count, 1.0)
    deviation = values - mean[segment]
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(segment_sum(deviation * deviation, segment, n_segments) / (count - 1.0))
    std[count < 2] = np.nan
    return mean, std, count


def discounted_returns(reward: np.ndarray, traj: np.ndarray, t: np.ndarray, n_traj: int, gamma: float) -> np.ndarray:
    """G_t = sum_{k>=t} gamma^(k-t) reward_k inside each trajectory.

    ``traj`` and ``t`` give each row's position; trajectories are laid out as rows of a padded
    (n_traj, max_len) matrix and filtered backwards in one call (the padding is zeros after the
    last step, so it does not leak into the returns).
    """
    max_len = int(t.max()) + 1
    padded = np.zeros((n_traj, max_len))
    padded[traj, t] = reward
    returns = lfilter([1.0], [1.0, -gamma], padded[:, ::-1], axis=1)[:, ::-1]
    return returns[traj, t]
