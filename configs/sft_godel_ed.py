"""GODEL (large) fine-tuned on EmpatheticDialogues: the table's 'GODEL fine-tuned on ED'.

  python launch/train_dialogue_model.py --config configs/sft_godel_ed.py --output_dir runs/sft_godel_ed
  python launch/train_dialogue_model.py --config configs/sft_godel_ed.py:tiny --output_dir runs/tiny
"""

from empathy_jax import experiments


def get_config(variant: str = ""):
  return experiments.config({**experiments.SFT, "model": "GODEL_LARGE"}, variant,
                       {**experiments.SFT_TINY, "model": "GODEL_TINY"})
