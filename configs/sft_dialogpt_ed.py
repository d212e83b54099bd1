"""DialoGPT (medium) fine-tuned on EmpatheticDialogues.

  python launch/train_dialogue_model.py --config configs/sft_dialogpt_ed.py --output_dir runs/sft_dialogpt_ed
  python launch/train_dialogue_model.py --config configs/sft_dialogpt_ed.py:tiny --output_dir runs/tiny
"""

from empathy_jax import experiments


def get_config(variant: str = ""):
  return experiments.config({**experiments.SFT, "model": "DialoGPT_MEDIUM"}, variant,
                       {**experiments.SFT_TINY, "model": "DialoGPT_TINY"})
