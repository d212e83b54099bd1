"""launch/plan.py on a reduced T5 and 64 simulated devices: XLA's own argument bytes equal
the per-device parameter, optimizer and batch bytes computed from the shardings, parameters
split 8 ways by fsdp, what PPO, DPO and GRPO keep besides the policy, and a device too small
is reported as such."""

import json
import os
import subprocess
import sys

from conftest import REPO


def test_plan_of_a_reduced_model_on_64_simulated_devices(tmp_path):
  out = tmp_path / "plan.json"
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "launch", "plan.py"), "--model", "GODEL_TINY",
       "--devices", "64", "--mesh_data", "8", "--mesh_fsdp", "8", "--batch_size", "64",
       "--context_length", "32", "--target_length", "16", "--max_new_tokens", "4",
       "--override", "num_layers=1", "--override", "num_decoder_layers=1",
       "--steps", "sft,ppo_update,dpo,grpo_update", "--device_memory_gb", "0.02", "--output_json", str(out)],
      capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  plan = json.loads(out.read_text())
  assert plan["devices"] == 64
  sft, update, dpo, grpo = plan["steps"]
  assert [s["step"] for s in plan["steps"]] == ["sft", "ppo_update", "dpo", "grpo_update"]
  # Every weight is split 8 ways on its embed axis (fsdp) except the replicated ones: T5's
  # relative position tables (32 buckets x 4 heads, one per stack) and the layer norms'
  # scales (256 each: 2 in the encoder layer, 3 in the decoder layer, 1 final per stack).
  total = plan["parameters"] * 4
  replicated = (2 * 32 * 4 + 7 * 256) * 4
  assert sft["params"] == (total - replicated) // 8 + replicated
  # AdamW's two moments per weight, sharded alike, plus its step counts.
  assert sft["optimizer"] - 2 * sft["params"] in range(0, 64)
  # XLA's arguments of the SFT step: the train state (step 4 B, key 8 B) and one batch row
  # per device (contexts 32 and targets 16 tokens, ids and masks; the example index is not
  # read by the step, and jit drops it).
  batch_row = (2 * 32 + 2 * 16) * 4
  assert sft["arguments"] == sft["params"] + sft["optimizer"] + 4 + 8 + batch_row
  assert sft["aliased"] > 0 and sft["temporaries"] > 0  # the state is donated
  assert sft["collectives"]["all-gather"] > 0 and sft["collectives"]["all-reduce"] > 0
  # PPO: policy and critic in the state; reference and reward model resident beside it.
  assert update["params"] == 2 * sft["params"] + 4 * (256 + 1)  # + the value head, replicated
  assert update["resident"] > 0
  assert update["peak"] == (update["resident"] + update["arguments"] + update["outputs"]
                            - update["aliased"] + update["temporaries"])
  # DPO holds the policy alone (the reference's log-probs come with the batch); GRPO the
  # policy in its state and, resident, its reference and a reward model (backbone + head).
  assert (dpo["params"], dpo["optimizer"], dpo["resident"]) == (sft["params"],
                                                               sft["optimizer"], 0)
  assert grpo["params"] == sft["params"] and grpo["optimizer"] == sft["optimizer"]
  assert grpo["resident"] == 2 * sft["params"] + 4 * (256 + 1)
  assert [s["fits"] for s in plan["steps"]] == [s["peak"] <= 0.02 * 2**30
                                                for s in plan["steps"]]
  assert "NO" in proc.stdout or all(s["fits"] for s in plan["steps"])


def test_a_batch_the_mesh_cannot_split_is_refused_before_planning():
  """GODEL_LARGE on 64 fsdp shards with the default batch of 8 rows: `error:` naming the
  flags, exit 1, no traceback (it was an IndivisibleError from inside the planner)."""
  done = subprocess.run([sys.executable, os.path.join(REPO, "launch", "plan.py"), "--model",
                         "GODEL_LARGE", "--devices", "64", "--mesh_fsdp", "64", "--mesh_data",
                         "1"], capture_output=True, text=True, cwd=REPO, timeout=300)
  last = done.stderr.strip().splitlines()[-1]
  assert done.returncode == 1 and "Traceback" not in done.stderr
  assert last.startswith("error: --batch_size 8 cannot be split") and "64 batch shards" in last
