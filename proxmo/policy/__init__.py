"""The LLM policy of the RL trainer: load a model, pick or generate actions, and score token log-probs.

Needs only torch, transformers, tokenizers, pydantic and numpy::

    from proxmo.policy import ModelConfig, Policy
    policy = Policy.from_config(ModelConfig(kind="tiny"), corpus=observation_texts)
    prompt = policy.encode_prompt("You are in a room ... Your task is to: ...")
    [choice] = policy.choose([prompt], [["go to cabinet 1", "look"]], temperature=1.0, generator=g)
    logprobs, entropy, mask = policy.token_logprobs([prompt], [choice.response_ids], with_entropy=True)
"""

from proxmo.extras import require

require("train", "the policy (proxmo.policy)", ["torch", "transformers", "tokenizers"])

from proxmo.policy.config import ModelConfig
from proxmo.policy.model import build_tiny_tokenizer, load_policy_model
from proxmo.policy.policy import AdaptersOff, Choice, Policy
from proxmo.policy.uniform import UniformPolicy

__all__ = ["AdaptersOff", "Choice", "ModelConfig", "Policy", "UniformPolicy", "build_tiny_tokenizer", "load_policy_model"]
