"""GODEL_SMALL_ED: GODEL_TINY's architecture (a T5 of 17M parameters with GODEL's tokenizer and
input format) trained from scratch on EmpatheticDialogues' train split by this project's own
launcher: the shipped weights are the end of this schedule; short of its targets (docs/models.md).
How it is made, on a 2-core CPU:

  python launch/train_dialogue_model.py --config configs/godel_small_ed.py \
      --output_dir runs/godel_small_ed
  python launch/convert_checkpoint.py --to packaged \
      --input runs/godel_small_ed/tensorboard_logs/version_0 \
      --output empathy_jax/assets/models/GODEL_SMALL_ED

The second command writes the shipped folder (bfloat16 parameters, no tokenizer: the registry
entry names GODEL's and starts generation from `<PAD>`). Its figures are in docs/models.md.
"""

from empathy_jax import experiments


def get_config(variant: str = ""):
  return experiments.config(experiments.GODEL_SMALL_ED, variant,
                            {**experiments.GODEL_SMALL_ED, **experiments.SFT_TINY})
