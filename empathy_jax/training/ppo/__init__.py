"""PPO against the reward model: pure math here (`advantages`, `losses`), tested against NumPy;
the rollout and trainer wire them."""

from empathy_jax.training.ppo.advantages import gae, kl_penalty, token_rewards, whiten
from empathy_jax.training.ppo.losses import entropy, policy_loss, value_loss

__all__ = ["gae", "kl_penalty", "token_rewards", "whiten", "entropy", "policy_loss",
           "value_loss"]
