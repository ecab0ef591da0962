"""The training job: group rollouts, advantages, the PPO-style update, evaluation and checkpoints."""
