"""Configuration shipped with empathy-jax: the model registry (`models.py`)."""
