"""GODEL_SMALL_ED: GODEL_TINY's architecture (a T5 of 17M parameters with GODEL's tokenizer and
input format) trained from scratch on EmpatheticDialogues' train split by this project's own
launcher, in two stages: two epochs from scratch, then one more epoch from those weights with a
fresh optimizer (`:continue`). The shipped weights are the end of the second stage; short of
its targets (docs/models.md). How it is made, on a 2-core CPU:

  python launch/train_dialogue_model.py --config configs/godel_small_ed.py \
      --output_dir runs/godel_small_ed
  python launch/convert_checkpoint.py --to packaged \
      --input runs/godel_small_ed/tensorboard_logs/version_0 \
      --output empathy_jax/assets/models/GODEL_SMALL_ED
  python launch/train_dialogue_model.py --config configs/godel_small_ed.py:continue \
      --output_dir runs/godel_small_ed_continue
  rm -r empathy_jax/assets/models/GODEL_SMALL_ED
  python launch/convert_checkpoint.py --to packaged \
      --input runs/godel_small_ed_continue/tensorboard_logs/version_0 \
      --output empathy_jax/assets/models/GODEL_SMALL_ED

The second stage starts from the package's GODEL_SMALL_ED, so the first stage's folder must be
in place (the first convert) before it runs. The packaged folder holds bfloat16 parameters and
no tokenizer (the registry entry names GODEL's). Its figures are in docs/models.md.
"""

import ml_collections

from empathy_jax import experiments


def get_config(variant: str = ""):
  if variant == "continue":
    return ml_collections.ConfigDict(dict(experiments.GODEL_SMALL_ED_CONTINUE))
  return experiments.config(experiments.GODEL_SMALL_ED, variant,
                            {**experiments.GODEL_SMALL_ED, **experiments.SFT_TINY})
