"""Tests of the actor loss: hand-computed PPO branches, aggregation modes, masking, KL and entropy terms."""

import math

import pytest
import torch

from proxmo.train.loss import actor_loss, aggregate, low_var_kl, masked_mean, policy_loss


def _one_token(ratio: float, advantage: float, **kwargs):
    """Policy loss of a single token with the given ratio and advantage, and d loss / d logp."""
    logp = torch.tensor([[math.log(ratio)]], dtype=torch.float64, requires_grad=True)
    old = torch.zeros(1, 1, dtype=torch.float64)
    loss, stats = policy_loss(logp, old, torch.tensor([[advantage]]), torch.ones(1, 1), **kwargs)
    loss.backward()
    return loss.item(), logp.grad.item(), stats


# (ratio, advantage, expected loss, expected d loss / d logp, clipfrac, dual_clipfrac)
# With ratio = exp(logp - old), d(-A * ratio)/d logp = -A * ratio; a clipped branch has no gradient.
PPO_CASES = {
    "inside clip, A > 0": (1.1, 1.0, -1.1, -1.1, 0.0, 0.0),
    "inside clip, A < 0": (0.9, -2.0, 1.8, 1.8, 0.0, 0.0),
    "above 1 + eps, A > 0: clipped": (1.5, 2.0, -2.4, 0.0, 1.0, 0.0),
    "below 1 - eps, A < 0: clipped": (0.5, -1.0, 0.8, 0.0, 1.0, 0.0),
    "below 1 - eps, A > 0: not clipped": (0.5, 1.0, -0.5, -0.5, 0.0, 0.0),
    "above 1 + eps, A < 0: not clipped": (1.5, -1.0, 1.5, 1.5, 0.0, 0.0),
    "A < 0, ratio beyond dual clip": (4.0, -1.0, 3.0, 0.0, 0.0, 1.0),
    "A < 0, ratio just under dual clip": (2.9, -1.0, 2.9, 2.9, 0.0, 0.0),
}


@pytest.mark.parametrize("case", PPO_CASES)
def test_policy_loss_branches_by_hand(case):
    ratio, adv, expected, expected_grad, clipfrac, dual_clipfrac = PPO_CASES[case]
    loss, grad, stats = _one_token(ratio, adv)
    assert loss == pytest.approx(expected, abs=1e-6)
    assert grad == pytest.approx(expected_grad, abs=1e-6)
    assert stats["clipfrac"] == clipfrac
    assert stats["dual_clipfrac"] == dual_clipfrac
    assert stats["ratio_mean"] == pytest.approx(ratio, rel=1e-6)
    assert stats["approx_kl"] == pytest.approx(-math.log(ratio), rel=1e-6)


def test_asymmetric_clip_and_disabled_dual_clip():
    assert _one_token(1.5, 1.0, clip_high=0.28)[0] == pytest.approx(-1.28)
    assert _one_token(0.5, -1.0, clip_low=0.1)[0] == pytest.approx(0.9)
    assert _one_token(4.0, -1.0, dual_clip=None)[0] == pytest.approx(4.0)
    assert _one_token(4.0, -1.0, dual_clip=5.0)[0] == pytest.approx(4.0)


def test_stats_over_several_tokens():
    logp = torch.log(torch.tensor([[1.1, 1.5, 4.0, 7.0]]))
    adv = torch.tensor([[1.0, 2.0, -1.0, 1.0]])
    mask = torch.tensor([[1, 1, 1, 0]])  # the 7.0 ratio is padding
    loss, stats = policy_loss(logp, torch.zeros(1, 4), adv, mask)
    assert loss.item() == pytest.approx((-1.1 - 2.4 + 3.0) / 3, rel=1e-6)
    assert stats["clipfrac"] == pytest.approx(1 / 3)
    assert stats["dual_clipfrac"] == pytest.approx(1 / 3)
    assert stats["ratio_max"] == pytest.approx(4.0, rel=1e-6)
    assert stats["ratio_mean"] == pytest.approx((1.1 + 1.5 + 4.0) / 3, rel=1e-6)
    assert all(type(v) is float for v in stats.values())


def test_aggregation_modes():
    loss_mat = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, 100.0], [9.0, 9.0, 9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]])  # third sequence is all padding
    assert aggregate(loss_mat, mask).item() == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert aggregate(loss_mat, mask, "token-mean").item() == pytest.approx(2.5)
    assert aggregate(loss_mat, mask, "seq-mean-token-sum").item() == pytest.approx((6 + 4) / 2)
    assert aggregate(loss_mat, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)
    with pytest.raises(ValueError, match="token-sum-mean"):
        aggregate(loss_mat, mask, "token-sum-mean")


def test_masked_mean():
    values = torch.tensor([[1.0, float("nan")], [3.0, 5.0]])
    mask = torch.tensor([[True, False], [True, True]])
    assert masked_mean(values, mask).item() == pytest.approx(3.0)
    assert masked_mean(values, mask, dim=-1).tolist() == pytest.approx([1.0, 4.0])
    assert masked_mean(values, torch.zeros_like(mask)).item() == 0.0
    with pytest.raises(ValueError, match="mask"):
        masked_mean(values, mask[:, :1])


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"])
def test_masked_tokens_contribute_nothing(mode):
    torch.manual_seed(0)
    logp = -torch.rand(3, 5)
    old = logp + 0.3 * torch.randn(3, 5)
    ref = logp + 0.3 * torch.randn(3, 5)
    adv = torch.randn(3, 5)
    ent = torch.rand(3, 5)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)

    def run(logp, old, ref, adv, ent):
        logp = logp.clone().requires_grad_(True)
        ent = ent.clone().requires_grad_(True)
        loss, _ = actor_loss(logp, old, adv, mask, ref_logprobs=ref, entropy=ent, mode=mode)
        loss.backward()
        return loss, logp.grad, ent.grad

    loss, grad, ent_grad = run(logp, old, ref, adv, ent)
    # Garbage in the padding, including NaN and inf, changes neither the loss nor any gradient.
    garbage = torch.full((3, 5), float("nan"))
    garbage[0, 3] = float("inf")
    pad = ~mask
    loss2, grad2, ent_grad2 = run(
        torch.where(pad, -1e4, logp), torch.where(pad, garbage, old), torch.where(pad, garbage, ref),
        torch.where(pad, garbage, adv), torch.where(pad, 1e6, ent),
    )
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-6)
    assert torch.equal(grad[pad], torch.zeros(int(pad.sum())))
    assert torch.equal(grad2[pad], torch.zeros(int(pad.sum())))
    assert torch.equal(ent_grad2[pad], torch.zeros(int(pad.sum())))
    assert torch.allclose(grad2, grad) and torch.allclose(ent_grad2, ent_grad)
    assert torch.isfinite(grad2).all()


def test_low_var_kl():
    logp = torch.tensor([[-1.0, -2.0, -0.5, -3.0]])
    assert torch.equal(low_var_kl(logp, logp), torch.zeros(1, 4))
    ref = logp + torch.tensor([[1.0, -1.0, 5.0, 0.1]])
    kl = low_var_kl(logp, ref)[0]
    assert kl[0].item() == pytest.approx(math.e - 2)
    assert kl[1].item() == pytest.approx(math.exp(-1))
    assert kl[2].item() == 10.0  # e^5 - 6 = 142, clamped
    assert (kl > 0).all()
    with pytest.raises(ValueError, match="ref_logprobs"):
        low_var_kl(logp, ref[:, :2])


def test_gradient_at_ratio_one_is_the_policy_gradient():
    torch.manual_seed(1)
    weights = torch.randn(6, 10, requires_grad=True)  # a tiny "model": features -> logits over 10 tokens
    features = torch.randn(2, 4, 6)
    tokens = torch.randint(0, 10, (2, 4))
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    adv = torch.tensor([0.7, -1.3])  # one advantage per sequence, broadcast over its tokens

    def token_logprobs():
        return torch.log_softmax(features @ weights, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)

    logp = token_logprobs()
    loss, stats = actor_loss(logp, logp.detach(), adv, mask, kl_coef=0.0)
    (grad,) = torch.autograd.grad(loss, weights)

    logp = token_logprobs()
    surrogate = -(adv[:, None] * logp * mask).sum() / mask.sum()
    (expected,) = torch.autograd.grad(surrogate, weights)
    assert torch.allclose(grad, expected, atol=1e-6)
    assert stats["pg_loss"] == pytest.approx(-(0.7 * 3 - 1.3 * 2) / 5, rel=1e-6)
    assert stats["clipfrac"] == 0.0 and stats["approx_kl"] == 0.0


def test_advantages_per_sequence_are_broadcast():
    logp = -torch.rand(2, 3)
    old = logp + 0.1
    mask = torch.ones(2, 3)
    adv = torch.tensor([1.0, -2.0])
    per_seq, _ = policy_loss(logp, old, adv, mask)
    per_token, _ = policy_loss(logp, old, adv[:, None].expand(2, 3), mask)
    assert per_seq.item() == pytest.approx(per_token.item())


def test_kl_and_entropy_terms():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    ref = logp.detach() + 1.0
    ent = torch.tensor([[0.5, 1.5]], requires_grad=True)
    mask = torch.ones(1, 2)
    adv = torch.zeros(1, 2)
    loss, stats = actor_loss(logp, logp.detach(), adv, mask, ref_logprobs=ref, entropy=ent,
                             kl_coef=0.1, entropy_coef=0.01)
    assert stats["kl"] == pytest.approx(math.e - 2, rel=1e-6)
    assert stats["entropy"] == pytest.approx(1.0)
    assert stats["pg_loss"] == 0.0
    assert loss.item() == pytest.approx(0.1 * (math.e - 2) - 0.01 * 1.0, rel=1e-6)
    loss.backward()
    # The bonus: more entropy, lower loss.
    assert torch.allclose(ent.grad, torch.full((1, 2), -0.01 / 2))
    # KL pulls logp towards the higher reference: d/dlogp (e^(ref-logp) - (ref-logp) - 1) = 1 - e^(ref-logp) < 0.
    assert torch.allclose(logp.grad, torch.full((1, 2), 0.1 * (1 - math.e) / 2))

    no_terms, stats = actor_loss(logp, logp.detach(), adv, mask, ref_logprobs=ref, kl_coef=0.0)
    assert no_terms.item() == 0.0
    assert stats["kl"] > 0 and stats["entropy"] == 0.0  # still reported, not added


def test_bf16_inputs_give_float32_loss():
    logp = (-torch.rand(2, 3)).to(torch.bfloat16).requires_grad_(True)
    loss, _ = actor_loss(logp, logp.detach(), torch.ones(2), torch.ones(2, 3), ref_logprobs=logp.detach())
    loss.backward()
    assert loss.dtype == torch.float32 and logp.grad.dtype == torch.bfloat16


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"old_logprobs": torch.zeros(2, 4)}, "old_logprobs"),
        ({"mask": torch.ones(3, 3)}, "mask"),
        ({"advantages": torch.zeros(3)}, "advantages"),
        ({"advantages": torch.zeros(2, 2)}, "advantages"),
        ({"ref_logprobs": torch.zeros(2)}, "ref_logprobs"),
        ({"entropy": torch.zeros(2, 3, 1)}, "entropy"),
        ({"logprobs": torch.zeros(6)}, "logprobs"),
        ({"dual_clip": 1.0}, "dual_clip"),
        ({"clip_low": 1.0}, "clip_low"),
        ({"mode": "sum"}, "mode"),
        ({"kl_coef": -1.0}, "kl_coef"),
    ],
)
def test_bad_inputs_are_named(kwargs, match):
    args = {"logprobs": torch.zeros(2, 3), "old_logprobs": torch.zeros(2, 3),
            "advantages": torch.zeros(2), "mask": torch.ones(2, 3)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        actor_loss(**args)
