"""What each `launch/survey.py` subcommand does, one function each. Bad input raises
`DatasetError` (a file) or `ValueError` (a flag) before anything is written."""

from __future__ import annotations

import math
import os
import random
import signal

from empathy_jax.data.dialogue_dataset import read_json
from empathy_jax.errors import DatasetError, Problem
from empathy_jax.evaluation.suite import read_test_data
from empathy_jax.json_files import write_atomic
from empathy_jax.survey import plots, ratings as R, reward_data, server, store as S, tables as T

RESULTS_FILE = "survey_results.json"
MODEL_RATINGS, RESPONSE_RATINGS = "model_ratings.json", "response_ratings.json"
HEATMAP = "heatmap_colored_correlation_matrix.png"
INTERVALS = "rating_intervals"


def _rows_by_id(model_dir: str, contexts: list[list[str]]) -> dict[str, str]:
  """{context id: response} from a run's test_data.json, each row checked against the
  survey's contexts (a model tested on another split is refused)."""
  path = os.path.join(model_dir, "test_data.json")
  if not os.path.isdir(model_dir):
    raise ValueError(f"--model_dir: {model_dir} is not a folder")
  problems, responses = [], {}
  for i, row in enumerate(read_test_data(path)):
    cid = row["id"]
    if type(cid) is not int or not 0 <= cid < len(contexts):
      problems.append(Problem(path, i, f"id {cid!r} is not a test context id (0..{len(contexts) - 1})"))
    elif [t.strip() for t in row["context"]] != [t.strip() for t in contexts[cid]]:
      problems.append(Problem(path, i, f"its context is not test context {cid} of the dataset "
                                       f"(tested on another split?)"))
    else:
      responses[str(cid)] = row["output"]
  if problems:
    raise DatasetError(problems)
  return responses


def add_model(survey_dir: str, model_name: str, model_dir: str, dataset_dir: str,
              seed: int | None = None) -> dict:
  """A model table from a tested run (and the GOLD table of human targets the first time);
  when samples were pushed before, the new model is paired with every model on those
  contexts (as the original's add_new_model.py)."""
  if model_name == T.GOLD:
    raise ValueError(f"--model_name: {T.GOLD} is reserved for the dataset's human targets")
  if not model_name.strip():
    raise ValueError("--model_name: give the model a name")
  tables = T.load_tables(survey_dir)
  has_gold = T.GOLD in [t["model_name"] for t in tables]
  if dataset_dir is None and not has_gold:
    raise ValueError("--dataset_dir: needed the first time (the test split's contexts and "
                     "human targets)")
  contexts = T.survey_contexts(survey_dir, dataset_dir)
  responses = _rows_by_id(model_dir, contexts)
  if not has_gold:
    targets = T.load_targets(os.path.join(dataset_dir, "test", "targets.json"), len(contexts))
    tables.append(T.write_table(survey_dir, T.new_id(), T.GOLD, None,
                                {str(i): t for i, t in enumerate(targets)}))
  # The original counts tables by a key they do not have ("name") and fails; the version
  # is the number of tables of that name before this one.
  version = sum(t["model_name"] == model_name for t in tables)
  table = T.write_table(survey_dir, T.new_id(), model_name, version, responses)
  samples = []
  if os.path.exists(os.path.join(survey_dir, S.DB_FILE)):  # pushed before: pair it there too
    store = S.open_store(survey_dir)
    samples = T.pair_samples([table], tables, sorted(store.pushed_context_ids()), contexts,
                             random.Random(seed))
    if samples:
      store.add_samples(samples)
  return {"model_id": table["model_id"], "version": version, "responses": len(responses),
          "samples_added": len(samples)}


def push_samples(survey_dir: str, num_per_model: int, seed: int | None = None) -> dict:
  """Every pair of models on `num_per_model` contexts not pushed before (drawn from those
  every model answers), sides shuffled, PENDING."""
  if num_per_model < 1:
    raise ValueError("--num_per_model: must be at least 1")
  tables = T.load_tables(survey_dir)
  if len(tables) < 2:
    raise ValueError(f"--survey_dir: {survey_dir} has {len(tables)} model table(s); add "
                     f"models first (add_model)")
  contexts = T.survey_contexts(survey_dir)
  store = S.open_store(survey_dir)
  pushed = store.pushed_context_ids()
  free = [c for c in T.common_context_ids(tables, len(contexts)) if c not in pushed]
  if not free:
    raise ValueError(f"--survey_dir: every context all {len(tables)} models answer has been "
                     f"pushed")
  rng = random.Random(seed)
  chosen = rng.sample(free, min(num_per_model, len(free)))
  samples = T.pair_samples(tables, None, chosen, contexts, rng)
  store.add_samples(samples)
  return {"contexts": len(chosen), "samples": len(samples), "asked": num_per_model}


def _require_survey(survey_dir: str) -> None:
  if not os.path.exists(os.path.join(survey_dir, S.DB_FILE)):
    raise ValueError(f"--survey_dir: {survey_dir} has no survey yet (push_samples first)")


def _stop(*_) -> None:
  raise KeyboardInterrupt  # SIGTERM stops the server as Ctrl-C does


def add_rater(survey_dir: str, name: str) -> str:
  if not name.strip():
    raise ValueError("--name: give the rater a name")
  _require_survey(survey_dir)
  return S.open_store(survey_dir).add_rater(name)


def serve(survey_dir: str, host: str, port: int, lease_seconds: float, announce=print) -> None:
  """Serves the page and the API until interrupted (SIGINT or SIGTERM)."""
  _require_survey(survey_dir)
  if not (math.isfinite(lease_seconds) and lease_seconds > 0):
    raise ValueError("--lease_seconds: must be a positive number of seconds")
  if not 0 <= port <= 65535:
    raise ValueError(f"--port: {port} is not a port (0..65535; 0 picks a free one)")
  httpd = server.make_server(S.open_store(survey_dir), host, port, lease_seconds)
  signal.signal(signal.SIGTERM, _stop)
  announce(f"serving the survey at http://{httpd.server_address[0]}:{httpd.server_address[1]}/"
           f" (Ctrl-C stops)")
  try:
    httpd.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    httpd.server_close()


def results(survey_dir: str) -> dict:
  """results/survey_results.json: every answered sample, in the original's format, in the
  order the answers were committed."""
  _require_survey(survey_dir)
  answered = S.open_store(survey_dir).completed()
  if not answered:
    raise ValueError(f"--survey_dir: {survey_dir} has no answers yet")
  folder = os.path.join(survey_dir, T.RESULTS_DIR)
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, RESULTS_FILE)
  write_atomic(path, answered, indent=None, ensure_ascii=True)
  return {"answers": len(answered), "path": path}


def _check_results(rows, path: str, model_ids: set[str]) -> list[dict]:
  if not isinstance(rows, list) or not rows:
    raise DatasetError([Problem(path, None, "expected a non-empty list of answered samples")])
  problems = []
  for i, row in enumerate(rows):
    s = row.get("sample") if isinstance(row, dict) else None
    if not (isinstance(s, dict) and isinstance(s.get("responseA"), str)
            and isinstance(s.get("responseB"), str) and type(s.get("id")) is int
            and isinstance(s.get("context"), list)
            and all(isinstance(t, str) for t in s["context"])):
      problems.append(Problem(path, i, "not a survey sample (modelA, modelB, ratings and "
                                       "sample {id, context, responseA, responseB})"))
    elif not (isinstance(row.get("modelA"), str) and isinstance(row.get("modelB"), str)
              and row["modelA"] in model_ids and row["modelB"] in model_ids):
      problems.append(Problem(path, i, "modelA or modelB is not a model table of this survey"))
    elif not server.valid_ratings(row.get("ratings")):
      problems.append(Problem(path, i, "ratings must be three integers from -2 to 2"))
  if problems:
    raise DatasetError(problems)
  return rows


def model_names(tables: list[dict]) -> dict[str, str]:
  return {t["model_id"]: f"{t['model_name']}_v{t['version']}" for t in tables}


def ratings(survey_dir: str, k: float = 32, num_resamples: int = 1000, seed: int = 0) -> dict:
  """model_ratings.json and response_ratings.json as the original computes them, the
  criteria's correlation heatmap, and each model's Elo and Bradley-Terry rating with bootstrap
  95% intervals (rating_intervals.json and .png)."""
  if not k > 0:
    raise ValueError("--K: must be positive")
  if num_resamples < 1:
    raise ValueError("--num_resamples: must be at least 1")
  tables = T.load_tables(survey_dir)
  if not tables:
    raise ValueError(f"--survey_dir: {survey_dir} has no model tables (model_data/)")
  folder = os.path.join(survey_dir, T.RESULTS_DIR)
  path = os.path.join(folder, RESULTS_FILE)
  ids = [t["model_id"] for t in tables]
  answers = _check_results(read_json(path), path, set(ids))
  model_ratings = R.elo(answers, ids, k)
  matrix = R.correlation(answers)
  spread, converged = R.intervals(answers, ids, k, num_resamples, seed)
  names = model_names(tables)
  for name, value in ((MODEL_RATINGS, model_ratings),
                      (RESPONSE_RATINGS, R.response_ratings(answers))):
    write_atomic(os.path.join(folder, name), value, indent=None, ensure_ascii=True)
  plots.heatmap(os.path.join(folder, HEATMAP), matrix, len(answers))
  write_atomic(os.path.join(folder, INTERVALS + ".json"),
               {"K": k, "num_resamples": num_resamples, "seed": seed, "answers": len(answers),
                "names": names, "correlation": matrix.tolist(),
                "bradley_terry_converged": converged, "ratings": spread})
  plots.rating_intervals(os.path.join(folder, INTERVALS + ".png"), names, spread, k)
  return {"names": names, "ratings": spread, "correlation": matrix, "folder": folder,
          "bradley_terry_converged": converged}


def format_ratings(summary: dict) -> str:
  """Per criterion, the models best first: Elo [95%] and Bradley-Terry [95%]."""
  lines = [] if summary["bradley_terry_converged"] else [
      "warning: a Bradley-Terry fit did not converge (its ratings are approximate)"]
  for criterion, per in summary["ratings"].items():
    lines.append(f"{criterion}:")
    for m, r in sorted(per.items(), key=lambda kv: -kv[1]["elo"]):
      lines.append(f"  {summary['names'][m]:<24} Elo {r['elo']:7.1f} [{r['elo_low']:.1f}, "
                   f"{r['elo_high']:.1f}]  Bradley-Terry {r['bradley_terry']:7.1f} "
                   f"[{r['bradley_terry_low']:.1f}, {r['bradley_terry_high']:.1f}]")
  return "\n".join(lines)


def make_reward_dataset(survey_dir: str, output_dir: str, overwrite: bool = False) -> dict:
  path = os.path.join(survey_dir, T.RESULTS_DIR, RESPONSE_RATINGS)
  data = read_json(path)
  if not isinstance(data, dict) or not data:
    raise DatasetError([Problem(path, None, "expected the ratings command's response ratings")])
  for key, item in data.items():
    ok = (isinstance(item, dict) and "context" in item
          and isinstance(item.get("responses"), dict) and isinstance(item.get("ratings"), list)
          and all(isinstance(r, dict) and isinstance(r.get("A"), str)
                  and isinstance(r.get("B"), str) and r["A"] in item["responses"]
                  and r["B"] in item["responses"] and server.valid_ratings(r.get("ratings"))
                  for r in item["ratings"]))
    if not ok:
      raise DatasetError([Problem(path, None, f"context {key}: not a response-ratings entry")])
  folder = reward_data.write_reward_dataset(data, output_dir, overwrite)
  return {"contexts": len(data), "folder": folder,
          "pairs": sum(len(item["ratings"]) for item in data.values())}


def run(command: str, cfg, say=print) -> None:
  """`launch/survey.py COMMAND`: checks the flags it needs, runs it, prints its outcome."""
  cfg.check(command)
  survey = cfg.survey_dir
  if command == "add_model":
    got = add_model(survey, cfg.model_name, cfg.model_dir, cfg.dataset_dir, cfg.seed)
    say(f"added {cfg.model_name} (version {got['version']}, {got['responses']} responses) as "
        f"{os.path.join(survey, T.MODEL_DIR, got['model_id'] + '.json')}; "
        f"{got['samples_added']} new samples")
  elif command == "push_samples":
    got = push_samples(survey, cfg.num_per_model, cfg.seed)
    if got["contexts"] < got["asked"]:
      say(f"warning: only {got['contexts']} contexts were left to push")
    say(f"pushed {got['samples']} samples on {got['contexts']} contexts")
  elif command == "add_rater":
    token = add_rater(survey, cfg.name)
    say(f"{cfg.name}'s link (with serve's address): http://{cfg.host}:{cfg.port}/#rater={token}")
    say(token)
  elif command == "serve":
    serve(survey, cfg.host, cfg.port, cfg.lease_seconds,
          announce=lambda line: say(line, flush=True))
  elif command == "results":
    got = results(survey)
    say(f"{got['answers']} answers in {got['path']}")
  elif command == "ratings":
    got = ratings(survey, cfg.K, cfg.num_resamples, 0 if cfg.seed is None else cfg.seed)
    say(format_ratings(got))
    say(f"written to {got['folder']}")
  else:
    got = make_reward_dataset(survey, cfg.output_dir, cfg.overwrite)
    say(f"pairwise ratings of {got['pairs']} answers on {got['contexts']} contexts in "
        f"{got['folder']}")
