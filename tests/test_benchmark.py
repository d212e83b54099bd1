"""The benchmark's fairness machinery: padding to the longest, interleaved repeats, the
same-work assertion, and one small `--mode test` run end to end (the PyTorch original-style
loop and test.py must produce the same outputs and metrics, or the mode fails)."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import hf_fixtures as hf

from benchmarks import common, kernel_profile, test_mode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_trim_padding_keeps_the_longest_example_on_either_side():
  ids = np.array([[5, 6, 7, 0, 0, 0], [8, 0, 0, 0, 0, 0]])
  mask = (ids > 0).astype(np.int32)
  right_ids, right_mask = common.trim_padding(ids, mask, left=False)
  np.testing.assert_array_equal(right_ids, [[5, 6, 7], [8, 0, 0]])
  np.testing.assert_array_equal(right_mask, [[1, 1, 1], [1, 0, 0]])
  left_ids, left_mask = common.trim_padding(ids[:, ::-1], mask[:, ::-1], left=True)
  np.testing.assert_array_equal(left_ids, [[7, 6, 5], [0, 0, 8]])
  np.testing.assert_array_equal(left_mask, [[1, 1, 1], [0, 0, 1]])


def test_kernel_profile_counts_loop_kernels_per_iteration_with_their_flops_and_bytes():
  """A 7-iteration loop of two matmuls and a tanh: each loop kernel is found 7 times a call,
  the dots' FLOPs are 2 x M x K x N (XLA's own count of one iteration), and a dot's bytes are
  its operands' and output's."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(0)
  x0 = jnp.asarray(rng.normal(size=(64, 128)), jnp.float32)
  b = jnp.asarray(rng.normal(size=(128, 256)) / 16, jnp.float32)
  c = jnp.asarray(rng.normal(size=(256, 128)) / 16, jnp.float32)
  body = lambda i, x: jnp.tanh(x @ b) @ c
  compiled = jax.jit(lambda x: jax.lax.fori_loop(0, 7, body, x)).lower(x0).compile()
  jax.block_until_ready(compiled(x0))
  kernels, wall = kernel_profile.profile(compiled, (x0,), repeats=2)
  looped = [k for k in kernels if k.calls == 7]
  dots = [k for k in looped if k.flops]
  assert len(dots) == 2 and all(k.flops == 2 * 64 * 128 * 256 for k in dots)
  assert sum(k.flops for k in looped) == common.xla_flops(
      jax.jit(lambda x: body(0, x)).lower(x0).compile())
  assert sorted(k.bytes for k in dots) == [4 * (64 * 128 + 128 * 256 + 64 * 256)] * 2
  assert all(k.seconds > 0 for k in looped) and 0 < sum(k.seconds for k in kernels) < 2 * wall
  step = kernel_profile.per_step_table(kernels, 7, wall)
  assert step["step_mflop"] == pytest.approx(4 * 64 * 128 * 256 / 1e6, abs=0.05)
  assert step["kernels_per_step"] >= 3 and step["top_kernels"][0]["share"] > 0


def test_decode_profile_finds_the_lm_head_once_a_step_with_its_flops(tmp_path):
  """The generation mode's profile of a real decoding loop (a 2+2-layer GODEL): one LM-head
  kernel a step with 2 x rows x width x vocabulary FLOPs, and both frameworks' LM head timed."""
  from benchmarks import generation  # pylint: disable=import-outside-toplevel
  from empathy_jax.models.loading import load_model  # pylint: disable=import-outside-toplevel

  hf.save_torch_model("godel", str(tmp_path / "godel"))
  loaded = load_model(str(tmp_path / "godel"))
  cfg = common.BenchConfig(mode="generation", model=str(tmp_path / "godel"), batch_size=8,
                           max_new_tokens=6, dataset_dir=os.path.join(ROOT, "datasets",
                                                                      "empathetic_dialogues"))
  step = generation.decode_profile(loaded, common.test_batch(loaded, cfg),
                                   generation.gen_config(loaded, cfg))
  rows, width, vocab = step["lm_head_shape"]
  assert (rows, width, vocab) == (8, loaded.model.hidden_size, loaded.model.cfg.vocab_size)
  heads = [k for k in step["top_kernels"] if "logits" in k["where"]]
  assert len(heads) == 1 and heads[0]["calls_per_step"] == 1
  assert heads[0]["mflop"] == pytest.approx(2 * rows * width * vocab / 1e6, abs=0.01)
  assert step["step_mflop"] > heads[0]["mflop"] and step["jax_lm_head_ms"] > 0
  assert step["torch_lm_head_ms"] > 0


def test_interleaved_takes_turns_with_equal_repeats():
  calls = []
  times = common.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                             3)
  assert calls == ["a", "b"] + ["a", "b"] * 3  # one warm-up each, then alternating
  assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
  s = common.spread([3.0, 1.0, 2.0])
  assert (s["median"], s["min"], s["max"]) == (2.0, 1.0, 3.0)


def test_same_work_check_rejects_other_outputs_or_metrics(tmp_path):
  reference = {"outputs": ["a b", "c"], "metrics": {"ppl": 10.0, "bleu": 0.1, "dist-2": 0.5,
                                                    "avg_bow": 0.2}}

  def write(outputs, ppl):
    (tmp_path / "test_data.json").write_text(json.dumps([{"output": o} for o in outputs]))
    (tmp_path / "test_metrics.json").write_text(json.dumps({**reference["metrics"],
                                                            "ppl": ppl}))

  # pylint: disable=protected-access
  same = lambda: test_mode._same_work(reference, test_mode._test_dir_result(str(tmp_path)),
                                      "ours")
  write(["a b", "c"], 10.0)
  same()
  write(["a b", "d"], 10.0)
  with pytest.raises(AssertionError, match="1 of 2 outputs differ"):
    same()
  write(["a b", "c"], 10.1)
  with pytest.raises(AssertionError, match="ppl"):
    same()


def test_mode_test_end_to_end(tmp_path):
  """test.py and both transformers loops (the original's and the competent one) agree on
  every output, ppl, BLEU, dist-2 and BOW (the mode raises otherwise), and the JSON line
  carries every side's times."""
  env = dict(os.environ, PYTHONPATH=ROOT)
  hf.save_torch_model("godel", str(tmp_path / "godel"))  # 2+2 layers: quick to compile
  done = subprocess.run(
      [sys.executable, os.path.join(ROOT, "launch", "benchmark.py"), "--mode", "test",
       "--model", str(tmp_path / "godel"), "--max_examples", "12", "--batch_size", "8",
       "--max_new_tokens", "5", "--repeats", "1",
       "--dataset_dir", os.path.join(ROOT, "datasets", "empathetic_dialogues")],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
  assert ("same outputs, perplexity, BLEU, dist-2 and BOW as the original-style loop in every "
          "run: yes") in done.stdout
  result = json.loads(done.stdout.strip().splitlines()[-1])
  assert result["mode"] == "test" and result["rows"] == 12
  times = result["times"]
  assert len(times["original-style loop"]) == len(times["test.py, first run"]) == 1
  assert len(times["competent PyTorch loop"]) == 1
  assert result["ratio"] == pytest.approx(result["torch"] / result["jax"], rel=1e-2)
  assert result["competent_ratio"] == pytest.approx(result["competent_seconds"] / result["jax"],
                                                    rel=1e-2)


def test_competent_loop_matches_the_original_style_loop_on_a_decoder_only_model(tmp_path):
  """The competent loop's sorted batches, sliced LM head and per-example losses give the
  original-style loop's outputs and metrics on DialoGPT too (the end-to-end test covers T5)."""
  from benchmarks import original_loop  # pylint: disable=import-outside-toplevel

  hf.save_torch_model("dialogpt", str(tmp_path / "gpt2"))
  ed = os.path.join(ROOT, "datasets", "empathetic_dialogues")
  args = (str(tmp_path / "gpt2"), ed, 20, 8, 5, "dialogpt", 2)
  original = original_loop.run(*args, style="original")
  competent = original_loop.run(*args, style="competent")
  assert competent["outputs"] == original["outputs"]
  assert len(set(original["outputs"])) > 1  # rows differ: the order is really restored
  for key, value in original["metrics"].items():
    assert competent["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-9), key


@pytest.mark.parametrize("family", ["godel", "dialogpt"])
def test_ppo_benchmarks_pytorch_side_learns_as_ours_over_two_iterations(tmp_path, family):
  """The benchmark's PyTorch PPO (the default recipe: 4 PPO epochs of AdamW on the scored
  rollout) trained on our rollouts' tokens for two iterations ends where our programs end:
  every policy parameter, and on a third rollout the old and reference log-probs, the
  critic's values, the reward scores and the first loss (`_same_work`)."""
  from conftest import ED_DIR  # pylint: disable=import-outside-toplevel
  from benchmarks import ppo as bench  # pylint: disable=import-outside-toplevel
  from empathy_jax import families  # pylint: disable=import-outside-toplevel
  from empathy_jax.models import weights  # pylint: disable=import-outside-toplevel

  hf.save_torch_model(family, str(tmp_path / family))
  cfg = common.BenchConfig(mode="ppo", model=str(tmp_path / family), batch_size=8,
                           max_new_tokens=5, dataset_dir=ED_DIR)
  policy, reward, run, ppo, split, batch = bench._setup(cfg)  # pylint: disable=protected-access
  run = dataclasses.replace(run, initial_lr=1e-3)  # steps large enough to tell apart
  programs, inputs, holder, _, lr_schedule = bench._our_side(  # pylint: disable=protected-access
      policy, reward, run, ppo, split, batch)
  theirs = bench._torch_side(policy, reward, ppo, batch, run.initial_lr,  # pylint: disable=protected-access
                             run.weight_decay, lr_schedule)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), policy.params)
  start = jax.tree.map(np.asarray, policy.params)
  first_tokens = before = None
  for _ in range(2):
    state = holder["state"]
    r = programs.sample(state, programs.ref_params, inputs["ctx"], inputs["cmask"],
                        inputs["rows"], inputs["plan"])
    scores = programs.score(programs.rm_params, r, inputs["rm_ctx"], inputs["rm_cmask"])
    tokens = np.asarray(r.response_ids)
    if first_tokens is None:
      first_tokens, before = tokens, theirs.check(tokens)["old"]
    theirs.learn(tokens)
    holder["state"], _ = programs.finish(state, r, scores, inputs["plan"])
  ours = jax.tree.map(np.asarray, holder["state"].params["policy"])
  torch_policy = weights.hf_to_params(
      {k: v.detach().numpy() for k, v in theirs.policy.state_dict().items()},
      families.weight_map(policy.model.cfg), abstract)
  for (path, a), b, s in zip(jax.tree_util.tree_leaves_with_path(ours),
                             jax.tree.leaves(torch_policy), jax.tree.leaves(start)):
    if "c_attn" in jax.tree_util.keystr(path) and a.ndim == 3:  # GPT-2's [q, k, v] biases
      # The key bias's gradient is 0 in exact arithmetic (softmax ignores a shift), so AdamW
      # turns each side's float noise there into full-size steps of either sign; it changes
      # no output. The query and value biases are compared.
      a, b, s = a[[0, 2]], b[[0, 2]], s[[0, 2]]
    moved = np.linalg.norm(a - s)
    assert moved > 0, jax.tree_util.keystr(path)  # AdamW's decay moves every weight
    assert np.linalg.norm(a - b) <= 0.02 * moved, jax.tree_util.keystr(path)
  # The trained policies' log-probs moved far beyond `_same_work`'s tolerance ...
  after = theirs.check(first_tokens)["old"]
  assert np.abs(after - before).max() > 0.05
  # ... and agree with ours on a third rollout, with the critics and the reward model.
  bench._same_work(programs, inputs, holder, theirs.check)  # pylint: disable=protected-access


@pytest.mark.parametrize("family", ["godel", "dialogpt"])
def test_dpo_benchmarks_pytorch_side_trains_as_ours(tmp_path, family):
  """The DPO mode's two sides on the same 2-layer policy and batches: equal loss and sequence
  log-probs at the start (the check the mode makes before timing), and after one pass of two
  AdamW steps each the same change in every chosen and rejected log-prob."""
  from benchmarks import dpo as bench
  from empathy_jax import sharding
  from empathy_jax.models.loading import load_model

  hf.save_torch_model(family, str(tmp_path / "policy"))
  loaded = load_model(str(tmp_path / "policy"))
  batches = bench._batches(loaded, 8)[:2]  # pylint: disable=protected-access
  mesh = sharding.make_mesh(sharding.MeshConfig(), jax.devices()[:1])
  ours, ours_now, flops = bench.our_side(loaded, batches, mesh, lr=1e-3)
  assert flops > 0
  theirs, theirs_now = bench.torch_side(loaded, batches, lr=1e-3)
  start = ours_now()
  bench.check_same(start, theirs_now())
  ours()
  theirs()
  ours_after, theirs_after = ours_now(), theirs_now()
  for i in (1, 2):  # chosen, rejected
    moved = ours_after[i] - start[i]
    assert np.abs(moved).mean() > 0.1, moved  # the pass moved the log-probs ...
    np.testing.assert_allclose(theirs_after[i] - start[i], moved, rtol=0.02, atol=0.01)  # alike


def test_gpu_check_dry_run_measures_every_figure_on_the_cpu(tmp_path):
  """`gpu_check.sh --dry_run`: every figure at tiny shapes, one JSON line each, none failed;
  generation's tokens equal transformers' and PPO's same-work check passes; the SFT step's FLOP
  count is XLA's, near 6 x parameters x tokens, and its rate is under the measured ceiling."""
  out = tmp_path / "figures.jsonl"
  # One device, as on the one GPU the check is for (not the suite's 8 fake CPU devices).
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  done = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), "--dry_run",
                         "--out", str(out)], cwd=tmp_path, env=env, capture_output=True,
                        text=True, timeout=600, check=False)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  lines = [json.loads(line) for line in out.read_text().splitlines()]
  assert [line["figure"] for line in lines] == ["env", "generation_greedy", "ppo",
                                                "generation_beam4", "sft_mfu"]
  assert all("error" not in line and line["dry_run"] for line in lines)
  env, greedy, ppo, beam, sft = lines
  assert env["bf16_matmul_xla_tflops"] > 0 and env["bf16_matmul_torch_tflops"] > 0
  assert env["datasheet_bf16_tflops"] is None  # a CPU has no datasheet bf16 peak here
  assert 0.25 < sft["step_tflop_xla"] / sft["step_tflop_6nd"] < 4
  assert sft["tokens_per_s"] == pytest.approx(2 * (16 + 8) / (sft["step_ms"] / 1e3), rel=0.02)
  assert 0 < sft["fraction_of_measured_matmul"] < 1.5
  for gen, beams in ((greedy, 1), (beam, 4)):
    assert gen["beams"] == beams and gen["mismatched_rows"] == 0 and gen["rows"] == 4
    assert gen["ratio"] == pytest.approx(gen["jax_tokens_per_s"] / gen["torch_tokens_per_s"],
                                         rel=0.01)
  assert ppo["same_work"] == "equal" and ppo["jax"] > 0 and ppo["torch"] > 0


def test_gpu_check_refuses_unknown_figures_before_any_work(tmp_path):
  done = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), "--dry_run",
                         "--only", "env,mfu"], cwd=tmp_path, capture_output=True, text=True,
                        timeout=120, check=False)
  assert done.returncode == 1
  assert done.stdout.strip().splitlines()[-1] == (
      "error: --only: unknown figures ['mfu']; known: env, generation_greedy, ppo, "
      "generation_beam4, sft_mfu")


@pytest.mark.parametrize("family", ["godel", "dialogpt"])
def test_grpo_benchmarks_pytorch_side_learns_as_ours(tmp_path, family):
  """The GRPO mode's two sides on the same 2-layer policy and contexts: equal reference
  log-probs, scores, advantages and loss on our generation's tokens (the check the mode makes
  before timing), and one update of each on those tokens moves every log-prob alike."""
  from benchmarks import grpo as bench
  from empathy_jax import sharding

  hf.save_torch_model(family, str(tmp_path / "policy"))
  cfg = common.BenchConfig(mode="grpo", model=str(tmp_path / "policy"), batch_size=4,
                           max_new_tokens=6,
                           dataset_dir=os.path.join(ROOT, "datasets", "empathetic_dialogues"))
  policy, reward, run, gen, batch = bench.setup(cfg, lr=1e-3)
  mesh = sharding.make_mesh(sharding.MeshConfig(), jax.devices()[:1])
  _, our_check, learn, our_logps, flops = bench.our_side(policy, reward, run, gen, batch, mesh)
  assert flops() > 0
  _, their_check, their_learn, their_logps = bench.torch_side(policy, reward, run, gen, batch)
  mine = our_check()
  assert mine["response_ids"].shape == (16, 6)
  assert np.abs(mine["advantages"]).max() > 0.5  # the groups' scores differ: a real signal
  bench.check_same(mine, their_check(mine["response_ids"]))
  start = our_logps()
  np.testing.assert_allclose(their_logps(mine["response_ids"]), start, atol=2e-4)
  learn()
  their_learn(mine["response_ids"])
  moved = our_logps() - start
  assert np.abs(moved).mean() > 0.01, moved  # the update moved the log-probs ...
  np.testing.assert_allclose(their_logps(mine["response_ids"]) - start, moved, rtol=0.05,
                             atol=2e-3)  # ... alike


@pytest.mark.parametrize("family", ["godel", "dialogpt"])
def test_reward_mode_checks_both_pytorch_sides_before_timing(tmp_path, family):
  """The reward mode on a 2-layer backbone: the competent batched PyTorch step (our batches,
  bare backbone, contexts encoded once) and the original's step give our eval-mode loss for
  every context (the mode raises otherwise), and the JSON line reports both ratios."""
  from benchmarks import reward as bench

  hf.save_torch_model(family, str(tmp_path / "backbone"))
  result = bench.run(common.BenchConfig(
      mode="reward", model=str(tmp_path / "backbone"), batch_size=8, max_examples=16,
      repeats=1, dataset_dir=os.path.join(ROOT, "datasets", "reward_dataset")))
  assert result["contexts"] == 16 and result["contexts_per_step"] == 8
  assert result["ratio"] == pytest.approx(result["jax"] / result["torch"], rel=0.01)
  assert result["ratio_to_original_step"] == pytest.approx(
      result["jax"] / result["original_step"], rel=0.01)


def test_classifiers_mode_labels_agree_and_the_headline_is_batched_pytorch():
  """The classifiers mode at tiny sizes: every side's 10 scores' labels equal ours (the mode
  raises otherwise); the headline ratio is against batched PyTorch, the original's one-at-a-
  time loop a second ratio."""
  from benchmarks import classifiers as bench

  result = bench.run(common.BenchConfig(
      mode="classifiers", batch_size=8, repeats=1,
      dataset_dir=os.path.join(ROOT, "datasets", "empathetic_dialogues")), size="tiny")
  assert result["ratio"] == pytest.approx(result["jax"] / result["torch"], rel=0.01)
  assert result["ratio_to_one_at_a_time"] == pytest.approx(
      result["jax"] / result["torch_one_at_a_time"], rel=0.01)


def test_gpu_check_refuses_a_machine_without_a_gpu_before_installing_anything(tmp_path):
  """Without --dry_run on a machine with no nvidia-smi: the error as the last line, exit 1,
  before any pip install (PATH holds only what the script needs to reach its check)."""
  import shutil

  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  os.symlink(shutil.which("dirname"), bin_dir / "dirname")
  done = subprocess.run([shutil.which("bash"), os.path.join(ROOT, "benchmarks", "gpu_check.sh")],
                        cwd=tmp_path, env={"PATH": str(bin_dir)}, capture_output=True,
                        text=True, timeout=60, check=False)
  assert done.returncode == 1, done.stdout + done.stderr
  assert done.stdout.strip().splitlines()[-1] == (
      "error: no NVIDIA GPU (nvidia-smi not found); --dry_run checks the script on a CPU")
  assert "pip" not in done.stdout + done.stderr
