"""Maps transformers state dicts (numpy arrays by key) to our Flax parameter trees and back.

A rule per parameter: our path (unscanned layout, `layers_{i}`), the transformers key, and how
the array is laid out there: `linear` (torch `nn.Linear` weight, [out, in]), `conv1d` (GPT-2's
`Conv1D`, [in, out]) or `copy` (embeddings, norms, biases). Kernels with head axes are reshaped
from the flat transformers layout. With `scan_layers`, per-layer parameters are stacked on a
leading axis (`layers`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping

import jax
import numpy as np

from empathy_jax.errors import CheckpointError

Path = tuple[str, ...]
Rule = tuple[Path, str, str, int]  # (our path, hf key, kind, number of input axes)


@dataclasses.dataclass(frozen=True)
class WeightMap:
  """A family's rules for one config. `aliases`: keys of tied weights, accepted and not
  written. `optional_prefix`: a prefix of rule keys that state dicts may leave out (GPT-2's
  `transformer.`: GPT2Model's keys versus GPT2LMHeadModel's)."""

  family: str
  rules: list[Rule]
  aliases: frozenset[str] = frozenset()
  optional_prefix: str = ""


def t5_rules(cfg) -> WeightMap:
  rules: list[Rule] = [(("shared", "embedding"), "shared.weight", "copy", 0)]
  for stack, n in (("encoder", cfg.num_layers), ("decoder", cfg.num_decoder_layers)):
    rules.append(((f"{stack}_position_bias", "embedding"),
                  f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                  "copy", 0))
    rules.append(((stack, "final_norm", "scale"), f"{stack}.final_layer_norm.weight", "copy", 0))
    for i in range(n):
      ours = (stack, "stack", f"layers_{i}")
      hf = f"{stack}.block.{i}.layer"
      subs = [("self_attention", f"{hf}.0.SelfAttention", f"{hf}.0.layer_norm")]
      if stack == "decoder":
        subs.append(("cross_attention", f"{hf}.1.EncDecAttention", f"{hf}.1.layer_norm"))
      for name, attn, norm in subs:
        for p in ("q", "k", "v"):
          rules.append(((*ours, name, p, "kernel"), f"{attn}.{p}.weight", "linear", 1))
        rules.append(((*ours, name, "o", "kernel"), f"{attn}.o.weight", "linear", 2))
        rules.append(((*ours, f"{name}_norm", "scale"), f"{norm}.weight", "copy", 0))
      ff = f"{hf}.{2 if stack == 'decoder' else 1}"
      wis = ("wi_0", "wi_1") if cfg.is_gated_act else ("wi",)
      for w in wis + ("wo",):
        rules.append(((*ours, "mlp", w, "kernel"), f"{ff}.DenseReluDense.{w}.weight", "linear", 1))
      rules.append(((*ours, "mlp_norm", "scale"), f"{ff}.layer_norm.weight", "copy", 0))
  aliases = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight",
             "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"}
  if cfg.tie_lm_head:
    aliases.add("lm_head.weight")
  else:
    rules.append((("lm_head", "kernel"), "lm_head.weight", "linear", 1))
  return WeightMap("godel", rules, frozenset(aliases))


def gpt2_rules(cfg) -> WeightMap:
  rules: list[Rule] = [(("wte", "embedding"), "transformer.wte.weight", "copy", 0),
                       (("wpe", "embedding"), "transformer.wpe.weight", "copy", 0),
                       (("ln_f", "scale"), "transformer.ln_f.weight", "copy", 0),
                       (("ln_f", "bias"), "transformer.ln_f.bias", "copy", 0)]
  for i in range(cfg.n_layer):
    ours, hf = ("h", f"layers_{i}"), f"transformer.h.{i}"
    for ln in ("ln_1", "ln_2"):
      rules.append(((*ours, ln, "scale"), f"{hf}.{ln}.weight", "copy", 0))
      rules.append(((*ours, ln, "bias"), f"{hf}.{ln}.bias", "copy", 0))
    for name, key, n_in in (("c_attn", "attn.c_attn", 1), ("c_proj", "attn.c_proj", 2),
                            ("c_fc", "mlp.c_fc", 1), ("mlp_c_proj", "mlp.c_proj", 1)):
      rules.append(((*ours, name, "kernel"), f"{hf}.{key}.weight", "conv1d", n_in))
      rules.append(((*ours, name, "bias"), f"{hf}.{key}.bias", "copy", 0))
  return WeightMap("dialogpt", rules, frozenset({"lm_head.weight"}), "transformer.")


def blenderbot_rules(cfg) -> WeightMap:
  rules: list[Rule] = [(("shared", "embedding"), "model.shared.weight", "copy", 0),
                       (("final_logits_bias",), "final_logits_bias", "copy", 0)]
  for stack, n in (("encoder", cfg.encoder_layers), ("decoder", cfg.decoder_layers)):
    rules.append(((f"{stack}_positions", "embedding"), f"model.{stack}.embed_positions.weight",
                  "copy", 0))
    for p in ("scale", "bias"):
      rules.append(((f"{stack}_layer_norm", p),
                    f"model.{stack}.layer_norm.{'weight' if p == 'scale' else 'bias'}", "copy", 0))
    for i in range(n):
      ours, hf = (f"{stack}_layers", f"layers_{i}"), f"model.{stack}.layers.{i}"
      attns = ["self_attn"] + (["encoder_attn"] if stack == "decoder" else [])
      norms = [f"{a}_layer_norm" for a in attns] + ["final_layer_norm"]
      for a in attns:
        for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
          n_in = 2 if p == "out_proj" else 1
          rules.append(((*ours, a, p, "kernel"), f"{hf}.{a}.{p}.weight", "linear", n_in))
          rules.append(((*ours, a, p, "bias"), f"{hf}.{a}.{p}.bias", "copy", 0))
      for ln in norms:
        rules.append(((*ours, ln, "scale"), f"{hf}.{ln}.weight", "copy", 0))
        rules.append(((*ours, ln, "bias"), f"{hf}.{ln}.bias", "copy", 0))
      for fc in ("fc1", "fc2"):
        rules.append(((*ours, fc, "kernel"), f"{hf}.{fc}.weight", "linear", 1))
        rules.append(((*ours, fc, "bias"), f"{hf}.{fc}.bias", "copy", 0))
  aliases = {"model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight",
             "lm_head.weight"}
  return WeightMap("blenderbot", rules, frozenset(aliases))


# Buffers transformers keeps in some state dicts; they carry no weights.
_IGNORED = re.compile(r"(\.attn\.(masked_)?bias$)|(embed_positions\._float_tensor$)")


def _with_prefix(state: Mapping[str, np.ndarray], wmap: WeightMap) -> dict[str, np.ndarray]:
  """`state` with `wmap.optional_prefix` put back on the keys that left it out."""
  prefix = wmap.optional_prefix
  if not prefix or any(k.startswith(prefix) for k in state):
    return dict(state)
  return {k if k in wmap.aliases else f"{prefix}{k}": v for k, v in state.items()}


def _set(tree: dict, path: Path, value) -> None:
  for p in path[:-1]:
    tree = tree.setdefault(p, {})
  tree[path[-1]] = value


def _get(tree: Mapping, path: Path):
  for p in path:
    tree = tree[p]
  return tree


def _to_ours(array: np.ndarray, kind: str, shape: tuple[int, ...]) -> np.ndarray:
  if kind == "linear":
    array = array.T
  return np.ascontiguousarray(array.reshape(shape))


def _to_hf(array: np.ndarray, kind: str, n_in: int, hf_shape: tuple[int, ...] | None):
  if kind == "copy":
    return array.reshape(hf_shape) if hf_shape is not None else array
  flat = array.reshape(int(np.prod(array.shape[:n_in])), -1)
  return np.ascontiguousarray(flat.T if kind == "linear" else flat)


def stack_layers(tree):
  """Replaces `layers_0..layers_{n-1}` siblings by one `layers` entry stacked on axis 0."""
  if not isinstance(tree, dict):
    return tree
  keys = [k for k in tree if re.fullmatch(r"layers_\d+", k)]
  out = {k: stack_layers(v) for k, v in tree.items() if k not in keys}
  if keys:
    layers = [stack_layers(tree[f"layers_{i}"]) for i in range(len(keys))]
    out["layers"] = jax.tree.map(lambda *xs: np.stack(xs), *layers)
  return out


def unstack_layers(tree):
  if not isinstance(tree, dict):
    return tree
  out = {}
  for k, v in tree.items():
    if k == "layers":
      n = jax.tree.leaves(v)[0].shape[0]
      for i in range(n):
        out[f"layers_{i}"] = unstack_layers(jax.tree.map(lambda x, i=i: np.asarray(x)[i], v))
    else:
      out[k] = unstack_layers(v)
  return out


def hf_to_params(state: Mapping[str, np.ndarray], wmap: WeightMap, shapes: Mapping) -> dict:
  """Builds our (unscanned) params from a transformers state dict by the family's rules
  (`families.of(cfg).weight_rules(cfg)`); `shapes` is the unscanned abstract param tree
  (leaves with `.shape`). Errors list every missing / unexpected key and every shape
  mismatch."""
  state = _with_prefix(state, wmap)
  rules, aliases = wmap.rules, wmap.aliases
  params: dict = {}
  missing, mismatched = [], []
  used = set()
  for path, key, kind, _ in rules:
    if key not in state:
      missing.append(key)
      continue
    used.add(key)
    shape = tuple(_get(shapes, path).shape)
    array = np.asarray(state[key], dtype=np.float32)
    expected = int(np.prod(shape))
    if array.size != expected:
      mismatched.append(f"{key}: expected {shape} ({expected} values), found "
                        f"{tuple(array.shape)}")
      continue
    _set(params, path, _to_ours(array, kind, shape))
  unexpected = sorted(k for k in state if k not in used and k not in aliases
                      and not _IGNORED.search(k))
  problems = []
  if missing:
    problems.append(f"missing weights ({len(missing)}): {', '.join(missing[:20])}")
  if unexpected:
    problems.append(f"unexpected weights ({len(unexpected)}): {', '.join(unexpected[:20])}")
  if mismatched:
    problems.append("shape mismatches: " + "; ".join(mismatched[:20]))
  if problems:
    raise CheckpointError(f"{wmap.family} checkpoint does not match the model config:\n  " +
                          "\n  ".join(problems))
  return params


def params_to_hf(params: Mapping, wmap: WeightMap) -> dict[str, np.ndarray]:
  """Our (unscanned) params → a transformers state dict, tied weights written once."""
  out = {}
  for path, key, kind, n_in in wmap.rules:
    array = np.asarray(_get(params, path), dtype=np.float32)
    hf_shape = None
    if key == "final_logits_bias":
      hf_shape = (1, array.shape[0])
    elif kind == "copy" and key.endswith(("bias", "layer_norm.weight", "ln_1.weight",
                                          "ln_2.weight", "ln_f.weight")):
      hf_shape = (-1,)  # biases of head-shaped projections are flat in transformers
    out[key] = _to_hf(array, kind, n_in, hf_shape)
  return out
