"""The actor loss of the reference runs: clipped PPO surrogate with dual clip, k3 KL and entropy bonus (no critic).

verl-style, with the reference runs' settings (docs/training.md, "Configuration").

Shapes: ``B`` is the number of sequences (one per environment step), ``R`` the number of response
tokens per sequence (right-padded); ``mask`` marks the real response tokens (bool, or 0/1 numbers).
Every function is pure torch and differentiable with respect to ``logprobs`` (and ``entropy``).

Typical use in a trainer::

    loss, stats = actor_loss(logprobs, batch.old_logprobs, batch.advantages, batch.mask,
                             ref_logprobs=batch.ref_logprobs, entropy=entropy)
    loss.backward()
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean")

# exp() of a log-ratio above ~88 overflows float32; 20 keeps ratios finite (e^20 ~ 5e8) and is far
# outside anything clipping lets through, so it only matters for numerically broken batches.
_LOG_RATIO_CLAMP = 20.0
# The reference implementation bounds each token's k3 KL so that one badly off-policy token
# cannot dominate the KL term.
_KL_CLAMP = 10.0


def _bool_mask(mask: torch.Tensor, like: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """Return ``mask`` as a bool tensor of ``like``'s shape (nonzero = valid token).

    mask: any shape equal to ``like.shape`` (bool, int or float 0/1) -> bool tensor of the same shape.
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(mask).__name__}")
    if mask.shape != like.shape:
        raise ValueError(f"{name}: shape {tuple(mask.shape)} does not match the values' shape {tuple(like.shape)}")
    return mask if mask.dtype == torch.bool else mask != 0


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: Optional[int] = None) -> torch.Tensor:
    """Mean of ``values`` over the positions where ``mask`` is set.

    values: [...] any shape; mask: same shape (nonzero = counted).
    Returns a scalar (``dim=None``) or ``values`` reduced over ``dim``. An empty selection gives 0,
    not NaN, so a fully padded micro-batch contributes nothing instead of poisoning the step.
    Masked positions get exactly zero gradient, even if they hold inf or NaN.
    """
    valid = _bool_mask(mask, values)
    # where() rather than values * mask: 0 * inf = NaN would leak padding garbage into the sum.
    total = torch.where(valid, values, torch.zeros_like(values)).sum(dim=dim)
    count = valid.sum(dim=dim).clamp(min=1)
    return total / count


def aggregate(loss_mat: torch.Tensor, mask: torch.Tensor, mode: str = "token-mean") -> torch.Tensor:
    """Reduce a per-token loss to a scalar.

    loss_mat: [B, R]; mask: [B, R] (nonzero = real response token). Returns a scalar tensor.

    * ``token-mean``: sum over all valid tokens / number of valid tokens (long responses weigh more).
    * ``seq-mean-token-sum``: per-sequence sum of its tokens, averaged over sequences.
    * ``seq-mean-token-mean``: per-sequence mean of its tokens, averaged over sequences.

    In the ``seq-mean`` modes sequences without any valid token are left out of the average.
    """
    if mode not in AGG_MODES:
        raise ValueError(f"mode: unknown aggregation {mode!r}; expected one of {list(AGG_MODES)}")
    if loss_mat.dim() != 2:
        raise ValueError(f"loss_mat: expected [B, R], got shape {tuple(loss_mat.shape)}")
    valid = _bool_mask(mask, loss_mat)
    if mode == "token-mean":
        return masked_mean(loss_mat, valid)
    token_count = valid.sum(dim=-1)  # [B]
    seq_sum = torch.where(valid, loss_mat, torch.zeros_like(loss_mat)).sum(dim=-1)  # [B]
    if mode == "seq-mean-token-sum":
        seq_loss = seq_sum
    else:
        seq_loss = seq_sum / token_count.clamp(min=1)
    return masked_mean(seq_loss, token_count > 0)


def low_var_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(policy || reference): ``exp(ref - logp) - (ref - logp) - 1``.

    logprobs, ref_logprobs: [B, R] log-probabilities of the sampled tokens. Returns [B, R], >= 0,
    clamped to [-10, 10] as in the reference implementation. Unbiased, low variance, and 0 exactly
    where the two policies agree.
    """
    if logprobs.shape != ref_logprobs.shape:
        raise ValueError(
            f"ref_logprobs: shape {tuple(ref_logprobs.shape)} does not match logprobs {tuple(logprobs.shape)}"
        )
    log_ratio = (ref_logprobs - logprobs).clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    kl = torch.exp(log_ratio) - log_ratio - 1.0
    return kl.clamp(-_KL_CLAMP, _KL_CLAMP)


def _check_token_tensor(name: str, value: Optional[torch.Tensor], shape: torch.Size) -> None:
    """Raise naming ``name`` unless ``value`` is a tensor of exactly ``shape`` ([B, R])."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if value.shape != shape:
        raise ValueError(f"{name}: expected shape {tuple(shape)} (like logprobs), got {tuple(value.shape)}")


def _broadcast_advantages(advantages: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Per-token advantages.

    advantages: [B] (one value per sequence) or [B, R]; shape: (B, R). Returns [B, R].
    """
    if not isinstance(advantages, torch.Tensor):
        raise TypeError(f"advantages: expected a torch.Tensor, got {type(advantages).__name__}")
    if advantages.shape == shape:
        return advantages
    if advantages.dim() == 1 and advantages.shape[0] == shape[0]:
        return advantages.unsqueeze(-1).expand(shape)
    raise ValueError(
        f"advantages: expected shape {tuple(shape)} or ({shape[0]},), got {tuple(advantages.shape)}"
    )


def _check_inputs(logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor) -> None:
    """Validate the [B, R] tensors every loss needs, naming the first one that is wrong."""
    if not isinstance(logprobs, torch.Tensor):
        raise TypeError(f"logprobs: expected a torch.Tensor, got {type(logprobs).__name__}")
    if logprobs.dim() != 2:
        raise ValueError(f"logprobs: expected [B, R], got shape {tuple(logprobs.shape)}")
    _check_token_tensor("old_logprobs", old_logprobs, logprobs.shape)
    _check_token_tensor("mask", mask, logprobs.shape)


def _as_float(value: torch.Tensor) -> float:
    """A detached scalar tensor as a Python float (for logging)."""
    return float(value.detach().item())


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: Optional[float] = 3.0,
    mode: str = "token-mean",
) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Clipped PPO surrogate with dual clip for negative advantages.

    logprobs: [B, R] current policy (with grad); old_logprobs: [B, R] behaviour policy (no grad
    needed); advantages: [B, R] or [B]; mask: [B, R]. Returns the scalar loss and Python-float stats:
    ``clipfrac`` (share of valid tokens where the clipped term is active), ``dual_clipfrac``,
    ``approx_kl`` (mean of old - logp), ``ratio_mean`` and ``ratio_max`` over valid tokens.

    Per token, with ratio = exp(logp - old)::

        clipped = max(-A * ratio, -A * clip(ratio, 1 - clip_low, 1 + clip_high))
        loss    = min(clipped, -A * dual_clip)  where A < 0, else clipped

    ``dual_clip=None`` turns the dual clip off.
    """
    _check_inputs(logprobs, old_logprobs, mask)
    if not 0.0 <= clip_low < 1.0:
        raise ValueError(f"clip_low: must be in [0, 1), got {clip_low}")
    if clip_high < 0.0:
        raise ValueError(f"clip_high: must be >= 0, got {clip_high}")
    if dual_clip is not None and not dual_clip > 1.0:
        raise ValueError(f"dual_clip: must be > 1 (or None to disable), got {dual_clip}")
    adv = _broadcast_advantages(advantages, logprobs.shape)
    valid = _bool_mask(mask, logprobs)

    # Ratios near 1 need float32: in bf16 exp(logp - old) is only resolved to ~1e-2.
    # Padding is zeroed *before* exp and the products: a NaN there would otherwise come back as
    # 0 * NaN = NaN in the backward pass and reach the model's weights.
    zero = torch.zeros((), dtype=torch.float32, device=logprobs.device)
    adv = torch.where(valid, adv.detach().float(), zero)
    log_ratio = torch.where(valid, logprobs.float() - old_logprobs.detach().float(), zero)
    ratio = torch.exp(log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP))

    pg1 = -adv * ratio
    pg2 = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    clipped = torch.maximum(pg1, pg2)
    if dual_clip is None:
        per_token = clipped
        dual_active = torch.zeros_like(valid)
    else:
        # With A < 0 and a huge ratio, the plain PPO loss grows without bound; the dual clip caps it.
        cap = -adv * dual_clip
        negative = adv < 0
        per_token = torch.where(negative, torch.minimum(clipped, cap), clipped)
        dual_active = negative & (clipped > cap)

    loss = aggregate(per_token, valid, mode)
    with torch.no_grad():
        ratio_valid = torch.where(valid, ratio, zero)
        stats = {
            "clipfrac": _as_float(masked_mean((pg2 > pg1).float(), valid)),
            "dual_clipfrac": _as_float(masked_mean(dual_active.float(), valid)),
            "approx_kl": _as_float(masked_mean(-log_ratio, valid)),
            "ratio_mean": _as_float(masked_mean(ratio, valid)),
            "ratio_max": _as_float(ratio_valid.max()) if bool(valid.any()) else 0.0,
        }
    return loss, stats


def actor_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logprobs: Optional[torch.Tensor] = None,
    entropy: Optional[torch.Tensor] = None,
    kl_coef: float = 0.01,
    entropy_coef: float = 0.001,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: Optional[float] = 3.0,
    mode: str = "token-mean",
) -> Tuple[torch.Tensor, Dict[str, float]]:
    """The full actor objective: policy loss + kl_coef * KL(policy || ref) - entropy_coef * entropy.

    logprobs, old_logprobs, mask: [B, R]; advantages: [B, R] or [B]; ref_logprobs: [B, R] from the
    frozen reference policy, or None (no KL term); entropy: [B, R] per-token entropy of the current
    policy (with grad), or None (no bonus). The KL and entropy terms use the same aggregation
    ``mode`` as the policy loss. Returns the scalar loss and the stats of :func:`policy_loss` plus
    ``pg_loss``, ``kl`` and ``entropy`` (0.0 when the input for it is not given).
    """
    _check_inputs(logprobs, old_logprobs, mask)
    if ref_logprobs is not None:
        _check_token_tensor("ref_logprobs", ref_logprobs, logprobs.shape)
    if entropy is not None:
        _check_token_tensor("entropy", entropy, logprobs.shape)
    if kl_coef < 0:
        raise ValueError(f"kl_coef: must be >= 0, got {kl_coef}")
    if entropy_coef < 0:
        raise ValueError(f"entropy_coef: must be >= 0, got {entropy_coef}")

    pg_loss, stats = policy_loss(
        logprobs, old_logprobs, advantages, mask,
        clip_low=clip_low, clip_high=clip_high, dual_clip=dual_clip, mode=mode,
    )
    loss = pg_loss
    stats["pg_loss"] = _as_float(pg_loss)
    stats["kl"] = 0.0
    stats["entropy"] = 0.0
    if ref_logprobs is not None:
        valid = _bool_mask(mask, logprobs)
        zero = torch.zeros((), dtype=torch.float32, device=logprobs.device)
        # Same reason as in policy_loss: padding must not reach exp() or the backward pass.
        logp = torch.where(valid, logprobs.float(), zero)
        ref = torch.where(valid, ref_logprobs.detach().float(), zero)
        kl = aggregate(low_var_kl(logp, ref), valid, mode)
        # Still reported with kl_coef = 0: drift from the reference is worth watching either way.
        stats["kl"] = _as_float(kl)
        if kl_coef > 0:
            loss = loss + kl_coef * kl
    if entropy is not None:
        ent = aggregate(entropy.float(), mask, mode)
        # A bonus: subtracting it makes higher entropy lower the loss.
        loss = loss - entropy_coef * ent
        stats["entropy"] = _as_float(ent)
    return loss, stats
