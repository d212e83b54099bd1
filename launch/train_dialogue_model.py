"""Supervised fine-tuning of a dialogue model, with the original's flags.

  python launch/train_dialogue_model.py --dataset_dir datasets/empathetic_dialogues \
      --model GODEL_TINY --output_dir runs/godel_tiny --max_epochs 5 --batch_size 8 \
      --initial_lr 1e-5

Writes OUT/tensorboard_logs/version_N/ (TensorBoard events, best/ and latest/ model folders,
the resumable train state). Re-running the same command after an interruption resumes it;
`--pretrained_model_dir OUT/tensorboard_logs/version_N` then loads the best model anywhere.
"""

import json

from absl import app, flags, logging

from empathy_jax import launch_flags
from empathy_jax.training.sft import SFTConfig, train_dialogue_model

F = flags
_DATASET = F.DEFINE_string("dataset_dir", None, "Dialogue dataset folder (train/val/test).")
_OUTPUT = F.DEFINE_string("output_dir", None, "Run folder root (tensorboard_logs/version_N).")
_MODEL = F.DEFINE_string("model", None, "Registry model to start from (e.g. GODEL_TINY).")
_PRETRAINED = F.DEFINE_string("pretrained_model_dir", None, "Checkpoint to continue from: an "
                              "empathy-jax run/model folder, a Hugging Face directory or hub "
                              "name, or an original Lightning .ckpt / run folder.")
_EPOCHS = F.DEFINE_integer("max_epochs", 10, "Training epochs.")
_BATCH = F.DEFINE_integer("batch_size", 8, "Global batch size.")
_ERASURE = F.DEFINE_float("data_erasure_level", 0.3, "Fraction of instructions/knowledge "
                          "erased (original's seeded selection).")
_LR = F.DEFINE_float("initial_lr", 1e-5, "AdamW learning rate, decayed linearly to 0.")
_SCHEDULE = F.DEFINE_enum("lr_schedule", "epoch", ["epoch", "step"], "Decay per epoch (the "
                          "original) or per step.")
_WARMUP = F.DEFINE_integer("warmup_steps", 0, "Linear warmup steps (with --lr_schedule=step).")
_WD = F.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (torch's default).")
_CLIP = F.DEFINE_float("clip_norm", 0.0, "Global gradient-norm clipping (0: off).")
_ACCUM = F.DEFINE_integer("grad_accum", 1, "Micro-batches per step (batch_size divisible).")
_SEED = F.DEFINE_integer("seed", 0, "Seed for data order, dropout and random init.")
_DTYPE = F.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")
_DROPOUT = F.DEFINE_float("dropout_rate", None, "Override the checkpoint's dropout.")
_REMAT = F.DEFINE_bool("remat", False, "Rematerialise blocks (saves memory).")
_SCAN = F.DEFINE_bool("scan_layers", False, "Scan over layers (large models).")
_MESH = launch_flags.define_mesh_flags()
F.adopt_module_key_flags(launch_flags)  # list them in --help
_LOG = F.DEFINE_integer("log_interval", 10, "Steps between train-loss logs.")
_CKPT = F.DEFINE_integer("checkpoint_interval", 500, "Steps between resumable checkpoints.")
_EVAL = F.DEFINE_integer("eval_interval", 0, "Extra validation every N steps (0: per epoch).")
_MAX_TRAIN = F.DEFINE_integer("max_train_examples", None, "Use only the first N train rows.")
_MAX_VAL = F.DEFINE_integer("max_val_examples", None, "Use only the first N val rows.")
_SAMPLES = F.DEFINE_integer("num_val_samples", 3, "Validation responses logged per epoch.")
_DIST = F.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() (multi-host).")
_STOP = F.DEFINE_integer("stop_after_steps", 0, "Stop after N steps as if interrupted "
                         "(for testing resume).")


def main(argv):
  del argv
  if not _DATASET.value or not _OUTPUT.value:
    raise app.UsageError("--dataset_dir and --output_dir are required")
  try:
    cfg = SFTConfig(
        dataset_dir=_DATASET.value, output_dir=_OUTPUT.value, model=_MODEL.value,
        pretrained_model_dir=_PRETRAINED.value, max_epochs=_EPOCHS.value,
        batch_size=_BATCH.value, data_erasure_level=_ERASURE.value, initial_lr=_LR.value,
        lr_schedule=_SCHEDULE.value, warmup_steps=_WARMUP.value, weight_decay=_WD.value,
        clip_norm=_CLIP.value, grad_accum=_ACCUM.value, seed=_SEED.value, dtype=_DTYPE.value,
        dropout_rate=_DROPOUT.value, remat=_REMAT.value, scan_layers=_SCAN.value,
        mesh=_MESH(),
        log_interval=_LOG.value, checkpoint_interval=_CKPT.value, eval_interval=_EVAL.value,
        max_train_examples=_MAX_TRAIN.value, max_val_examples=_MAX_VAL.value,
        num_val_samples=_SAMPLES.value, distributed=_DIST.value, stop_after_steps=_STOP.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  logging.set_verbosity(logging.WARNING)  # orbax is chatty at INFO; progress has its own bar
  summary = train_dialogue_model(cfg)
  summary.pop("params")
  print(json.dumps(summary, indent=2))


if __name__ == "__main__":
  app.run(main)
