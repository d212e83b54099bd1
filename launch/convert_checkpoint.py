#!/usr/bin/env python
"""Converts a dialogue model between checkpoint formats.

  python launch/convert_checkpoint.py --input microsoft/GODEL-v1_1-base-seq2seq --to ours \\
      --output models/godel_base
  python launch/convert_checkpoint.py --input OUT/tensorboard_logs/version_0 --to hf --output hf_dir
  python launch/convert_checkpoint.py --input hf_dir --to ckpt --output original_run

--input: a registry name, Hugging Face directory or hub name, an original Lightning `.ckpt` (or
its run folder), or an empathy-jax checkpoint directory. --to: hf (config + safetensors +
tokenizer, loadable by transformers), ckpt (the original project's Lightning format; a folder
gets checkpoints/converted.ckpt), ours (empathy-jax model directory), packaged (ours with
bfloat16 parameters and no tokenizer: a model shipped in empathy_jax/assets/models/ for a
registry entry, e.g. GODEL_SMALL_ED; see configs/godel_small_ed.py).
"""

from absl import app, flags

from empathy_jax import families, launch_flags, preflight
from empathy_jax.errors import CheckpointError, OutputExistsError
from empathy_jax.models.loading import FORMATS, convert_checkpoint

_INPUT = flags.DEFINE_string("input", None, "Model to convert.", required=True)
_OUTPUT = flags.DEFINE_string("output", None, "Where to write it.", required=True)
_TO = flags.DEFINE_enum("to", None, list(FORMATS), "Output format.", required=True)
_FAMILY = flags.DEFINE_enum("family", None, list(families.FAMILIES),
                            "Override the input format inferred from config.json's model_type.")
_TRUST = launch_flags.define_trust_pickle_flag()
_OVERWRITE = launch_flags.define_overwrite_flag()


def main(argv):
  del argv
  launch_flags.quiet_libraries()
  try:
    preflight.check_model_source(_INPUT.value)
    written = convert_checkpoint(_INPUT.value, _OUTPUT.value, _TO.value, _FAMILY.value,
                                 _TRUST.value, _OVERWRITE.value)
  except (CheckpointError, OutputExistsError) as e:
    launch_flags.fail(str(e))
  print(f"wrote {written}")


if __name__ == "__main__":
  app.run(main)
