"""Generated tokens per second: our jitted generation vs transformers' PyTorch `generate`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax.benchmarks.common import (BenchConfig, report, test_batch, timed,
                                           torch_available, torch_twin)
from empathy_jax.generation.config import resolve
from empathy_jax.generation.search import generate_ids
from empathy_jax.models.loading import load_model
from empathy_jax.models.packing import encoder_plan


def run(cfg: BenchConfig) -> dict:
  loaded = load_model(cfg.model)
  batch = test_batch(loaded, cfg)
  # No EOS stop and no checkpoint constraints: both sides decode exactly max_new_tokens.
  gen = resolve({"max_new_tokens": cfg.max_new_tokens, "beam_width": cfg.beam_width,
                 "length_alpha": 1.0}, {}, loaded.model.cfg)
  gen = type(gen)(**{**gen.__dict__, "eos_token_id": None, "forced_eos_token_id": None,
                     "min_length": 0, "no_repeat_ngram_size": 0,
                     "encoder_no_repeat_ngram_size": 0})
  ids, mask = jnp.asarray(batch.context_ids_BxC), jnp.asarray(batch.context_mask_BxC)
  rows = jnp.arange(ids.shape[0])
  params = jax.device_put(loaded.params)
  packed = encoder_plan(loaded.model, batch.context_mask_BxC)
  call = lambda: jax.block_until_ready(generate_ids(loaded.model, params, ids, mask, gen,
                                                    jax.random.PRNGKey(0), rows, packed))
  tokens = cfg.batch_size * cfg.max_new_tokens
  seconds = timed(call, cfg.repeats)
  jax_tps = tokens / seconds
  print(f"jax:   {cfg.model} batch {cfg.batch_size} beams {cfg.beam_width} "
        f"{cfg.max_new_tokens} new tokens: {seconds:.3f} s, {jax_tps:.1f} tokens/s")
  torch_tps = None
  if cfg.torch and torch_available():
    import torch  # pylint: disable=import-outside-toplevel

    model = torch_twin(loaded)
    t = lambda x: torch.from_numpy(np.asarray(x)).long()
    kwargs = dict(input_ids=t(batch.context_ids_BxC), attention_mask=t(batch.context_mask_BxC),
                  max_new_tokens=cfg.max_new_tokens, min_new_tokens=cfg.max_new_tokens,
                  num_beams=cfg.beam_width, do_sample=False)

    def torch_call():
      with torch.no_grad():
        model.generate(**kwargs)

    seconds = timed(torch_call, max(1, cfg.repeats - 1))
    torch_tps = tokens / seconds
    print(f"torch: {cfg.model} batch {cfg.batch_size} beams {cfg.beam_width} "
          f"{cfg.max_new_tokens} new tokens: {seconds:.3f} s, {torch_tps:.1f} tokens/s")
  return report(cfg, "tokens/s", jax_tps, torch_tps, {"beam_width": cfg.beam_width})
