"""The metric suite on the EmpatheticDialogues test split, as the table's rows were made
(`test`): GODEL (large) without fine-tuning by default; pass --pretrained_model_dir for a run.

  python launch/test.py --config configs/eval_godel_ed.py --output_dir outputs/godel_large
  python launch/test.py --config configs/eval_godel_ed.py:tiny --output_dir outputs/tiny
"""

from empathy_jax import experiments


def get_config(variant: str = ""):
  return experiments.config({**experiments.EVAL, "model": "GODEL_LARGE"}, variant,
                            {**experiments.EVAL_TINY, "model": "GODEL_TINY"})
