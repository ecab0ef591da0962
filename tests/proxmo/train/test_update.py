"""The PPO update: micro-batching does not change the step, and advantages move log-probs the right way."""

import copy

import pytest
import torch

from proxmo.policy import ModelConfig, Policy
from proxmo.train.config import OptimConfig
from proxmo.train.update import Sequences, ppo_update, sequence_logprobs


@pytest.fixture(scope="module")
def base_policy():
    config = ModelConfig(kind="tiny", hidden_size=32, num_layers=1, num_heads=2, vocab_size=300)
    return Policy.from_config(config, corpus=["go to cabinet 1", "take apple 1 from cabinet 1", "click[buy now]"])


def _sequences(policy, n=6):
    g = torch.Generator().manual_seed(0)
    vocab = len(policy.tokenizer)
    prompts = [torch.randint(5, vocab, (int(l),), generator=g).tolist() for l in torch.randint(3, 20, (n,), generator=g)]
    responses = [torch.randint(5, vocab, (int(l),), generator=g).tolist() for l in torch.randint(1, 6, (n,), generator=g)]
    return Sequences(prompts, responses)


def _step(policy, sequences, advantages, **optim):
    policy = Policy(copy.deepcopy(policy.model), policy.tokenizer, policy.config)
    config = OptimConfig(kl_coef=0.0, entropy_coef=0.0, **optim)
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=0.5)
    stats = ppo_update(policy, optimizer, sequences, advantages, None, None, config, torch.Generator().manual_seed(0))
    return policy, stats


@pytest.mark.parametrize("loss_agg", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"])
def test_micro_batches_give_the_same_step(base_policy, loss_agg):
    sequences = _sequences(base_policy)
    advantages = torch.tensor([1.0, -0.5, 0.3, 2.0, -1.0, 0.0])
    one, _ = _step(base_policy, sequences, advantages, micro_batch_size=6, loss_agg=loss_agg, grad_clip=1e9)
    many, _ = _step(base_policy, sequences, advantages, micro_batch_size=1, loss_agg=loss_agg, grad_clip=1e9)
    for a, b in zip(one.model.parameters(), many.model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    moved = sum(float((a - b).detach().abs().sum()) for a, b in zip(one.model.parameters(), base_policy.model.parameters()))
    assert moved > 0


def test_advantage_sign_moves_the_response_logprob(base_policy):
    sequences = _sequences(base_policy, n=2)
    before = sequence_logprobs(base_policy, sequences, 8)
    trained, stats = _step(base_policy, sequences, torch.tensor([1.0, -1.0]), grad_clip=1e9)
    after = sequence_logprobs(trained, sequences, 8)
    assert after[0].sum() > before[0].sum()
    assert after[1].sum() < before[1].sum()
    assert stats["ratio_mean"] == pytest.approx(1.0) and stats["clipfrac"] == 0.0


def test_recomputed_old_logprobs_match_the_shortcut(base_policy):
    sequences = _sequences(base_policy)
    advantages = torch.linspace(-1, 1, 6)
    shortcut, _ = _step(base_policy, sequences, advantages)
    policy = Policy(copy.deepcopy(base_policy.model), base_policy.tokenizer, base_policy.config)
    old = sequence_logprobs(policy, sequences, 4)
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=0.5)
    ppo_update(policy, optimizer, sequences, advantages, old, None, OptimConfig(kl_coef=0.0, entropy_coef=0.0),
               torch.Generator().manual_seed(0))
    for a, b in zip(shortcut.model.parameters(), policy.model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_shortcut_needs_a_single_step(base_policy):
    with pytest.raises(ValueError, match="old_logprobs"):
        _step(base_policy, _sequences(base_policy), torch.zeros(6), mini_batches=2)
    with pytest.raises(ValueError, match="advantages"):
        _step(base_policy, _sequences(base_policy), torch.zeros(5))
