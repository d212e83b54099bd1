"""empathy-jax: JAX/Flax training and evaluation of empathetic dialogue models."""

__version__ = "0.1.0"
