#!/usr/bin/env python
"""Multi-turn sessions scored by the reward model, as the original's `multi_turn`: you type
the speaker's turns, the model answers, and each answer's reward (given the whole history) is
shown and saved.

  python launch/multi_turn.py --model GODEL_TINY --reward_model_dir runs/rm/tensorboard_logs/version_0 \\
      --output_dir outputs/multi_turn
  python launch/multi_turn.py --pretrained_model_dir runs/ppo/tensorboard_logs/version_0 \\
      --reward_model_dir runs/rm/tensorboard_logs/version_0 --output_dir outputs/mt \\
      --speaker_file sessions.json --max_sessions 500 --batch_size 32

Interactive: up to --max_sessions sessions of --max_turns turns; an empty line ends a session
early, `<quit>` ends the study. --speaker_file (a JSON list of sessions, each a list of speaker
turns) runs the same study unattended and batched. Writes OUTPUT_DIR/multi_turn.json after
every turn and multi_turn.png (reward per turn per session, and the mean) at the end.
"""

from absl import app
from tqdm import tqdm

from empathy_jax import launch_flags, settings
from empathy_jax.chat import Responder
from empathy_jax.errors import CheckpointError, DatasetError
from empathy_jax.evaluation import multi_turn
from empathy_jax.evaluation.multi_turn import MultiTurnConfig
from empathy_jax.models import reward_model
from empathy_jax.models.loading import load_model

launch_flags.define_model_flags("the model that answers")
settings.define_flags(MultiTurnConfig)  # every setting, from its field
_GENERATION = launch_flags.define_generation_flags()
_CACHE = launch_flags.define_compilation_cache_flag()
_TRUST = launch_flags.define_trust_pickle_flag()
launch_flags.list_in_help()


def _interactive(responder, scorer, out_dir, max_sessions, max_turns):
  results = []
  for s in range(max_sessions):
    print(f"\n=== session {s + 1}/{max_sessions} (empty line: end it, <quit>: stop)", flush=True)
    session, history = {"session": s, "turns": []}, []
    results.append(session)
    for t in range(max_turns):
      try:
        text = input(f"Speaker ({t + 1}/{max_turns}): ").strip()
      except EOFError:
        return results
      if text == "<quit>":
        return results
      if not text:
        break
      history.append(text)
      reply = responder.reply([history])[0]
      reward = float(scorer([list(history)], [reply])[0])
      history.append(reply)
      session["turns"].append({"speaker": text, "response": reply, "reward": reward})
      multi_turn.save(out_dir, results)
      print(f"Listener: {reply}\n  reward {reward:+.4f}", flush=True)
  return results


def main(argv):
  del argv
  _CACHE()
  source = launch_flags.required_model_source()
  try:  # every input checked before a model is loaded
    cfg = settings.from_flags(MultiTurnConfig)
    speakers = (multi_turn.read_speaker_file(cfg.speaker_file, cfg.max_sessions, cfg.max_turns)
                if cfg.speaker_file else None)
    reward_model.check_source(cfg.reward_model_dir)
    loaded = load_model(source, trust_pickle=_TRUST.value)
    scorer = reward_model.load_scorer(cfg.reward_model_dir, cfg.batch_size, _TRUST.value)
  except (DatasetError, CheckpointError, ValueError) as e:
    launch_flags.fail(str(e))
  generation = _GENERATION()
  responder = Responder(loaded, generation, batch_size=cfg.batch_size if speakers else 1,
                        seed=cfg.seed, instruction=cfg.instruction)
  if speakers:
    longest = max(len(s) for s in speakers)
    with tqdm(total=longest, desc=f"turns ({len(speakers)} sessions)") as bar:
      results = multi_turn.run_batched(speakers, responder, scorer, cfg.output_dir,
                                       lambda t: bar.update(1))
  else:
    results = _interactive(responder, scorer, cfg.output_dir, cfg.max_sessions, cfg.max_turns)
  if any(s["turns"] for s in results):
    multi_turn.save(cfg.output_dir, results)
    series = multi_turn.plot(cfg.output_dir, results)
    print("mean reward per turn: " + ", ".join(f"{r:+.4f}" for r in series["mean"]))


if __name__ == "__main__":
  app.run(main)
