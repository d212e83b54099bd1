"""What the experiment configs in `configs/` share: the original's settings per launcher and
the tiny CPU twins' overrides. A config file is `get_config(variant)` returning
`experiments.config(...)`; launchers read it with `--config configs/FILE.py[:tiny]`
(absl `config_flags`), fields named as their flags.
"""

import ml_collections

ED = "datasets/empathetic_dialogues"
REWARD_DATA = "datasets/reward_dataset"

# The original's train_dialogue_model defaults (../shared/ORIGINAL_FORMATS.md, "Training").
SFT = dict(dataset_dir=ED, max_epochs=10, batch_size=8, initial_lr=1e-5, data_erasure_level=0.3)
# A few minutes on a 2-core CPU: the quickstart's scale.
SFT_TINY = dict(max_epochs=2, batch_size=16, initial_lr=5e-4, max_train_examples=1600,
                max_val_examples=160, checkpoint_interval=50)
# GODEL_SMALL_ED (configs/godel_small_ed.py): GODEL_TINY's architecture from scratch on the whole
# train split, dropout off (two epochs underfit rather than overfit), a from-scratch learning
# rate with warm-up and per-step decay.
GODEL_SMALL_ED = dict(dataset_dir=ED, model="GODEL_TINY", seed=0, dropout_rate=0.0,
                      max_epochs=2, batch_size=32, initial_lr=2e-3, lr_schedule="step",
                      warmup_steps=300, clip_norm=1.0, max_val_examples=1000,
                      num_val_samples=3, checkpoint_interval=200)
# Its second stage: one more epoch from the first stage's weights (--model GODEL_SMALL_ED), a
# fresh optimizer, warm-up and decay again (configs/godel_small_ed.py:continue).
GODEL_SMALL_ED_CONTINUE = dict(GODEL_SMALL_ED, model="GODEL_SMALL_ED", seed=1, max_epochs=1,
                               initial_lr=1e-3, warmup_steps=100)
# The main job's default (pipeline.demo): GODEL_SMALL_ED, the model this project trained, as the
# SFT stage with a short fine-tune, its backbone for the reward model, PPO, and the test.
DEMO_SFT = dict(model="GODEL_SMALL_ED", max_epochs=1, batch_size=16, initial_lr=1e-4,
                max_train_examples=640, max_val_examples=160, dropout_rate=0.0,
                checkpoint_interval=20)
DEMO_REWARD = dict(model="GODEL_SMALL_ED", batch_size=4, initial_lr=1e-4, max_epochs=2,
                   dropout=0.1)
DEMO_PPO = dict(max_epochs=1, batch_size=16, max_train_examples=256, max_val_examples=32,
                max_new_tokens=20, kl_penalty=0.05, initial_lr=1e-4, checkpoint_interval=8)
DEMO_EVAL = dict(max_examples=256, max_new_tokens=24)
# The main job's other algorithms (--algorithm dpo,grpo,rloo), from the SFT stage's policy.
DEMO_DPO = dict(max_epochs=2, batch_size=8, initial_lr=1e-5, beta=0.1, val_fraction=0.1)
DEMO_GRPO = dict(max_epochs=1, batch_size=8, group_size=4, max_train_examples=128,
                 max_val_examples=32, max_new_tokens=20, initial_lr=1e-4, beta=0.04,
                 checkpoint_interval=8)
# train_reward_model: one context (all its responses) per step, LR halved every epoch.
REWARD = dict(dataset_dir=REWARD_DATA, max_epochs=1, initial_lr=1e-5, batch_size=1,
              dropout=0.6, val_fraction=0.0, loss="original")
REWARD_TINY = dict(batch_size=4, initial_lr=1e-4, max_epochs=2)
# train_rlhf_pipeline (PPO); reward_model_dir is required and set per run.
PPO = dict(dataset_dir=ED, max_epochs=10, batch_size=8, initial_lr=1e-5, data_erasure_level=0.3,
           max_new_tokens=100, clip_epsilon=0.2, kl_penalty=0.0, gamma=0.99, lam=0.95,
           vf_coeff=1.0, entropy_coeff=0.01, reward_model_dir="")
PPO_TINY = dict(max_epochs=1, max_new_tokens=16, max_train_examples=64, max_val_examples=16)
# train_dpo: the rated pairs of the reward dataset as preferences, a tenth of the contexts held
# out; the policy is GODEL_SMALL_ED (the model this project trained).
DPO = dict(dataset_dir=REWARD_DATA, model="GODEL_SMALL_ED", max_epochs=3, batch_size=8,
           initial_lr=5e-6, beta=0.1, val_fraction=0.1)
DPO_TINY = dict(model="GODEL_TINY", max_epochs=2, batch_size=4, initial_lr=1e-4,
                max_contexts=20, val_fraction=0.2)
# train_grpo: group-relative advantages over 4 samples per context; reward_model_dir is
# required and set per run.
GRPO = dict(dataset_dir=ED, model="GODEL_SMALL_ED", max_epochs=1, batch_size=8, group_size=4,
            max_new_tokens=20, initial_lr=1e-5, beta=0.04, max_train_examples=512,
            max_val_examples=64, reward_model_dir="")
GRPO_TINY = dict(model="GODEL_TINY", batch_size=4, max_new_tokens=12, max_train_examples=32,
                 max_val_examples=8)
# train_classifier: the metric classifiers trained here (the main job's classifiers stage runs
# each task with these fields and the launcher's defaults).
INTENTS, EPITOME = "datasets/empathetic_intents", "datasets/epitome"
CLASSIFIERS = {"emotion": dict(dataset_dir=INTENTS), "intent": dict(dataset_dir=INTENTS),
               "epitome_ER": dict(dataset_dir=EPITOME), "epitome_IP": dict(dataset_dir=EPITOME),
               "epitome_EX": dict(dataset_dir=EPITOME)}
# The main job's default trains them shorter (emotion two epochs, EPITOME one; intent as the
# launcher), so that the whole loop fits 15 minutes of a cold 2-core CPU; its report gives each
# classifier's held-out accuracy (docs/evaluation.md).
DEMO_CLASSIFIERS = {**CLASSIFIERS, "emotion": dict(dataset_dir=INTENTS, max_epochs=2),
                    **{t: dict(dataset_dir=EPITOME, max_epochs=1)
                       for t in ("epitome_ER", "epitome_IP", "epitome_EX")}}
# test: the metric suite on the test split.
EVAL = dict(dataset_dir=ED, batch_size=32, data_erasure_level=1.0, metric_n_grams=4)
EVAL_TINY = dict(max_examples=128, max_new_tokens=24)


def config(fields: dict, variant: str, tiny: dict) -> ml_collections.ConfigDict:
  """The run's fields, or its tiny twin's when `variant` is "tiny"."""
  if variant not in ("", "tiny"):
    raise ValueError(f"unknown config variant {variant!r}: use nothing or ':tiny'")
  return ml_collections.ConfigDict({**fields, **(tiny if variant == "tiny" else {})})
