"""Generates responses on a test split and scores them as the original's `test` does.

  python launch/test.py --dataset_dir datasets/empathetic_dialogues --model GODEL_TINY \
      --max_examples 64 --output_dir outputs/godel_tiny
  python launch/test.py --dataset_dir datasets/empathetic_dialogues \
      --pretrained_model_dir runs/godel_tiny/tensorboard_logs/version_0 \
      --emo_classifier_dir clf/emotion --intent_classifier_dir clf/intent --epitome_dir epitome

Writes test_data.json, test_metrics.json and classwise_test_metrics.json and prints a table.
Generation flags left out take the checkpoint's generation_config, as Hugging Face does.
"""

from absl import app, flags

from empathy_jax import launch_flags
from empathy_jax.evaluation.suite import format_table
from empathy_jax.evaluation.testing import TestConfig, run_test

F = flags
_DATASET = F.DEFINE_string("dataset_dir", None, "Dialogue dataset folder.", required=True)
_MODEL = F.DEFINE_string("model", None, "Registry model name.")
_PRETRAINED = F.DEFINE_string("pretrained_model_dir", None, "Our run/model folder, a Hugging "
                              "Face directory or hub name, or an original Lightning run.")
_OUTPUT = F.DEFINE_string("output_dir", None, "Where results go (default: the model folder).")
_SCORES = launch_flags.define_metric_flags()
_BATCH = F.DEFINE_integer("batch_size", 32, "Generation/scoring batch size.")
_ERASURE = F.DEFINE_float("data_erasure_level", 1.0, "Erased fraction of instructions.")
_MAX = F.DEFINE_integer("max_examples", None, "Score only the first N rows.")
_SPLIT = F.DEFINE_string("split", "test", "Split to evaluate.")
_SEED = F.DEFINE_integer("seed", 0, "Sampling seed.")
_BEAMS = F.DEFINE_integer("beam_width", None, "Beams (HF num_beams).")
_SAMPLE = F.DEFINE_bool("sample", None, "Sample instead of greedy/beam search.")
_TEMP = F.DEFINE_float("temperature", None, "Sampling temperature.")
_TOP_P = F.DEFINE_float("top_p", None, "Nucleus sampling mass.")
_TOP_K = F.DEFINE_integer("top_k", None, "Top-k sampling.")
_NEW = F.DEFINE_integer("max_new_tokens", None, "New tokens (default: checkpoint/HF max_length).")
_ALPHA = F.DEFINE_float("length_alpha", None, "Beam length penalty (HF length_penalty).")
_MESH = launch_flags.define_mesh_flags()
F.adopt_module_key_flags(launch_flags)  # list them in --help


def main(argv):
  del argv
  generation = {"beam_width": _BEAMS.value, "sample": _SAMPLE.value,
                "temperature": _TEMP.value, "top_p": _TOP_P.value, "top_k": _TOP_K.value,
                "max_new_tokens": _NEW.value, "length_alpha": _ALPHA.value}
  try:
    cfg = TestConfig(
        dataset_dir=_DATASET.value, model=_MODEL.value, pretrained_model_dir=_PRETRAINED.value,
        output_dir=_OUTPUT.value,
        scores=_SCORES(_BATCH.value),
        batch_size=_BATCH.value, data_erasure_level=_ERASURE.value, max_examples=_MAX.value,
        split=_SPLIT.value, generation={k: v for k, v in generation.items() if v is not None},
        seed=_SEED.value, mesh=_MESH())
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  metrics = run_test(cfg)
  print(format_table(metrics))
  print(f"results in {cfg.out_dir()}")


if __name__ == "__main__":
  app.run(main)
