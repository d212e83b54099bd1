"""Scores an existing test_data.json (id, context, target, output per example) without a
dialogue model, and writes the same three result files.

  python launch/score.py --test_data outputs/gpt3/test_data.json \
      --emo_classifier_dir clf/emotion --intent_classifier_dir clf/intent --epitome_dir epitome

BOW similarities need a dialogue model's embeddings: add --embedding_model NAME_OR_DIR.
"""

from absl import app, flags

from empathy_jax.evaluation.suite import ScoreConfig, format_table, score_file

F = flags
_DATA = F.DEFINE_string("test_data", None, "test_data.json to score.", required=True)
_OUTPUT = F.DEFINE_string("output_dir", None, "Where results go (default: beside the file).")
_EMO = F.DEFINE_string("emo_classifier_dir", None, "Emotion classifier folder.")
_INTENT = F.DEFINE_string("intent_classifier_dir", None, "Empathetic-intent classifier folder.")
_EPITOME = F.DEFINE_string("epitome_dir", None, "Folder with finetuned_{IP,EX,ER}.pth.")
_REWARD = F.DEFINE_string("reward_model_dir", None, "Reward model (reward statistics).")
_NGRAMS = F.DEFINE_integer("metric_n_grams", 4, "n for BLEU, NIST and dist-1..n.")
_BATCH = F.DEFINE_integer("batch_size", 32, "Classifier batch size.")
_EMB = F.DEFINE_string("embedding_model", None, "Dialogue model whose input embeddings give "
                       "the BOW similarities (optional).")


def main(argv):
  del argv
  cfg = ScoreConfig(_EMO.value, _INTENT.value, _EPITOME.value, _REWARD.value, _NGRAMS.value,
                    _BATCH.value)
  print(format_table(score_file(_DATA.value, cfg, _OUTPUT.value, _EMB.value)))


if __name__ == "__main__":
  app.run(main)
