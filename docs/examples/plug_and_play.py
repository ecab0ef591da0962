"""ProxMO inside somebody else's GRPO loop: the only change is where the advantages come from.

A toy trainer with its own rollout records (its own field names), a tiny token policy and a toy
multi-turn task. After each group rollout it builds a `StepBatch` from its records, calls
`compute_advantages`, spreads each step's advantage over that step's response tokens, and takes
a PPO-clip step. Run it:

    python docs/examples/plug_and_play.py --iterations 30
"""

from __future__ import annotations

import argparse
import zlib

import numpy as np
import torch

from proxmo.advantage import AdvantageConfig, StepBatch, compute_advantages

VOCAB = ["left", "right", "up", "down", "wait", "<eos>"]
EOS = VOCAB.index("<eos>")


# ---- the trainer's own world: a corridor of rooms; saying the right word moves you on -------------
class Corridor:
    def __init__(self, task: int, length: int = 3, max_turns: int = 6) -> None:
        self.route = [(task + k) % 4 for k in range(length)]  # the word that works in each room
        self.max_turns = max_turns

    def reset(self) -> str:
        self.room, self.turn = 0, 0
        return self.observation()

    def observation(self) -> str:
        return f"You are in room {self.room} of corridor {self.route[0]}. Doors lead on."

    def step(self, words: list[str]) -> tuple[str, float, bool, bool, bool]:
        """Returns observation, reward, done, won, format_ok."""
        self.turn += 1
        format_ok = len(words) == 1  # exactly one word, then <eos>
        if format_ok and VOCAB.index(words[0]) == self.route[self.room]:
            self.room += 1
        won = self.room == len(self.route)
        done = won or self.turn >= self.max_turns
        return self.observation() if not won else "You made it.", 10.0 if won else 0.0, done, won, format_ok


# ---- the trainer's own policy: logits per (state, position); a good response is "<word> <eos>" ------
class TinyPolicy(torch.nn.Module):
    length = 2

    def __init__(self) -> None:
        super().__init__()
        self.table = torch.nn.Embedding(64 * self.length, len(VOCAB))

    @staticmethod
    def state(observation: str) -> int:
        return zlib.crc32(observation.encode()) % 64

    def log_probs(self, observations: list[str], tokens: torch.Tensor) -> torch.Tensor:
        """log pi(token_k | observation, position k) for every response token, shape (B, length)."""
        states = torch.tensor([self.state(o) for o in observations])[:, None] * self.length
        logits = self.table(states + torch.arange(self.length)[None, :])
        return torch.log_softmax(logits, -1).gather(-1, tokens[..., None])[..., 0]

    @torch.no_grad()
    def respond(self, observation: str, generator: torch.Generator) -> list[int]:
        rows = self.table(self.state(observation) * self.length + torch.arange(self.length))
        return [int(torch.multinomial(torch.softmax(row, -1), 1, generator=generator)) for row in rows]


def rollout(policy: TinyPolicy, tasks: list[int], group_size: int, generator: torch.Generator) -> list[dict]:
    """The trainer's records: one dict per turn, in its own vocabulary."""
    records = []
    for prompt_id, task in enumerate(tasks):
        for member in range(group_size):
            env = Corridor(task)
            obs, done, turn = env.reset(), False, 0
            episode_records = []
            while not done:
                response = policy.respond(obs, generator)
                words = [VOCAB[i] for i in response if i != EOS] if response[-1] == EOS else VOCAB[:2]
                next_obs, reward, done, won, format_ok = env.step(words)
                episode_records.append({"prompt_id": f"task-{prompt_id}", "episode_id": f"{prompt_id}-{member}",
                                        "turn": turn, "observation": obs, "response_ids": response,
                                        "env_reward": reward, "format_ok": format_ok})
                obs, turn = next_obs, turn + 1
            for record in episode_records:
                record["success"] = won
            records.extend(episode_records)
    return records


def to_step_batch(records: list[dict]) -> StepBatch:
    """The whole integration: map the trainer's fields onto a StepBatch."""
    return StepBatch(
        group=[r["prompt_id"] for r in records],
        traj=[r["episode_id"] for r in records],
        t=[r["turn"] for r in records],
        reward=[r["env_reward"] for r in records],
        invalid=[not r["format_ok"] for r in records],
        won=[r["success"] for r in records],
        anchor=[r["observation"] for r in records],
    )


def token_advantages(advantages: np.ndarray, records: list[dict]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad the responses and broadcast each step's scalar advantage to its response tokens."""
    width = max(len(r["response_ids"]) for r in records)
    tokens = torch.full((len(records), width), EOS)
    mask = torch.zeros(len(records), width)
    for i, r in enumerate(records):
        tokens[i, : len(r["response_ids"])] = torch.tensor(r["response_ids"])
        mask[i, : len(r["response_ids"])] = 1.0
    return tokens, mask, torch.as_tensor(advantages)[:, None] * mask


def ppo_step(policy, optimizer, observations, tokens, mask, token_adv, old_logp, clip=0.2) -> float:
    ratio = torch.exp(policy.log_probs(observations, tokens) - old_logp)
    loss = -torch.min(ratio * token_adv, ratio.clamp(1 - clip, 1 + clip) * token_adv)
    loss = (loss * mask).sum() / mask.sum()  # token-mean
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--estimator", default="proxmo")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    policy = TinyPolicy()
    optimizer = torch.optim.Adam(policy.parameters(), lr=0.05)
    # Room numbers are single digits, which the default token pattern drops ("room 0" == "room 1"):
    # keep them, or every state of a corridor looks the same to the proximity weighting.
    config = AdvantageConfig(estimator=args.estimator, keep_single_char_tokens=True)
    history = []
    for iteration in range(args.iterations):
        records = rollout(policy, tasks=[0, 1, 2, 3], group_size=8, generator=generator)
        result = compute_advantages(to_step_batch(records), config)  # <- the plug-in point
        tokens, mask, token_adv = token_advantages(result.advantages, records)
        observations = [r["observation"] for r in records]
        with torch.no_grad():
            old_logp = policy.log_probs(observations, tokens)
        for _ in range(4):  # a few PPO epochs on the batch
            ppo_step(policy, optimizer, observations, tokens, mask, token_adv, old_logp)
        success = np.mean([r["success"] for r in records if r["turn"] == 0])
        history.append(success)
        print(f"iteration {iteration:3d}  success {success:.2f}  |advantage| {np.abs(result.advantages).mean():.2f}")
    return {"first": float(np.mean(history[:5])), "last": float(np.mean(history[-5:]))}


if __name__ == "__main__":
    main()
