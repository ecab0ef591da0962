"""The training job: group rollouts, advantages, the PPO-style update, evaluation and checkpoints."""

from proxmo.extras import require

require("train", "the training job (proxmo.train)", ["torch", "transformers", "yaml"])
