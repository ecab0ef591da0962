"""Policy: prompts, candidate choice, free generation, token log-probs for training, and save / load."""

import os
import sys

import pytest
import torch
import torch.nn.functional as F
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from proxmo.policy import ModelConfig, Policy
from proxmo.policy import decoding, scoring

from .conftest import CORPUS, SMALL

CANDIDATES = [
    ["go to cabinet 1", "look", "take apple 1 from countertop 2", ""],
    ["open fridge 1"],
    ["inventory", "go to countertop 2", "examine mug 3", "put apple 1 in/on fridge 1", "x"],
]


def prompts_of(policy, lengths=(3, 40, 12)):
    return [policy.encode_prompt(" ".join(CORPUS)[: 10 * n]) for n in lengths]


def reference_logprobs(policy, prompt, response, temperature=1.0):
    """Log-probs of ``response`` from one plain forward pass over prompt + response (no padding, no cache)."""
    ids = torch.tensor([prompt + response])
    logits = policy.model(input_ids=ids, use_cache=False).logits[0].float() / temperature
    logp = F.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
    return logp.gather(-1, torch.tensor(response)[:, None]).squeeze(-1), -(logp.exp() * logp).sum(-1)


# --------------------------------------------------------------------- encoding


def test_prompt_uses_the_chat_template(policy):
    ids = policy.encode_prompt("go to cabinet 1")
    assert policy.tokenizer.decode(ids) == "<|im_start|>user\ngo to cabinet 1<|im_end|>\n<|im_start|>assistant\n"


def test_long_prompts_lose_their_start_not_their_end(policy):
    short = Policy(policy.model, policy.tokenizer, policy.config.model_copy(update={"max_prompt_tokens": 12}))
    full = policy.encode_prompt(" ".join(CORPUS))
    cut = short.encode_prompt(" ".join(CORPUS))
    assert len(full) > 12 and cut == full[-12:]
    assert short.tokenizer.decode(cut).endswith("<|im_start|>assistant\n")


def test_response_ends_with_end_of_turn(policy):
    ids = policy.encode_response("go to cabinet 1")
    assert ids[-1] == policy.tokenizer.convert_tokens_to_ids("<|im_end|>") == policy.end_id
    assert policy.tokenizer.decode(ids[:-1]) == "go to cabinet 1"
    assert policy.encode_response("") == [policy.end_id]


# --------------------------------------------------------------------- choose


def test_choice_scores_equal_summed_token_logprobs(policy):
    prompts = prompts_of(policy)
    scores = policy.score_candidates(prompts, CANDIDATES, length_normalize=False)
    for prompt, actions, score in zip(prompts, CANDIDATES, scores):
        responses = [policy.encode_response(a) for a in actions]
        with torch.no_grad():
            logprobs, _, _ = policy.token_logprobs([prompt] * len(actions), responses)
        assert score.shape == (len(actions),)
        torch.testing.assert_close(score, logprobs.sum(-1), atol=1e-4, rtol=0)


def test_scores_do_not_depend_on_how_candidates_are_chunked(policy, monkeypatch):
    prompts = prompts_of(policy)
    whole = policy.score_candidates(prompts, CANDIDATES)
    monkeypatch.setattr(scoring, "CHOOSE_TOKEN_BUDGET", 1)  # one candidate per forward pass
    for a, b in zip(whole, policy.score_candidates(prompts, CANDIDATES)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_response_format_is_applied_before_scoring(policy):
    prompts = prompts_of(policy)
    wrap = lambda action: f"<action>{action}</action>"  # noqa: E731
    choices = policy.choose(prompts, CANDIDATES, temperature=0.0, response_format=wrap)
    formatted = policy.score_candidates(prompts, [[wrap(a) for a in c] for c in CANDIDATES])
    for choice, actions, score in zip(choices, CANDIDATES, formatted):
        assert choice.index == int(score.argmax())
        assert choice.text == wrap(actions[choice.index])
        assert choice.response_ids == policy.encode_response(choice.text)


@pytest.mark.parametrize("temperature", [0.0, 1e-8])
def test_zero_temperature_picks_the_best_candidate(policy, temperature):
    prompts = prompts_of(policy)
    scores = policy.score_candidates(prompts, CANDIDATES)
    for seed in range(3):
        choices = policy.choose(prompts, CANDIDATES, temperature, torch.Generator().manual_seed(seed))
        assert [c.index for c in choices] == [int(s.argmax()) for s in scores]


def test_sampling_is_reproducible_and_follows_the_softmax(policy):
    prompt = policy.encode_prompt("You see a cabinet 1.")
    actions = ["go to cabinet 1", "look", "open fridge 1", "x"]
    n = 200

    def draw(seed):
        choices = policy.choose([prompt] * n, [actions] * n, 3.0, torch.Generator().manual_seed(seed))
        return [c.index for c in choices]

    first = draw(0)
    assert first == draw(0)
    assert first != draw(1)
    expected = torch.softmax(policy.score_candidates([prompt], [actions])[0] / 3.0, dim=0)
    observed = torch.bincount(torch.tensor(first), minlength=len(actions)).float() / n
    # Binomial standard error is at most 0.035 for n = 200: about 3.5 sigma.
    assert (observed - expected).abs().max() < 0.12


def test_prompt_without_candidates_is_an_error_naming_it(policy):
    prompts = prompts_of(policy)
    with pytest.raises(ValueError, match=r"candidates\[1\]"):
        policy.choose(prompts, [["look"], [], ["look"]], 1.0)
    with pytest.raises(ValueError, match="temperature"):
        policy.choose(prompts, CANDIDATES, -1.0)
    with pytest.raises(ValueError, match=r"prompt_ids\[0\]"):
        policy.choose([[]], [["look"]], 1.0)


def test_acting_leaves_the_training_mode_alone(fresh_policy):
    fresh_policy.model.train()
    fresh_policy.choose(prompts_of(fresh_policy), CANDIDATES, 1.0)
    fresh_policy.generate(prompts_of(fresh_policy), 1.0, max_new_tokens=2)
    assert fresh_policy.model.training


# --------------------------------------------------------------------- token_logprobs


def test_token_logprobs_match_a_plain_forward_pass(policy):
    prompts = prompts_of(policy)
    responses = [policy.encode_response(a) for a in ("take apple 1 from countertop 2", "look", "")]
    with torch.no_grad():
        logprobs, entropy, mask = policy.token_logprobs(prompts, responses, temperature=0.7, with_entropy=True)
    width = max(map(len, responses))
    assert logprobs.shape == entropy.shape == mask.shape == (3, width)
    assert mask.sum(-1).tolist() == [len(r) for r in responses]
    for row, (prompt, response) in enumerate(zip(prompts, responses)):
        with torch.no_grad():
            ref_logp, ref_entropy = reference_logprobs(policy, prompt, response, temperature=0.7)
        n = len(response)
        torch.testing.assert_close(logprobs[row, :n], ref_logp, atol=1e-5, rtol=0)
        torch.testing.assert_close(entropy[row, :n], ref_entropy, atol=1e-5, rtol=0)
        assert not logprobs[row, n:].any() and not entropy[row, n:].any()


def test_token_logprobs_do_not_depend_on_the_rest_of_the_batch(policy):
    prompt, response = policy.encode_prompt("open fridge 1"), policy.encode_response("take apple 1")
    others_p = prompts_of(policy, (50, 1, 20))
    others_r = [policy.encode_response(a) for a in ("go to countertop 2 and look around", "", "x")]
    with torch.no_grad():
        alone, alone_h, _ = policy.token_logprobs([prompt], [response], with_entropy=True)
        batched, batched_h, mask = policy.token_logprobs(
            others_p[:2] + [prompt] + others_p[2:], others_r[:2] + [response] + others_r[2:], with_entropy=True
        )
    n = len(response)
    torch.testing.assert_close(batched[2, :n], alone[0, :n], atol=1e-5, rtol=0)
    torch.testing.assert_close(batched_h[2, :n], alone_h[0, :n], atol=1e-5, rtol=0)
    assert torch.isfinite(batched).all() and mask[2].sum() == n


def test_gradients_reach_the_embeddings(fresh_policy):
    prompts = prompts_of(fresh_policy)
    responses = [fresh_policy.encode_response(a) for a in ("look", "go to cabinet 1", "")]
    logprobs, entropy, mask = fresh_policy.token_logprobs(prompts, responses, with_entropy=True)
    ((logprobs + 0.01 * entropy) * mask).sum().backward()
    grad = fresh_policy.model.get_input_embeddings().weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_gradient_checkpointing_gives_the_same_values_and_gradients():
    def run(checkpointing):
        policy = Policy.from_config(ModelConfig(**SMALL, gradient_checkpointing=checkpointing), CORPUS)
        policy.model.train()
        logprobs, _, _ = policy.token_logprobs(prompts_of(policy), [policy.encode_response("look")] * 3)
        logprobs.sum().backward()
        return logprobs.detach(), policy.model.get_input_embeddings().weight.grad

    (a, grad_a), (b, grad_b) = run(False), run(True)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(grad_a, grad_b)


# --------------------------------------------------------------------- generate


def test_generation_is_reproducible_and_capped(policy):
    prompts = prompts_of(policy)
    first = policy.generate(prompts, 1.0, torch.Generator().manual_seed(0), max_new_tokens=6)
    assert first == policy.generate(prompts, 1.0, torch.Generator().manual_seed(0), max_new_tokens=6)
    assert first != policy.generate(prompts, 1.0, torch.Generator().manual_seed(1), max_new_tokens=6)
    for choice in first:
        assert choice.index == -1 and 1 <= len(choice.response_ids) <= 6
        assert choice.text == policy.tokenizer.decode(choice.response_ids, skip_special_tokens=True)
    default_cap = policy.generate(prompts[:1], 1.0, torch.Generator().manual_seed(0))[0]
    assert len(default_cap.response_ids) <= policy.config.max_response_tokens


def test_greedy_generation_does_not_depend_on_left_padding(policy):
    prompts = prompts_of(policy)
    together = policy.generate(prompts, 0.0, max_new_tokens=8)
    alone = [policy.generate([p], 0.0, max_new_tokens=8)[0] for p in prompts]
    assert together == alone


def test_a_trained_policy_stops_at_end_of_turn(fresh_policy):
    """A few gradient steps on token_logprobs teach two responses; greedy decoding then ends at <|im_end|>."""
    policy = fresh_policy
    prompts = [policy.encode_prompt("Your task is to: look."), policy.encode_prompt("Your task is to: examine.")]
    targets = [policy.encode_response("look"), policy.encode_response("examine the mug 3 closely")]
    optimizer = torch.optim.Adam(policy.model.parameters(), lr=1e-2)
    for _ in range(60):
        logprobs, _, mask = policy.token_logprobs(prompts, targets)
        loss = -(logprobs * mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    choices = policy.generate(prompts, 0.0, max_new_tokens=40)
    assert [c.response_ids for c in choices] == targets
    assert [c.text for c in choices] == ["look", "examine the mug 3 closely"]
    # The short row stops at its end of turn while the long one is cut at the cap, without an end token.
    cap = len(targets[0]) + 2
    capped = policy.generate(prompts, 0.0, max_new_tokens=cap)
    assert [c.response_ids for c in capped] == [targets[0], targets[1][:cap]]
    [choice] = policy.choose(prompts[:1], [["examine the mug 3 closely", "look"]], 0.0)
    assert (choice.index, choice.text, choice.response_ids) == (1, "look", targets[0])


def test_generation_rejects_bad_arguments(policy):
    with pytest.raises(ValueError, match="max_new_tokens"):
        policy.generate(prompts_of(policy), 1.0, max_new_tokens=0)
    with pytest.raises(ValueError, match=r"prompt_ids\[1\]"):
        policy.generate([[1, 2], []], 1.0)


# --------------------------------------------------------------------- model building and persistence


def test_tiny_model_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a = Policy.from_config(ModelConfig(**SMALL, seed=3), CORPUS)
    assert torch.equal(state, torch.random.get_rng_state())
    b = Policy.from_config(ModelConfig(**SMALL, seed=3), CORPUS)
    c = Policy.from_config(ModelConfig(**SMALL, seed=4), CORPUS)
    wa, wb, wc = (p.model.get_input_embeddings().weight for p in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert a.model.config.vocab_size == len(a.tokenizer)
    assert a.model.config.tie_word_embeddings and a.model.config.use_cache
    # Tied embeddings are counted once: embeddings, then per layer attention (4 H x H), MLP (3 H x 4H) and
    # two norms, then the final norm.
    h, v, layers = SMALL["hidden_size"], len(a.tokenizer), SMALL["num_layers"]
    assert a.parameters_count() == v * h + layers * (4 * h * h + 3 * h * 4 * h + 2 * h) + h
    assert a.device == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_bfloat16_keeps_float32_master_weights_and_computes_in_bfloat16():
    policy = Policy.from_config(ModelConfig(**SMALL, dtype="bfloat16", device="cpu"), CORPUS)
    assert policy.model.dtype == torch.float32 and policy.compute_dtype == torch.bfloat16
    logprobs, _, _ = policy.token_logprobs(prompts_of(policy), [policy.encode_response("look")] * 3)
    assert logprobs.dtype == torch.float32 and torch.isfinite(logprobs).all()
    # The forward pass really runs in bfloat16: the result differs from the float32 one.
    exact = Policy(policy.model, policy.tokenizer, policy.config)
    full, _, _ = exact.token_logprobs(prompts_of(policy), [policy.encode_response("look")] * 3)
    assert not torch.equal(full, logprobs)
    torch.testing.assert_close(full, logprobs, atol=0.1, rtol=0.05)


def test_bfloat16_without_master_weights_stays_bfloat16():
    policy = Policy.from_config(ModelConfig(**SMALL, dtype="bfloat16", device="cpu", master_weights=False), CORPUS)
    assert policy.model.dtype == torch.bfloat16 and policy.compute_dtype is None
    logprobs, _, _ = policy.token_logprobs(prompts_of(policy), [policy.encode_response("look")] * 3)
    assert torch.isfinite(logprobs).all()


def test_candidate_logprobs_are_the_acting_distribution(policy):
    prompts = prompts_of(policy)
    for normalize in (False, True):
        scores = policy.score_candidates(prompts, CANDIDATES, length_normalize=normalize)
        encoded = [[policy.encode_response(a) for a in actions] for actions in CANDIDATES]
        with torch.no_grad():
            logpis = policy.candidate_logprobs(prompts, encoded, 2.0, normalize)
        for logpi, score in zip(logpis, scores):
            torch.testing.assert_close(logpi, torch.log_softmax(score / 2.0, -1), atol=1e-5, rtol=0)
        choices = policy.choose(prompts, CANDIDATES, 2.0, torch.Generator().manual_seed(0), length_normalize=normalize)
        for choice, logpi, encoded_i in zip(choices, logpis, encoded):
            assert choice.candidate_ids == encoded_i
            assert abs(choice.logprob - float(logpi[choice.index])) < 1e-5


def test_candidate_logprobs_carry_gradients(fresh_policy):
    prompts = prompts_of(fresh_policy)
    encoded = [[fresh_policy.encode_response(a) for a in actions] for actions in CANDIDATES]
    logpis = fresh_policy.candidate_logprobs(prompts, encoded, 1.0)
    torch.stack([logpi[0] for logpi in logpis]).sum().backward()
    grads = [p.grad for p in fresh_policy.model.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_saved_policy_loads_back_as_hf_with_identical_logits(policy, tmp_path):
    policy.save(tmp_path / "ckpt")
    loaded = Policy.from_config(ModelConfig(kind="hf", path=str(tmp_path / "ckpt"), device="cpu"))
    assert (tmp_path / "ckpt" / "model.safetensors").exists()
    ids = torch.tensor([policy.encode_prompt("go to cabinet 1") + policy.encode_response("look")])
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ids).logits, policy.model(ids).logits, atol=0, rtol=0)
    assert loaded.encode_prompt("go to cabinet 1") == policy.encode_prompt("go to cabinet 1")
    assert loaded.end_id == policy.end_id and loaded.pad_id == policy.pad_id
    assert loaded.tokenizer.decode(loaded.encode_response("héllo 🤖")) == "héllo 🤖<|im_end|>"


@pytest.mark.parametrize(
    "fields,error",
    [
        (dict(kind="hf", path="/no/such/folder"), FileNotFoundError),
        (dict(kind="gguf", path="/no/such/model.gguf"), FileNotFoundError),
        (dict(kind="gguf", path="/no/such/folder", gguf_file="model.gguf"), FileNotFoundError),
        (dict(kind="gguf", path="/tmp"), ValueError),
        (dict(kind="hf", path="someone/no-such-model"), FileNotFoundError),  # the tests run with the hub offline
    ],
)
def test_missing_checkpoints_name_model_path(fields, error):
    with pytest.raises(error, match="model.path"):
        Policy.from_config(ModelConfig(**fields))


def test_hf_path_to_a_file_is_an_error(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="model.path"):
        Policy.from_config(ModelConfig(kind="hf", path=str(tmp_path / "weights.bin")))


def plain_checkpoint(folder):
    """A checkpoint whose tokenizer is not ChatML: eos '</s>', no pad token, no chat template."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(CORPUS, trainer=trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>")
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def test_hf_checkpoint_without_chatml_pad_or_template(tmp_path):
    plain_checkpoint(tmp_path)
    policy = Policy.from_config(ModelConfig(kind="hf", path=str(tmp_path), device="cpu"))
    eos = policy.tokenizer.convert_tokens_to_ids("</s>")
    assert policy.end_id == eos and policy.tokenizer.pad_token_id == eos and eos in policy.stop_ids
    assert policy.encode_prompt("go to cabinet 1") == policy.tokenizer("go to cabinet 1")["input_ids"]
    assert policy.encode_response("look")[-1] == eos
    prompts = [policy.encode_prompt("go to cabinet 1"), policy.encode_prompt("look")]
    choices = policy.choose(prompts, [["look", "open fridge 1"]] * 2, 1.0, torch.Generator().manual_seed(0))
    assert all(c.response_ids[-1] == eos for c in choices)
    for choice in policy.generate(prompts, 1.0, torch.Generator().manual_seed(0), max_new_tokens=5):
        assert eos not in choice.response_ids[:-1]


def test_random_weights_need_only_the_architecture_and_are_seeded(tmp_path):
    plain_checkpoint(tmp_path)
    for weights in tmp_path.glob("*.safetensors"):
        weights.unlink()  # a folder with config.json and the tokenizer only, as the GPU check writes
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    built = {seed: Policy.from_config(ModelConfig(kind="hf", path=str(tmp_path), device="cpu", random_weights=True,
                                                  seed=seed)) for seed in (0, 1)}
    assert torch.equal(torch.rand(3), expected_next)  # the caller's RNG stream is untouched
    first = dict(built[0].model.named_parameters())
    again = Policy.from_config(ModelConfig(kind="hf", path=str(tmp_path), device="cpu", random_weights=True, seed=0))
    assert all(torch.equal(first[name], parameter) for name, parameter in again.model.named_parameters())
    assert not all(torch.equal(first[name], parameter) for name, parameter in built[1].model.named_parameters())
    with pytest.raises(FileNotFoundError, match="model.path"):
        Policy.from_config(ModelConfig(kind="hf", path=str(tmp_path), device="cpu"))  # real weights are missing


def test_generation_in_row_chunks_matches_one_batch_when_greedy(policy):
    prompts = prompts_of(policy)
    whole = policy.generate(prompts, 0.0, max_new_tokens=5)
    saved = policy.config
    policy.config = saved.model_copy(update={"generation_token_budget": 1})  # one prompt per decoding batch
    try:
        assert policy.generate(prompts, 0.0, max_new_tokens=5) == whole
    finally:
        policy.config = saved
    assert policy.generate([], 1.0) == []


def test_length_normalised_choice_ranks_by_mean_token_logprob(policy):
    prompt = policy.encode_prompt("Your task is to: put a clean apple in the fridge.")
    candidates = ["go", "take apple 1 from countertop 2 and open fridge 1"]
    [scores] = policy.score_candidates([prompt], [candidates], length_normalize=False)
    lengths = torch.tensor([len(policy.encode_response(c)) for c in candidates], dtype=scores.dtype)
    best_mean = int(torch.argmax(scores / lengths))
    [greedy] = policy.choose([prompt], [candidates], temperature=0.0, length_normalize=True)
    assert greedy.index == best_mean
    # an untrained model's summed log-probs favour the short action by orders of magnitude
    assert scores[0] - scores[1] > 10
    # unless told otherwise the policy scores by the mean, as runs do (rollout.choose_score=mean)
    [default] = policy.score_candidates([prompt], [candidates])
    torch.testing.assert_close(default, scores / lengths, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])  # bfloat16: autocast over float32 weights
def test_packed_and_cached_candidate_scoring_agree(policy, monkeypatch, dtype):
    if dtype != "float32":
        policy = Policy.from_config(ModelConfig(**SMALL, dtype=dtype), CORPUS)
        assert policy.compute_dtype == torch.bfloat16
    prompts = prompts_of(policy)
    monkeypatch.setattr(scoring, "PACKED_MAX_WIDTH", 10**6)
    packed = policy.score_candidates(prompts, CANDIDATES, length_normalize=True)
    monkeypatch.setattr(scoring, "PACKED_MAX_WIDTH", 0)
    cached = policy.score_candidates(prompts, CANDIDATES, length_normalize=True)
    tolerance = dict(atol=1e-5, rtol=0) if dtype == "float32" else dict(atol=0, rtol=1e-3)  # bf16: 8 mantissa bits
    for a, b in zip(packed, cached):
        torch.testing.assert_close(a, b, **tolerance)


@pytest.mark.parametrize("chunk", [1, 3, 7, 10_000])
def test_chunked_token_logprobs_equal_the_full_ones_with_their_gradients(chunk):
    from proxmo.policy import ModelConfig, Policy
    from tests.proxmo.policy.conftest import CORPUS, SMALL

    def run(chunk_tokens):
        policy = Policy.from_config(ModelConfig(**SMALL, logprob_chunk_tokens=chunk_tokens), CORPUS)
        prompts = prompts_of(policy)
        responses = [policy.encode_response(a) for a in ("take apple 1 from countertop 2", "look", "")]
        logprobs, entropy, mask = policy.token_logprobs(prompts, responses, temperature=0.7, with_entropy=True)
        ((logprobs + 0.01 * entropy) * mask).sum().backward()
        grads = [p.grad.clone() for p in policy.model.parameters() if p.grad is not None]
        return logprobs.detach(), entropy.detach(), mask, grads

    full, chunked = run(0), run(chunk)
    for a, b in zip(full[:3], chunked[:3]):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    assert len(full[3]) == len(chunked[3]) > 0
    for a, b in zip(full[3], chunked[3]):  # the same update follows
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])  # bfloat16: autocast over float32 weights, as on a GPU
@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_static_cache_generation_gives_the_same_tokens_as_the_dynamic_one(temperature, dtype):
    from proxmo.policy import ModelConfig, Policy
    from tests.proxmo.policy.conftest import CORPUS, SMALL

    texts = ("open fridge 1", "go to cabinet 1 and take the apple", "look", "take apple 1 from countertop 2")
    results = {}
    for cache in ("dynamic", "static"):
        policy = Policy.from_config(ModelConfig(**SMALL, generation_cache=cache, max_response_tokens=40, dtype=dtype),
                                    CORPUS)
        prompts = [policy.encode_prompt(t) for t in texts]
        if cache == "dynamic":  # stop tokens that this untrained model does emit, so rows end at different times
            first = policy.generate(prompts, temperature, torch.Generator().manual_seed(5))
            common = sorted({t for c in first for t in c.response_ids[3:]})[:3]
        policy.stop_ids = frozenset(common)
        results[cache] = [c.response_ids for c in policy.generate(prompts, temperature,
                                                                  torch.Generator().manual_seed(5))]
    assert results["static"] == results["dynamic"]
    assert len({len(r) for r in results["dynamic"]}) > 1 or temperature == 0.0  # rows stopped at different steps
    assert any(len(r) < 40 for r in results["dynamic"])


def test_the_vllm_backend_is_checked_and_says_what_it_needs():
    import importlib.util

    from proxmo.policy import ModelConfig, Policy
    from tests.proxmo.policy.conftest import CORPUS, SMALL

    with pytest.raises(ValueError, match="rollout_backend: vllm loads a Hugging Face folder"):
        ModelConfig(**SMALL, rollout_backend="vllm")
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here: the missing-package message cannot be seen")
    policy = Policy.from_config(ModelConfig(**SMALL), CORPUS)
    policy.config = policy.config.model_copy(update={"rollout_backend": "vllm", "kind": "hf", "path": "/nowhere"})
    with pytest.raises(ImportError, match="needs the 'vllm' package.*rollout_backend=hf"):
        policy.generate([policy.encode_prompt("look")], 1.0, torch.Generator().manual_seed(0))
    policy.sync_rollout_weights()  # no engine yet: nothing to send


def test_the_vllm_sampler_seeds_each_prompt_and_refreshes_the_engine_after_a_weight_sync(monkeypatch):
    """The sampler against an engine that records what it is asked (the real engine: test_vllm_engine.py, in
    .venv-vllm): the documented calls, one seed per prompt, the workers' in-place reload, then the prefix cache
    dropped."""
    import types

    from proxmo.policy import vllm_backend

    calls = []

    class Engine:
        def __init__(self, **kwargs):
            calls.append(("LLM", kwargs))

        def generate(self, prompts, params, use_tqdm):
            calls.append(("generate", [p.seed for p in params]))
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=[len(p["prompt_token_ids"])])])
                    for p in prompts]

        def collective_rpc(self, method, kwargs):
            calls.append((method, [name for name, _ in kwargs["weights_iterator"]], kwargs["is_checkpoint_format"]))

        def reset_prefix_cache(self):
            calls.append(("reset",))

    fake = types.SimpleNamespace(LLM=Engine, SamplingParams=lambda **kwargs: types.SimpleNamespace(**kwargs))
    monkeypatch.setitem(sys.modules, "vllm", fake)
    on_cpu = types.SimpleNamespace(is_cpu=lambda: True)
    monkeypatch.setitem(sys.modules, "vllm.platforms", types.SimpleNamespace(current_platform=on_cpu))
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
    with pytest.raises(RuntimeError, match="unset VLLM_ENABLE_V1_MULTIPROCESSING or set it to 0"):
        vllm_backend.VllmSampler("/model", "bfloat16", 0.3, 512, seed=1)
    assert not calls  # refused before an engine is built
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING")
    sampler = vllm_backend.VllmSampler("/model", "bfloat16", 0.3, 512, seed=1)
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"  # the engine runs in this process
    assert calls[0][1]["enable_prefix_caching"] and calls[0][1]["max_model_len"] == 512
    assert calls[0][1]["enable_chunked_prefill"] is False  # on vLLM's CPU build: whole prompts (seeded draws)
    out = sampler.generate([[1, 2], [1, 2], [3]], temperature=1.0, max_tokens=8, stop_ids={7}, seed=40)
    assert out == [[2], [2], [1]] and calls[-1] == ("generate", [40, 41, 42])  # a group's equal prompts differ
    sampler.load_weights([("a.weight", torch.ones(2)), ("b.weight", torch.zeros(2))])
    assert calls[-2:] == [("reload_weights", ["a.weight", "b.weight"], True), ("reset",)]


def test_lora_adapters_are_seeded_by_the_model_seed_and_leave_the_global_rng_alone():
    def adapters(seed, global_seed):
        torch.manual_seed(global_seed)
        policy = Policy.from_config(ModelConfig(**SMALL, seed=seed, lora_rank=2, lora_targets=["q_proj"]), CORPUS)
        return {n: p.detach().clone() for n, p in policy.model.named_parameters() if "lora_A" in n}, torch.rand(1)

    first, after_first = adapters(seed=0, global_seed=1)
    again, _ = adapters(seed=0, global_seed=2)  # another global state: the same adapters
    other, _ = adapters(seed=1, global_seed=1)
    assert first and all(torch.equal(first[n], again[n]) for n in first)
    assert not all(torch.equal(first[n], other[n]) for n in first)
    torch.manual_seed(1)
    assert torch.equal(torch.rand(1), after_first)  # building the policy drew nothing from the global stream


def test_the_weights_a_rollout_engine_gets_are_the_merged_model_under_its_own_names():
    from proxmo.policy import ModelConfig, Policy
    from proxmo.policy.vllm_backend import trainer_weights
    from tests.proxmo.policy.conftest import CORPUS, SMALL

    plain = Policy.from_config(ModelConfig(**SMALL), CORPUS)
    names = set(plain.model.state_dict())
    assert {name for name, _ in trainer_weights(plain.model, None)} == names
    lora = Policy.from_config(ModelConfig(**SMALL, lora_rank=2, lora_targets=["q_proj"]), CORPUS)
    with torch.no_grad():  # a trained adapter: B no longer zero
        for name, parameter in lora.model.named_parameters():
            if "lora_B" in name:
                parameter.fill_(0.5)
    sent = dict(trainer_weights(lora.model, torch.bfloat16))
    assert set(sent) == names and all(t.dtype == torch.bfloat16 for t in sent.values() if t.is_floating_point())
    q = "model.layers.0.self_attn.q_proj.weight"
    base = lora.model.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight
    assert not torch.allclose(sent[q].float(), base.bfloat16().float())  # the adapter is merged in
    with torch.no_grad():
        prompt, response = lora.encode_prompt("look"), lora.encode_response("open fridge 1")
        before, _, _ = lora.token_logprobs([prompt], [response])
        trainer_weights(lora.model, None)
        after, _, _ = lora.token_logprobs([prompt], [response])
    torch.testing.assert_close(after, before)  # reading the merged weights leaves the adapter as it was


@pytest.mark.slow
def test_compiled_decoding_gives_the_same_tokens_and_compiles_once():
    from proxmo.policy import ModelConfig, Policy
    from tests.proxmo.policy.conftest import CORPUS, SMALL

    samples = {}
    for compiled in (False, True):
        policy = Policy.from_config(ModelConfig(**SMALL, generation_cache="static", compile_decode=compiled,
                                                max_response_tokens=12), CORPUS)
        prompts = [policy.encode_prompt(t) for t in ("open fridge 1", "go to cabinet 1 and take it", "look")]
        samples[compiled] = [c.response_ids for c in policy.generate(prompts, 1.0, torch.Generator().manual_seed(2))]
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    again = [c.response_ids for c in policy.generate(prompts, 1.0, torch.Generator().manual_seed(2))]
    assert samples[True] == samples[False] == again
    assert graphs > 0 and counters["stats"]["unique_graphs"] == graphs  # the second call compiled nothing new


@pytest.mark.slow
def test_compiled_decoding_under_bf16_autocast_with_lora_computes_the_eager_logits(monkeypatch):
    """The GPU setting (bf16 autocast over float32 weights, LoRA adapters) compiled: fused kernels round bf16
    differently, so a draw that lands next to a boundary may pick another token; until the first such token the
    compiled step's logits must be the eager ones within bf16 precision."""
    from proxmo.policy import ModelConfig, Policy
    from tests.proxmo.policy.conftest import CORPUS, SMALL

    original = decoding._sample
    logits, tokens = {}, {}
    for compiled in (False, True):
        seen = logits.setdefault(compiled, [])
        monkeypatch.setattr(decoding, "_sample", lambda lg, *a, **k: seen.append(lg.float().clone()) or
                            original(lg, *a, **k))
        policy = Policy.from_config(ModelConfig(**SMALL, generation_cache="static", compile_decode=compiled,
                                                max_response_tokens=12, dtype="bfloat16", lora_rank=2), CORPUS)
        with torch.no_grad():  # trained adapters: B no longer zero
            for name, parameter in policy.model.named_parameters():
                if "lora_B" in name:
                    parameter.fill_(0.3)
        prompts = [policy.encode_prompt(t) for t in ("open fridge 1", "go to cabinet 1 and take it", "look")]
        tokens[compiled] = [c.response_ids for c in policy.generate(prompts, 1.0, torch.Generator().manual_seed(2))]
    same_until = next((step for step in range(12) if any(len(r) <= step for r in tokens[False]) or
                       [r[step] for r in tokens[False]] != [r[step] for r in tokens[True]]), 12)
    compared = min(same_until + 1, len(logits[False]), len(logits[True]))
    assert compared >= 2  # the prompt's logits and at least one compiled step
    for eager, fused in zip(logits[False][:compared], logits[True][:compared]):
        torch.testing.assert_close(fused, eager, atol=0.01, rtol=0.02)  # observed: 0.002 on logits of about 0.3
