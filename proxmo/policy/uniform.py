"""A uniformly random agent with the policy's acting interface: the baseline a learning curve is read against."""

from __future__ import annotations

from typing import Callable, List, Optional

import torch

from proxmo.policy.config import LENGTH_NORMALIZE
from proxmo.policy.policy import Choice


class UniformPolicy:
    """Picks each candidate action with equal probability (``choose``); it has no model and no prompt."""

    def encode_prompt(self, prompt: str) -> List[int]:
        return [0]

    def choose(self, prompt_ids, candidates, temperature: float = 1.0, generator: Optional[torch.Generator] = None,
               response_format: Callable[[str], str] = str, length_normalize: bool = LENGTH_NORMALIZE) -> List[Choice]:
        if len(candidates) != len(prompt_ids):
            raise ValueError(f"candidates: {len(candidates)} lists for {len(prompt_ids)} prompts")
        uniforms = torch.rand(len(candidates), generator=generator, dtype=torch.float64).tolist()
        choices = []
        for i, (actions, u) in enumerate(zip(candidates, uniforms)):
            if not actions:
                raise ValueError(f"candidates[{i}]: prompt {i} has no candidate actions")
            k = min(int(u * len(actions)), len(actions) - 1)
            choices.append(Choice(index=k, text=response_format(actions[k]), response_ids=[],
                                  logprob=-float(torch.log(torch.tensor(float(len(actions)))))))
        return choices

    def generate(self, prompt_ids, temperature, generator=None, max_new_tokens=None):
        raise ValueError("UniformPolicy: picks among admissible actions only (choose mode); it cannot write text")
