"""BlenderBot 400M-distill fine-tuned on EmpatheticDialogues.

  python launch/train_dialogue_model.py --config configs/sft_blenderbot_ed.py --output_dir runs/sft_blenderbot_ed
  python launch/train_dialogue_model.py --config configs/sft_blenderbot_ed.py:tiny --output_dir runs/tiny
"""

from empathy_jax import experiments


def get_config(variant: str = ""):
  return experiments.config({**experiments.SFT, "model": "BlenderBot"}, variant,
                       {**experiments.SFT_TINY, "model": "BlenderBot_TINY"})
