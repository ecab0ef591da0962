"""The PPO update: micro-batching does not change the step, and advantages move log-probs the right way."""

import copy

import pytest
import torch

from proxmo.policy import ModelConfig, Policy
from proxmo.train.config import OptimConfig
from proxmo.train.update import Sequences, UpdateBatch, ppo_update, sequence_logprobs


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
    stats = ppo_update(policy, optimizer, UpdateBatch(sequences, advantages), config, torch.Generator().manual_seed(0))
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
    ppo_update(policy, optimizer, UpdateBatch(sequences, advantages, old), OptimConfig(kl_coef=0.0, entropy_coef=0.0),
               torch.Generator().manual_seed(0))
    for a, b in zip(shortcut.model.parameters(), policy.model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_shortcut_needs_a_single_step(base_policy):
    with pytest.raises(ValueError, match="old_logprobs"):
        _step(base_policy, _sequences(base_policy), torch.zeros(6), mini_batches=2)
    with pytest.raises(ValueError, match="advantages"):
        _step(base_policy, _sequences(base_policy), torch.zeros(5))


# ----------------------------------------------------------------- the policy that acts is the one trained

CHOICES = [["go to cabinet 1", "take apple 1 from cabinet 1", "open fridge 1"], ["click[buy now]", "look"],
           ["go to cabinet 1", "put apple 1 in/on cabinet 1", "look", "open fridge 1"]]


def _chosen(policy, temperature=1.0, normalize=True, seed=0):
    prompts = [policy.encode_prompt(t) for t in ("you see a cabinet 1", "buy it", "an apple 1 is here")]
    choices = policy.choose(prompts, CHOICES, temperature, torch.Generator().manual_seed(seed), length_normalize=normalize)
    sequences = Sequences(prompts, [c.response_ids for c in choices], temperature=temperature,
                          candidate_ids=[c.candidate_ids for c in choices], choice=[c.index for c in choices],
                          length_normalize=normalize)
    return sequences, [torch.tensor([c.logprob]) for c in choices]


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_choose_mode_trains_the_candidate_distribution_it_acted_with(base_policy, temperature):
    policy = Policy(copy.deepcopy(base_policy.model), base_policy.tokenizer, base_policy.config)
    sequences, behaviour = _chosen(policy, temperature)
    # Recomputed at update time exactly as at acting time: ratio 1 before the first step.
    recomputed = sequence_logprobs(policy, sequences, 2)
    for old, new in zip(behaviour, recomputed):
        assert new.shape == (1,) and abs(float(new - old)) < 1e-5
    advantages = torch.tensor([1.0, -1.0, 1.0])
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=0.5)
    stats = ppo_update(policy, optimizer, UpdateBatch(sequences, advantages, behaviour),
                       OptimConfig(kl_coef=0.0, entropy_coef=0.01, grad_clip=1e9), torch.Generator().manual_seed(0))
    assert abs(stats["ratio_max"] - 1.0) < 1e-5 and abs(stats["ratio_mean"] - 1.0) < 1e-5
    # The entropy is that of the candidate distribution (at most log of the candidate count), not of the vocabulary.
    assert 0.0 < stats["entropy"] <= float(torch.tensor([3.0, 2.0, 4.0]).log().mean()) + 1e-6
    after = sequence_logprobs(policy, sequences, 8)
    # The update moves pi(choice | state): up where the advantage is positive, down where negative.
    assert float(after[0]) > float(behaviour[0]) and float(after[1]) < float(behaviour[1])


def test_choose_mode_kl_is_that_of_the_candidate_distribution(base_policy):
    policy = Policy(copy.deepcopy(base_policy.model), base_policy.tokenizer, base_policy.config)
    sequences, behaviour = _chosen(policy)
    reference = sequence_logprobs(base_policy, sequences, 8)
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=0.5)
    config = OptimConfig(kl_coef=0.1, entropy_coef=0.0, grad_clip=1e9)
    batch = UpdateBatch(sequences, torch.tensor([1.0, -1.0, 1.0]), behaviour, reference)
    first = ppo_update(policy, optimizer, batch, config)
    assert abs(first["kl"]) < 1e-6  # identical to the reference before the step
    second = ppo_update(policy, optimizer, batch, config)
    new = sequence_logprobs(policy, sequences, 8)
    log_ratio = torch.cat(reference) - torch.cat(new)
    expected = float((log_ratio.exp() - log_ratio - 1).mean())
    assert second["kl"] > 0 and abs(second["kl"] - expected) / expected < 0.5  # measured before vs after the step


def test_token_logprobs_for_the_ratio_use_the_rollout_temperature(base_policy):
    sequences = _sequences(base_policy, n=3)
    hot = Sequences(sequences.prompt_ids, sequences.response_ids, temperature=0.5)
    at_one = sequence_logprobs(base_policy, sequences, 8)
    at_half = sequence_logprobs(base_policy, hot, 8)
    expected, _, mask = base_policy.token_logprobs(sequences.prompt_ids, sequences.response_ids, temperature=0.5)
    for row, (cold, warm) in enumerate(zip(at_one, at_half)):
        assert not torch.allclose(cold, warm)
        torch.testing.assert_close(warm, expected[row, : len(warm)].detach(), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="temperature"):
        Sequences(sequences.prompt_ids, sequences.response_ids, temperature=0.0)


def test_update_forward_passes_run_without_dropout():
    config = ModelConfig(kind="tiny", hidden_size=32, num_layers=1, num_heads=2, vocab_size=300)
    policy = Policy.from_config(config, corpus=["go to cabinet 1", "look"])
    policy.model.config.attention_dropout = 0.5
    for module in policy.model.modules():
        if hasattr(module, "attention_dropout"):
            module.attention_dropout = 0.5
    policy.model.train()
    sequences = _sequences(policy, n=4)
    old = sequence_logprobs(policy, sequences, 8)
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=0.0)
    stats = ppo_update(policy, optimizer, UpdateBatch(sequences, torch.ones(4), old), OptimConfig(kl_coef=0.0, entropy_coef=0.0))
    assert stats["ratio_max"] == pytest.approx(1.0, abs=1e-6) and stats["ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    assert policy.model.training  # the caller's mode is given back


def _changed_fraction(dtype, master_weights=True):
    config = ModelConfig(kind="tiny", hidden_size=32, num_layers=2, num_heads=2, vocab_size=300, dtype=dtype,
                         master_weights=master_weights, device="cpu")
    policy = Policy.from_config(config, corpus=["go to cabinet 1", "take apple 1 from cabinet 1", "look"])
    before = [p.detach().clone() for p in policy.model.parameters()]
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=1e-6, weight_decay=0.01)
    sequences = _sequences(policy, n=6)
    ppo_update(policy, optimizer, UpdateBatch(sequences, torch.linspace(-1, 1, 6)), OptimConfig(kl_coef=0.0))
    moved = total = 0
    for p, b in zip(policy.model.parameters(), before):
        touched = p.grad is None  # grads are cleared after the step: count entries the optimizer state moved
        state = optimizer.state[p]
        active = state["exp_avg"] != 0 if state else torch.zeros_like(p, dtype=torch.bool)
        moved += int(((p.detach() != b) & active).sum())
        total += int(active.sum())
        assert touched
    return moved / total


def test_bf16_preset_applies_small_updates_to_every_trained_parameter():
    # Pure bfloat16 weights round an AdamW step of 1e-6 away for most entries; float32 masters keep it.
    assert _changed_fraction("bfloat16") > 0.99
    assert _changed_fraction("float32") > 0.99
    assert _changed_fraction("bfloat16", master_weights=False) < 0.5


def test_an_update_batch_refuses_misshapen_parts(base_policy):
    sequences, behaviour = _chosen(base_policy)
    with pytest.raises(ValueError, match=r"advantages: expected shape \(3,\), got \(2,\)"):
        UpdateBatch(sequences, torch.ones(2))
    with pytest.raises(ValueError, match="ref_logprobs: 2 entries for 3 steps"):
        UpdateBatch(sequences, torch.ones(3), behaviour, behaviour[:2])
